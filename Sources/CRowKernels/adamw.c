// See include/ngpt_adamw.h.
#include "ngpt_adamw.h"

#include <immintrin.h>
#include <math.h>

// Each product and sum rounded on its own, as in the Swift code this matches bit for bit.
#pragma STDC FP_CONTRACT OFF

__attribute__((target("avx512f"))) void ngpt_adamw_avx512(float *param, const float *grad, float *m, float *v, long n,
                                                          float beta1, float beta2, float decay, float step_size,
                                                          float inv_sqrt_bias2, float eps, float grad_scale) {
  const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2), c1 = _mm512_set1_ps(1 - beta1),
               c2 = _mm512_set1_ps(1 - beta2), vdecay = _mm512_set1_ps(decay), vstep = _mm512_set1_ps(step_size),
               vbias = _mm512_set1_ps(inv_sqrt_bias2), veps = _mm512_set1_ps(eps), vscale = _mm512_set1_ps(grad_scale);
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(grad + i), vscale);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, g));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 denominator = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), vbias), veps);
    const __m512 step = _mm512_div_ps(_mm512_mul_ps(vstep, mi), denominator);
    _mm512_storeu_ps(param + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(param + i), vdecay), step));
  }
  for (; i < n; ++i) {
    const float g = grad[i] * grad_scale;
    const float mi = beta1 * m[i] + (1 - beta1) * g;
    const float vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bias2 + eps);
  }
}
