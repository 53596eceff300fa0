// Matrix–vector products for single-token decoding with bfloat16 weights (see include/ngpt_gemm.h). Decoding
// reads every weight once per token; the Swift loop this replaces widened each bf16 weight to fp32 (a shift or a
// mask) and did two fp32 multiply-adds per 32 weights, four vector operations where vdpbf16ps needs one. Here x is
// rounded to bfloat16 once per product (ngpt_bf16_round) and each row is a dot product of bf16 pairs accumulated
// in fp32 lanes. Several streams (a batch of x) share each load of a weight row. The caller splits the rows over
// its threads: each row's sum is the same on any split and in any batch.
#include <immintrin.h>
#include <stdint.h>

#include "ngpt_bf16.h"
#include "ngpt_gemm.h"

// The mask of the first `n` of 32 16-bit lanes (all when n ≥ 32).
static inline __mmask32 first_lanes(long n) { return n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1); }

// The sums of four accumulators' 16 lanes, in one vector: the same tree for each as _mm512_reduce_add_ps (lane j
// plus lane j + 8, then j + 4, j + 2, j + 1), so the bits are its bits, but the four share every shuffle and add
// (14 operations where four separate reductions take 32).
__attribute__((target("avx512f"), always_inline)) static inline __m128 sums4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // j + 8: 128-bit quarters 0+2 and 1+3 of a and b side by side, likewise c and d
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0xEE), _mm512_shuffle_f32x4(a, b, 0x44));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0xEE), _mm512_shuffle_f32x4(c, d, 0x44));
  // j + 4: quarter 1 + quarter 0 of each: [a, b, c, d], four lanes each
  const __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0xDD), _mm512_shuffle_f32x4(ab, cd, 0x88));
  const __m512 h = _mm512_add_ps(q, _mm512_permute_ps(q, 0x4E));    // j + 2
  const __m512 one = _mm512_add_ps(h, _mm512_permute_ps(h, 0xB1));  // j + 1: each sum in its quarter's lane 0
  const __m512i firsts = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(firsts, one));
}

// Y[b, r] = Σ_c A[r, c]·X[b, c] (+ beta·Y[b, r]) for a block of up to 4 rows and NB streams (NB = 1, 2 or 4):
// 4·NB fp32 accumulators, each fed by one vdpbf16ps per 32 columns in column order, then the masked tail, then a
// horizontal sum. Every (row, stream) pair sees exactly that sequence whatever the block around it, so a stream's
// result is the same bits alone or in a batch. Missing rows repeat the last real one (computed, not stored).
#define DEFINE_BLOCK(NB)                                                                                              \
  __attribute__((target("avx512f,avx512bw,avx512bf16"), always_inline)) static inline void block4x##NB(               \
      long nr, long cols, const uint16_t *A, long lda, const uint16_t *X, long ldx, float beta, float *Y, long ldy) { \
    const long full = cols / 32 * 32;                                                                                 \
    const __mmask32 tail = first_lanes(cols - full);                                                                  \
    const uint16_t *a[4];                                                                                             \
    for (int i = 0; i < 4; ++i) a[i] = A + (i < nr ? i : nr - 1) * lda;                                               \
    __m512 s[4][NB];                                                                                                  \
    for (int i = 0; i < 4; ++i)                                                                                       \
      for (int b = 0; b < NB; ++b) s[i][b] = _mm512_setzero_ps();                                                     \
    for (long c = 0; c < full; c += 32) {                                                                             \
      __m512bh av[4], xv[NB];                                                                                         \
      for (int i = 0; i < 4; ++i) av[i] = (__m512bh)_mm512_loadu_si512(a[i] + c);                                     \
      for (int b = 0; b < NB; ++b) xv[b] = (__m512bh)_mm512_loadu_si512(X + b * ldx + c);                             \
      for (int i = 0; i < 4; ++i)                                                                                     \
        for (int b = 0; b < NB; ++b) s[i][b] = _mm512_dpbf16_ps(s[i][b], av[i], xv[b]);                               \
    }                                                                                                                 \
    if (full < cols) {                                                                                                \
      __m512bh av[4], xv[NB];                                                                                         \
      for (int i = 0; i < 4; ++i) av[i] = (__m512bh)_mm512_maskz_loadu_epi16(tail, a[i] + full);                      \
      for (int b = 0; b < NB; ++b) xv[b] = (__m512bh)_mm512_maskz_loadu_epi16(tail, X + b * ldx + full);              \
      for (int i = 0; i < 4; ++i)                                                                                     \
        for (int b = 0; b < NB; ++b) s[i][b] = _mm512_dpbf16_ps(s[i][b], av[i], xv[b]);                               \
    }                                                                                                                 \
    for (int b = 0; b < NB; ++b) {                                                                                    \
      float t[4];                                                                                                     \
      _mm_storeu_ps(t, sums4(s[0][b], s[1][b], s[2][b], s[3][b]));                                                    \
      for (int i = 0; i < nr; ++i) {                                                                                  \
        float *y = Y + b * ldy + i;                                                                                   \
        *y = beta == 0 ? t[i] : t[i] + beta * *y;                                                                     \
      }                                                                                                               \
    }                                                                                                                 \
  }

