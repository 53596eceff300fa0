// AdamW's per-value update with AVX-512 (Kernels/Optimizer.swift holds the arithmetic and calls this where the CPU
// has AVX-512). In C because Swift's SIMD square root is a loop of scalar sqrtf calls (they keep errno's
// semantics), which made the update compute-bound; here it is one vsqrtps per 16 values.
#ifndef NGPT_ADAMW_H
#define NGPT_ADAMW_H

#ifdef __cplusplus
extern "C" {
#endif

// For i < n:  g = grad[i]·grad_scale;  m[i] = β1·m[i] + (1 − β1)·g;  v[i] = β2·v[i] + (1 − β2)·g·g;
//             param[i] = param[i]·decay − step_size·m[i] / (√v[i]·inv_sqrt_bias2 + eps),
// each operation rounded in this order (no fused multiply-adds), as the Swift loop it replaces. Needs AVX-512F.
void ngpt_adamw_avx512(float *param, const float *grad, float *m, float *v, long n, float beta1, float beta2,
                       float decay, float step_size, float inv_sqrt_bias2, float eps, float grad_scale);

#ifdef __cplusplus
}
#endif

#endif
