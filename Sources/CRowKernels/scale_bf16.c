// See include/ngpt_scale_bf16.h.
#include "ngpt_scale_bf16.h"

#include "ngpt_bf16.h"

// Values i..<i+16 are loaded before bytes [2i, 2i + 32) are stored, and those hold floats below i/2 + 8 ≤ i + 16,
// all read already: in place is safe. (Intrinsics only, whose loads and stores may alias: a scalar loop over a
// float* and a uint16_t* could be reordered under C's aliasing rules.)
__attribute__((target("avx512f,avx512bw,avx512vl"))) void ngpt_scale_to_bf16(const float *x, float factor, void *out,
                                                                             long n) {
  const __m512 f = _mm512_set1_ps(factor);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16((uint16_t *)out + i, m,
                             ngpt_bf16_rne16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), f)));
  }
}
