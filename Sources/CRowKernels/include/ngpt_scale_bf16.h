// A row scaled and stored in bfloat16 (the cross-entropy's gradient, which only the output head's products read:
// Kernels/CrossEntropy.swift). In C for the same reason as SwiGLU's loops (ngpt_swiglu.h).
#ifndef NGPT_SCALE_BF16_H
#define NGPT_SCALE_BF16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// out[i] = bf16(x[i] · factor) for i < n, the product rounded to Float first (as Swift's x[i] * factor), then to
// bfloat16 as CGEMM's bf16 packing rounds. out may overlap x from its start (x's first n/2 floats): each value is
// read before any store reaches it, so a row of floats can become its bf16 form in place. Needs AVX-512BW.
void ngpt_scale_to_bf16(const float *x, float factor, void *out, long n);

#ifdef __cplusplus
}
#endif

#endif
