// See include/ngpt_softmax.h.
#include "ngpt_softmax.h"

#include "exp16.h"

#include <immintrin.h>
#include <math.h>

// The mask of the first `n` of 16 lanes (0 ≤ n ≤ 16).
static inline __mmask16 first_lanes(long n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// Σ of the 16 lanes, lane 0 first, one add after another: Swift's SIMD16<Float>.sum().
__attribute__((target("avx512f"))) static inline float lane_sum(__m512 v) {
  float lanes[16], s = 0;
  _mm512_storeu_ps(lanes, v);
  for (int l = 0; l < 16; ++l) s += lanes[l];
  return s;
}

// Zeros from `from` to `to` (exclusive).
__attribute__((target("avx512f"))) static inline void zero_tail(float *row, long from, long to) {
  for (long i = from; i < to; i += 16) _mm512_mask_storeu_ps(row + i, first_lanes(to - i), _mm512_setzero_ps());
}

__attribute__((target("avx512f"))) static void softmax_row(float *row, long valid, long count) {
  // the largest entry (as SIMDMath's rowMax: a lane is replaced where it is less than the new value)
  __m512 vm = _mm512_set1_ps(-INFINITY);
  long i = 0;
  for (; i + 16 <= valid; i += 16) {
    const __m512 x = _mm512_loadu_ps(row + i);
    vm = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(vm, x, _CMP_LT_OQ), vm, x);
  }
  float m = _mm512_reduce_max_ps(vm);  // the largest lane (exact; rows hold no NaN)
  for (; i < valid; ++i) m = m < row[i] ? row[i] : m;
  const __m512 vmx = _mm512_set1_ps(m);
  // e^(x − m), stored, summed in 16 lanes and then across them
  __m512 acc = _mm512_setzero_ps();
  for (i = 0; i + 16 <= valid; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), vmx));
    _mm512_storeu_ps(row + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  float s = lane_sum(acc);
  if (i < valid) {  // the last partial vector: the missing lanes read as −∞, their e^x never added
    const __mmask16 live = first_lanes(valid - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live, row + i), vmx));
    _mm512_mask_storeu_ps(row + i, live, e);
    float lanes[16];
    _mm512_storeu_ps(lanes, e);
    for (long l = 0; l < valid - i; ++l) s += lanes[l];
  }
  const float inv = 1 / s;
  const __m512 vinv = _mm512_set1_ps(inv);
  for (i = 0; i + 16 <= valid; i += 16) _mm512_storeu_ps(row + i, _mm512_mul_ps(_mm512_loadu_ps(row + i), vinv));
  for (; i < valid; ++i) row[i] = row[i] * inv;
  zero_tail(row, valid, count);
}

void ngpt_causal_softmax(float *p, long ld, long rows, long first_valid, long count) {
  for (long r = 0; r < rows; ++r) softmax_row(p + r * ld, first_valid + r, count);
}

// ⟨a, b⟩ over n floats as SIMDMath's dot: two vector accumulators over 32 at a time, a third vector into the
// first, their sum's lanes added one after another, then the rest one product at a time.
__attribute__((target("avx512f"))) static inline float dot(const float *a, const float *b, long n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  long i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_add_ps(acc0, _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    acc1 = _mm512_add_ps(acc1, _mm512_mul_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16)));
  }
  if (i + 16 <= n) {
    acc0 = _mm512_add_ps(acc0, _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    i += 16;
  }
  float s = lane_sum(_mm512_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

__attribute__((target("avx512f"))) static void softmax_backward_row(const float *p, float *d, long valid, long count) {
  const float c = dot(p, d, valid);
  const __m512 vc = _mm512_set1_ps(c);
  long i = 0;
  for (; i + 16 <= valid; i += 16)
    _mm512_storeu_ps(d + i, _mm512_mul_ps(_mm512_loadu_ps(p + i), _mm512_sub_ps(_mm512_loadu_ps(d + i), vc)));
  for (; i < valid; ++i) d[i] = p[i] * (d[i] - c);
  zero_tail(d, valid, count);
}

void ngpt_causal_softmax_backward(const float *p, float *d, long ld, long rows, long first_valid, long count) {
  for (long r = 0; r < rows; ++r) softmax_backward_row(p + r * ld, d + r * ld, first_valid + r, count);
}
