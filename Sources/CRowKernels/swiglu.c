// See include/ngpt_swiglu.h.
#include "ngpt_swiglu.h"

#include "exp16.h"
#include "ngpt_bf16.h"

#include <immintrin.h>
#include <math.h>

// Each product and sum rounded on its own, as in the Swift code this matches bit for bit.
#pragma STDC FP_CONTRACT OFF

// σ(x) = 1/(1 + e^−x), as SIMDMath.swift's sigmoid16 (−x by flipping the sign bit, as Swift negates).
__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_castsi512_ps(_mm512_xor_si512(
                                                   _mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000))))));
}

// Sixteen results to out[i ..< i + 16], as floats or rounded to bfloat16.
__attribute__((target("avx512f"))) static inline void store16(void *out, long i, __m512 x, int bf16) {
  if (bf16)
    _mm256_storeu_si256((__m256i *)((uint16_t *)out + i), ngpt_bf16_rne16(x));
  else
    _mm512_storeu_ps((float *)out + i, x);
}

static inline void store1(void *out, long i, float x, int bf16) {
  if (bf16)
    ((uint16_t *)out)[i] = ngpt_bf16_rne(x);
  else
    ((float *)out)[i] = x;
}

__attribute__((target("avx512f"))) void ngpt_swiglu_forward(const float *u, const float *gate, void *out, long n,
                                                            int out_bf16) {
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    store16(out, i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(u + i), g), sigmoid16(g)), out_bf16);
  }
  for (; i < n; ++i) store1(out, i, u[i] * gate[i] / (1 + expf(-gate[i])), out_bf16);
}

__attribute__((target("avx512f"))) void ngpt_swiglu_backward(const float *dout, const float *u, const float *gate,
                                                             void *du, void *dgate, long n, int out_bf16) {
  const __m512 one = _mm512_set1_ps(1.0f);
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i), uu = _mm512_loadu_ps(u + i), d = _mm512_loadu_ps(dout + i);
    const __m512 sg = sigmoid16(g);
    store16(du, i, _mm512_mul_ps(_mm512_mul_ps(d, g), sg), out_bf16);
    const __m512 slope = _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, sg)));
    store16(dgate, i, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, uu), sg), slope), out_bf16);
  }
  for (; i < n; ++i) {
    const float g = gate[i], uu = u[i], d = dout[i];
    const float sg = 1 / (1 + expf(-g));
    store1(du, i, d * g * sg, out_bf16);
    store1(dgate, i, d * uu * sg * (1 + g * (1 - sg)), out_bf16);
  }
}
