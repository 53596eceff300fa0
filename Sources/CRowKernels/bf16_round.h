// Rounding to bfloat16 for this module's kernels that store it: exactly CGEMM's bf16 packing (to nearest even, a
// NaN kept quiet, by the same integer arithmetic), so that a product reading the stored values sees the bits packing
// the floats would have given it.
#ifndef NGPT_BF16_ROUND_H
#define NGPT_BF16_ROUND_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_rne(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

// The same for 16 lanes.
__attribute__((target("avx512f"))) static inline __m256i bf16_rne16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), u, _mm512_set1_epi32(0x00400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

#endif
