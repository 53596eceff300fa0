// SwiGLU's gate and its backward with AVX-512 (Kernels/SwiGLU.swift holds the arithmetic and calls these where the
// CPU has AVX-512). In C because their outputs are only read by matrix products, and where those run in bf16 the
// outputs are stored in bf16, rounded as the products' packing would round them: a few vector instructions here,
// where Swift's SIMD narrows 32-bit lanes to 16 one lane at a time (design §5).
#ifndef NGPT_SWIGLU_H
#define NGPT_SWIGLU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// For i < n:  out[i] = u[i]·ν[i]·σ(ν[i]),  σ(x) = 1/(1 + e^−x). Stored as floats (out_bf16 == 0) or as bfloat16
// (out_bf16 != 0: `out` holds n uint16 values, rounded to nearest even with a NaN kept quiet, as CGEMM's bf16
// packing rounds). Each operation rounded in the order of the Swift loop it replaces
// (its e^x, no fused multiply-adds, libm's expf for the last n mod 16), so the float output is its bits.
void ngpt_swiglu_forward(const float *u, const float *gate, void *out, long n, int out_bf16);

// For i < n:  du[i] = dout[i]·ν[i]·σ(ν[i]),  dν[i] = dout[i]·u[i]·σ(ν[i])·(1 + ν[i]·(1 − σ(ν[i]))), stored as
// floats or bfloat16 like the forward's output. du and dν may not alias the inputs when stored as bfloat16.
void ngpt_swiglu_backward(const float *dout, const float *u, const float *gate, void *du, void *dgate, long n,
                          int out_bf16);

#ifdef __cplusplus
}
#endif

#endif
