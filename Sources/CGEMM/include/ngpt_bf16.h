// Rounding float to bfloat16: to nearest, ties to even, a NaN kept a quiet NaN, by integer arithmetic on the bits.
// The one definition for every kernel that rounds: the GEMM's bf16 packing, the decoder's vectors, and the row
// kernels that store an activation in bf16 for the products to read (CRowKernels). They must agree bit for bit, or
// a product reading a stored activation would see other values than one packing the floats.
#ifndef NGPT_BF16_H
#define NGPT_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t ngpt_bf16_rne(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

#if !defined(__swift__)  // 512-bit vectors are C's business; Swift imports only the scalar rounding above
#include <immintrin.h>

// The same for 16 lanes, the bf16 bits in the upper half of each 32-bit lane (the lower half is what rounding
// carried into it: callers take the upper halves).
__attribute__((target("avx512f"))) static inline __m512i ngpt_bf16_rne_upper(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  return _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), u, _mm512_set1_epi32(0x00400000));
}

// 16 lanes rounded and narrowed to 16 bf16 words.
__attribute__((target("avx512f"))) static inline __m256i ngpt_bf16_rne16(__m512 x) {
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(ngpt_bf16_rne_upper(x), 16));
}
#endif

#endif