DEFINE_BLOCK(1)
DEFINE_BLOCK(2)
DEFINE_BLOCK(4)

void ngpt_bf16_round(const float *x, uint16_t *xb, long n) {
  for (long c = 0; c < n; ++c) xb[c] = ngpt_bf16_rne(x[c]);
}

// One stream: four rows at a time share each load of x, then the remaining rows one by one. Each row's sum is
// the sequence block4xNB gives it (vdpbf16ps per 32 columns in order, the masked tail, a horizontal sum), so a
// stream's result is the same bits alone or in a batch; this loop only avoids a batch's block set-up per row.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void gemv_one(long rows, long cols, const uint16_t *A,
                                                                            long lda, const uint16_t *x, float beta,
                                                                            float *y) {
  const long full = cols / 32 * 32;
  const __mmask32 tail = first_lanes(cols - full);
  long r = 0;
  for (; r + 4 <= rows; r += 4) {
    const uint16_t *a0 = A + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (long c = 0; c < full; c += 32) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + c);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(a0 + c), xv);
      s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_loadu_si512(a1 + c), xv);
      s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_loadu_si512(a2 + c), xv);
      s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_loadu_si512(a3 + c), xv);
    }
    if (full < cols) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, x + full);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_maskz_loadu_epi16(tail, a0 + full), xv);
      s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_maskz_loadu_epi16(tail, a1 + full), xv);
      s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_maskz_loadu_epi16(tail, a2 + full), xv);
      s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_maskz_loadu_epi16(tail, a3 + full), xv);
    }
    float t[4];
    _mm_storeu_ps(t, sums4(s0, s1, s2, s3));
    for (int i = 0; i < 4; ++i) y[r + i] = beta == 0 ? t[i] : t[i] + beta * y[r + i];
  }
  if (r < rows) block4x1(rows - r, cols, A + r * lda, lda, x, 0, beta, y + r, 0);
}

// Every 4-row block of A against every stream, 4, 2 or 1 streams at a time (the block functions inline here, so
// their set-up is hoisted out of the loops). The 4 rows stay in L1 while the streams pass over them.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void gemv_blocks(long rows, long cols, const uint16_t *A,
                                                                               long lda, long n, const uint16_t *X,
                                                                               long ldx, float beta, float *Y,
                                                                               long ldy) {
  for (long r = 0; r < rows; r += 4) {
    const long nr = rows - r < 4 ? rows - r : 4;
    long b = 0;
    for (; b + 4 <= n; b += 4) block4x4(nr, cols, A + r * lda, lda, X + b * ldx, ldx, beta, Y + b * ldy + r, ldy);
    for (; b + 2 <= n; b += 2) block4x2(nr, cols, A + r * lda, lda, X + b * ldx, ldx, beta, Y + b * ldy + r, ldy);
    for (; b < n; ++b) block4x1(nr, cols, A + r * lda, lda, X + b * ldx, ldx, beta, Y + b * ldy + r, ldy);
  }
}

void ngpt_gemv_bf16(long rows, long cols, const uint16_t *A, long lda, long n, const uint16_t *X, long ldx, float beta,
                    float *Y, long ldy) {
  if (rows <= 0 || cols <= 0 || n <= 0) return;
  if (n == 1)
    gemv_one(rows, cols, A, lda, X, beta, Y);
  else
    gemv_blocks(rows, cols, A, lda, n, X, ldx, beta, Y, ldy);
}
