// Matrix–vector products for single-token decoding with bfloat16 weights (see include/ngpt_gemm.h). Decoding
// reads every weight once per token; the Swift loop this replaces widened each bf16 weight to fp32 (a shift or a
// mask) and did two fp32 multiply-adds per 32 weights, four vector operations where vdpbf16ps needs one. Here x is
// rounded to bfloat16 once per product (ngpt_bf16_round) and each row is a dot product of bf16 pairs accumulated
// in fp32 lanes. The caller splits the rows over its threads: each row's sum is the same on any split.
#include <immintrin.h>
#include <stdint.h>

#include "ngpt_gemm.h"

static inline uint16_t round_to_bf16(float x) {
  union {
    float f;
    uint32_t u;
  } v = {x};
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);  // NaN stays a quiet NaN
  v.u += 0x7fffu + ((v.u >> 16) & 1);
  return (uint16_t)(v.u >> 16);
}

// The mask of the first `n` of 32 16-bit lanes (all when n ≥ 32).
static inline __mmask32 first_lanes(long n) { return n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1); }

// Four rows at a time share each load of x; the last (cols mod 32) weights of a row are loaded under a mask, so
// nothing past a row's end is read.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void gemv_rows(long rows, long cols, const uint16_t *A,
                                                                             long lda, const uint16_t *xb, float beta,
                                                                             float *y) {
  const long full = cols / 32 * 32;
  const __mmask32 tail = first_lanes(cols - full);
  long r = 0;
  for (; r + 4 <= rows; r += 4) {
    const uint16_t *a0 = A + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (long c = 0; c < full; c += 32) {
      const __m512bh x = (__m512bh)_mm512_loadu_si512(xb + c);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(a0 + c), x);
      s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_loadu_si512(a1 + c), x);
      s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_loadu_si512(a2 + c), x);
      s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_loadu_si512(a3 + c), x);
    }
    if (full < cols) {
      const __m512bh x = (__m512bh)_mm512_maskz_loadu_epi16(tail, xb + full);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_maskz_loadu_epi16(tail, a0 + full), x);
      s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_maskz_loadu_epi16(tail, a1 + full), x);
      s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_maskz_loadu_epi16(tail, a2 + full), x);
      s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_maskz_loadu_epi16(tail, a3 + full), x);
    }
    const float t[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2),
                        _mm512_reduce_add_ps(s3)};
    for (int i = 0; i < 4; ++i) y[r + i] = beta == 0 ? t[i] : t[i] + beta * y[r + i];
  }
  for (; r < rows; ++r) {
    const uint16_t *a = A + r * lda;
    __m512 s = _mm512_setzero_ps();
    for (long c = 0; c < full; c += 32)
      s = _mm512_dpbf16_ps(s, (__m512bh)_mm512_loadu_si512(a + c), (__m512bh)_mm512_loadu_si512(xb + c));
    if (full < cols)
      s = _mm512_dpbf16_ps(s, (__m512bh)_mm512_maskz_loadu_epi16(tail, a + full),
                           (__m512bh)_mm512_maskz_loadu_epi16(tail, xb + full));
    const float t = _mm512_reduce_add_ps(s);
    y[r] = beta == 0 ? t : t + beta * y[r];
  }
}

void ngpt_bf16_round(const float *x, uint16_t *xb, long n) {
  for (long c = 0; c < n; ++c) xb[c] = round_to_bf16(x[c]);
}

void ngpt_gemv_bf16(long rows, long cols, const uint16_t *A, long lda, const uint16_t *xb, float beta, float *y) {
  if (rows > 0 && cols > 0) gemv_rows(rows, cols, A, lda, xb, beta, y);
}
