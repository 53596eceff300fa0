// e^x for 16 lanes, shared by this module's loops that replace Swift ones bit for bit (SwiGLU, attention's
// softmax). It turns floating-point contraction off for the file that includes it: each product and sum is rounded
// on its own, as Swift (which never fuses them) rounds them.
#ifndef NGPT_EXP16_H
#define NGPT_EXP16_H

#include <immintrin.h>

#pragma STDC FP_CONTRACT OFF

// e^x for 16 lanes: Kernels/SIMDMath.swift's exp16, operation for operation (Cody–Waite reduction and Cephes'
// degree-6 polynomial; inputs clamped to [−87.33654, 88]; NaN propagates).
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.33654f), magic = _mm512_set1_ps(12582912.0f);
  __m512 xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), x, hi);
  xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xc, lo, _CMP_LT_OQ), xc, lo);
  const __m512 nb = _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), magic);
  const __m512 k = _mm512_sub_ps(nb, magic);
  const __m512 r = _mm512_add_ps(_mm512_sub_ps(xc, _mm512_mul_ps(k, _mm512_set1_ps(0.693359375f))),
                                 _mm512_mul_ps(k, _mm512_set1_ps(2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_sub_epi32(_mm512_castps_si512(nb), _mm512_set1_epi32(0x4B400000));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(127)), 23));
  const __m512 result = _mm512_mul_ps(e, scale);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), result, x);
}

#endif
