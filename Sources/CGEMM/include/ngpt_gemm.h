// ngpt's own GEMM for x86-64 CPUs with AVX-512: packed panels and a 14×32 register-blocked micro-kernel, in fp32
// (vfmadd) and with bf16 inputs and fp32 accumulation (vdpbf16ps, AVX512_BF16). Each kernel carries its own
// target attribute, so the library builds for any x86-64 and the caller picks a kernel from
// ngpt_gemm_features() at run time. Row-major operands with explicit leading dimensions, like cblas_sgemm.
#ifndef NGPT_GEMM_H
#define NGPT_GEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  NGPT_GEMM_AVX512F = 1,     // the fp32 kernel can run (CPU and OS support AVX-512 state)
  NGPT_GEMM_AVX512BF16 = 2,  // the bf16 kernel can run
  NGPT_GEMM_AVX512BW = 4,    // 16-bit lane masks (the bf16 matrix–vector product's row tails)
};

// The kernels this CPU and OS can run (NGPT_GEMM_* bits); 0 on other CPUs.
int ngpt_gemm_features(void);

// C[m×n] = alpha · op(A) · op(B) + beta · C on the calling thread, where op(A) is m×k (A stored k×m when transA)
// and op(B) is k×n (B stored n×k when transB). With bf16 != 0 the inputs are rounded to bfloat16 (to nearest even)
// as they are packed and the products are accumulated in fp32. Requires the matching feature bit. beta == 0 never
// reads C (NaNs in it do not propagate).
void ngpt_gemm(int transA, int transB, long m, long n, long k, float alpha, const float *A, long lda, const float *B,
               long ldb, float beta, float *C, long ldc, int bf16);

// Several products that share an operand, computed with one packing of it: the bits of running them one after
// another with ngpt_gemm, with less packing (and, for a sum, one pass over C instead of one per product).
// Each part is C = op(A)[m×k] · op(B)[k×n] with its own pointers and leading dimensions; `share` says what the
// parts have in common, and the driver reads it from parts[0]:
// - NGPT_GEMM_SHARE_A: the same A, m and k (q, k and v of one input; SwiGLU's up and gate): C_g = alpha·op(A)·op(B_g)
//   + beta·C_g. op(A) is packed once per row block for every product.
// - NGPT_GEMM_SHARE_B: the same B, n and k (weight gradients of products with one input): C_g = alpha·op(A_g)·op(B)
//   + beta·C_g. op(B) is packed once per slice.
// - NGPT_GEMM_SUM: the same C, m and n (∂L/∂input of those products): C = alpha·Σ_g op(A_g)·op(B_g) + beta·C, summed
//   in part order. Each row block of C stays in cache while every product adds to it.
// A group too wide for one packed block of op(B) runs its products one after another (same bits).
// A part's A may hold bfloat16 values instead of floats (a_bf16 != 0; lda counts them), rounded by its producer
// as the bf16 packing rounds (to nearest even, a NaN kept quiet): the same products from half the bytes, for
// activations that only products read (CRowKernels' SwiGLU writes them). Only with bf16 != 0.
typedef struct {
  const void *A;
  long lda;
  const float *B;
  long ldb;
  float *C;
  long ldc;
  long m, n, k;
  int a_bf16;
} ngpt_gemm_part;
enum { NGPT_GEMM_SHARE_A = 0, NGPT_GEMM_SHARE_B = 1, NGPT_GEMM_SUM = 2 };
void ngpt_gemm_group(int transA, int transB, int share, const ngpt_gemm_part *parts, int count, float alpha, float beta,
                     int bf16);

// The calling thread's GEMM input precision (0 fp32, 1 bf16): a setting per thread, so that concurrent callers
// (tests, several runs in one process) each keep their own.
void ngpt_gemm_set_thread_precision(int bf16);
int ngpt_gemm_thread_precision(void);

// A buffer of at least `bytes` owned by the calling thread, one per slot (kept and grown across calls; 64-byte
// aligned; its contents are not kept when it grows). One slot per user, so that nested users never share one.
enum { NGPT_BUFFER_GEMM = 0, NGPT_BUFFER_ATTENTION = 1, NGPT_BUFFER_SLOTS = 2 };
void *ngpt_thread_buffer(int slot, size_t bytes);

