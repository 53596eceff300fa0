// Attention's causal softmax and its backward over a tile of rows, with AVX-512 (Kernels/Attention.swift calls
// these for its packed tiles where the CPU has AVX-512, and keeps the Swift rows they match bit for bit). In C
// because Swift's SIMD moves a row's last partial vector in and out of registers one lane at a time.
#ifndef NGPT_SOFTMAX_H
#define NGPT_SOFTMAX_H

#ifdef __cplusplus
extern "C" {
#endif

// In place over `rows` rows of p (`ld` floats apart): row i's first valid_i = first_valid + i entries become their
// softmax (e^(x − max) / Σ), its entries from valid_i to `count` become 0. Attention.causalSoftmaxRow's
// operations in its order (its e^x, its lane sums, no fused multiply-adds), so its bits.
void ngpt_causal_softmax(float *p, long ld, long rows, long first_valid, long count);

// In place over `rows` rows of dP (d, `ld` apart) given the softmax P (p, `ld` apart): row i's first valid_i =
// first_valid + i entries become dS = P ⊙ (dP − ⟨dP, P⟩), its entries from valid_i to `count` 0.
// Attention.softmaxBackwardRow's operations in its order, so its bits.
void ngpt_causal_softmax_backward(const float *p, float *d, long ld, long rows, long first_valid, long count);

#ifdef __cplusplus
}
#endif

#endif