// The weight-gradient split's second half of C (ngpt_thread_buffer's NGPT_BUFFER_GEMM slot, in floats).
float *ngpt_gemm_scratch(size_t floats);

// Operands packed once, multiplied many times (attention packs each head's K, V, Q and dY once and multiplies
// them tile by tile). ngpt_pack_a packs op(A) [m×k] (A stored k×m when transA) into MR-row panels, ngpt_pack_b
// op(B) [k×n] (B stored n×k when transB) into NR-column panels, in the micro-kernel's layout for `bf16`;
// ngpt_packed_*_floats give their sizes in floats (bf16 packs two k per float), rounded up to 16 so that
// packings placed one after another in a 64-byte aligned buffer stay aligned (op(B) must be).
long ngpt_packed_a_floats(long m, long k, int bf16);
long ngpt_packed_b_floats(long k, long n, int bf16);
void ngpt_pack_a(int transA, const float *A, long lda, long m, long k, void *dst, int bf16);
void ngpt_pack_b(int transB, const float *B, long ldb, long k, long n, void *dst, int bf16);

// C[i, j] = alpha · Σ_{p < depth} A'[i, a0 + p]·B'[b0 + p, j] + beta · C[i, j] for i0 ≤ i < i1, j0 ≤ j < j1, from
// A' and B' packed above with depths ka and kb. i0 is a multiple of the panel height (NGPT_GEMM_MR), j0 of the
// panel width (NGPT_GEMM_NR); for bf16 a0 and b0 are even and depth even or reaching the end of both packings
// (the kernel reads whole pairs). C points at element (0, 0). The sum runs over p in order as ngpt_gemm's does
// when k fits one slice (k ≤ 256 fp32, 512 bf16), so the two give the same bits there.
enum { NGPT_GEMM_MR = 14, NGPT_GEMM_NR = 32 };
void ngpt_gemm_packed(long i0, long i1, long j0, long j1, long depth, float alpha, const void *pa, long ka, long a0,
                      const void *pb, long kb, long b0, float beta, float *C, long ldc, int bf16);

// xb[i] = x[i] rounded to bfloat16 (to nearest even; a NaN stays a quiet NaN), for i < n.
void ngpt_bf16_round(const float *x, uint16_t *xb, long n);

// Y[b, r] = Σ_c A[r, c]·X[b, c] (+ beta·Y[b, r]) for r < rows and b < n: n vectors (X's rows, ldx apart) times
// A [rows, cols], A and X in bfloat16 (row-major), products accumulated in fp32 with vdpbf16ps (gemv.c). The
// decoder's products with bf16 weights, one stream (n = 1) or a batch: a stream's result is the same bits either
// way. Requires NGPT_GEMM_AVX512BF16 and NGPT_GEMM_AVX512BW; beta == 0 never reads Y.
void ngpt_gemv_bf16(long rows, long cols, const uint16_t *A, long lda, long n, const uint16_t *X, long ldx, float beta,
                    float *Y, long ldy);

// Profiling (ngpt-bench train): while on, every ngpt_gemm adds the time-stamp-counter ticks its thread spends
// packing operands (`pack`, of which `pack_b` for op(B)) and in micro-kernels to these counters (summed over
// threads); ngpt_pack_a/b add to `pack` and ngpt_gemm_packed to `kernel` (attention's products). Off by default.
typedef struct {
  unsigned long long pack, pack_b, kernel, calls;
} ngpt_gemm_profile;
void ngpt_gemm_profile_enable(int on);
ngpt_gemm_profile ngpt_gemm_profile_read(int reset);

// Runs `iterations` rounds of 24 independent 512-bit multiply-adds (vfmadd231ps, or vdpbf16ps with bf16 != 0) on
// the calling thread: timing it measures the core's peak rate for the benchmarks' "% of peak".
// Returns a value that depends on every operation, so nothing is optimised away.
float ngpt_gemm_peak_probe(long iterations, int bf16);

#ifdef __cplusplus
}
#endif

#endif
