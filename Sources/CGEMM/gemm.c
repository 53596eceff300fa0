// ngpt's GEMM (see include/ngpt_gemm.h). The structure is the classic one of GotoBLAS/BLIS: C is computed in
// NC-wide column blocks; for each KC-deep slice, op(B) is packed into NR-wide panels and op(A) into MC×KC blocks of
// MR-row panels; a micro-kernel keeps a 14×32 tile of C in 28 zmm registers while it streams one A panel and one B
// panel. fp32: one vfmadd231ps per 16 multiply-adds. bf16: the packing rounds to bfloat16 and interleaves k in
// pairs, so one vdpbf16ps does 32 multiply-adds (two k at once) into fp32 lanes.
#include "ngpt_gemm.h"
#include "ngpt_bf16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#define MR NGPT_GEMM_MR  // 14 rows of C per micro-kernel tile
#define NR NGPT_GEMM_NR  // 32 columns
#define KC 256           // fp32 slice depth
#define KC_BF16 512      // bf16 slice depth: the same bytes per packed panel as fp32 (k in pairs)
#define MC (MR * 12)
#define NC 2048  // a multiple of NR

static long min_l(long a, long b) { return a < b ? a : b; }

// The mask of the first `lanes` of 16 (none when lanes ≤ 0, all when lanes ≥ 16): partial rows and panel edges.
static inline __mmask16 lanes_mask(long lanes) {
  return lanes >= 16 ? (__mmask16)0xFFFF : lanes <= 0 ? (__mmask16)0 : (__mmask16)((1u << lanes) - 1);
}

// ---------------------------------------------------------------------------------------------------------------
// CPU features

// Packing reads its source rows from L3 or memory (the activations of a step do not fit in L2), and each row's
// stretch is too short for the hardware prefetcher to lock on: without help the loads stall, and packing is
// memory-latency bound. So each packer asks for the lines it will read a little ahead: the same stretch of the next
// panel's rows (rows along k), or the rows PREFETCH_PAIRS pairs of k ahead (rows across k). The next panel's lines
// go to L2 (prefetcht1): asked into L1, its 28 lines per step held the miss buffers that the current panel's loads
// need, and packing a cold [65536, 256] matrix took 0.94 instead of 0.44 TSC ticks per value (Zen 4).
#define PREFETCH_PAIRS 4
static inline void prefetch_stretch(const float *p, long floats) {
  for (long f = 0; f < floats; f += 16) _mm_prefetch((const char *)(p + f), _MM_HINT_T0);
}
// The same into L2, for op(B)'s rows: up to NC = 2048 floats each, so many lines at once that asked into L1 they
// hold its miss buffers (a cold [32768, 683] op(B) packed at 1.25 ticks per value this way, 0.81 into L2).
static inline void prefetch_stretch_l2(const float *p, long floats) {
  for (long f = 0; f < floats; f += 16) _mm_prefetch((const char *)(p + f), _MM_HINT_T1);
}

static int detect_features(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return 0;  // the OS saves SSE, AVX, opmask and all 32 zmm registers
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((b >> 16) & 1)) return 0;  // AVX512F
  int features = NGPT_GEMM_AVX512F | (((b >> 30) & 1) ? NGPT_GEMM_AVX512BW : 0);
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1)) features |= NGPT_GEMM_AVX512BF16;
  return features;
}

int ngpt_gemm_features(void) {
  static int features = -1;
  if (features < 0) features = detect_features();
  return features;
}

// ---------------------------------------------------------------------------------------------------------------
// Per-thread packing buffers (allocated on first use, kept for the thread's life)

static _Thread_local void *packed_a, *packed_b;
static _Thread_local int thread_precision;

void ngpt_gemm_set_thread_precision(int bf16) { thread_precision = bf16 != 0; }
int ngpt_gemm_thread_precision(void) { return thread_precision; }

static void *buffer(void **slot, size_t bytes) {
  if (*slot == NULL) {
    if (posix_memalign(slot, 64, bytes) != 0) abort();  // out of memory: nothing sensible to return
  }
  return *slot;
}

// ---------------------------------------------------------------------------------------------------------------
// Transposes a 16×16 block of 32-bit words in registers: afterwards r[t] holds word t of every input row.
// Three stages: 32-bit and 64-bit unpacks transpose the 4×4 blocks inside each 128-bit lane, then two rounds of
// lane shuffles put the blocks in place.
__attribute__((target("avx512f"))) static inline void transpose16(__m512i r[16]) {
  __m512i t[16], s[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // s[i + j]: column j (and 4+j, 8+j, 12+j in lanes 1–3) of rows i..i+3
    s[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    s[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    s[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    s[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i x = _mm512_shuffle_i32x4(s[j], s[4 + j], 0x88), y = _mm512_shuffle_i32x4(s[j], s[4 + j], 0xdd);
    const __m512i z = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0x88),
                  w = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(x, z, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(x, z, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(y, w, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(y, w, 0xdd);
  }
}

// A panel from `lines` rows of src (k contiguous, `ld` apart), fp32: value p of line i at [p * width + i]; lines
// from `lines` to `width` are zero. Sixteen lines × 16 values at a time through `transpose16`.
__attribute__((target("avx512f"))) static void pack_panel_f32(const float *src, long ld, long lines, long width,
                                                              long kc, float *dst) {
  const long full = kc / 16 * 16;
  for (long g = 0; g < width; g += 16) {
    const long here = min_l(16, width - g), live = lines - g < 0 ? 0 : min_l(16, lines - g);
    const __mmask16 store = lanes_mask(here);
    for (long p = 0; p < full; p += 16) {
      __m512i r[16];
      for (long l = 0; l < 16; ++l) {
        _mm_prefetch((const char *)(src + (g + l + width) * ld + p), _MM_HINT_T1);  // the next panel, same stretch
        r[l] = l < live ? _mm512_loadu_si512((const void *)(src + (g + l) * ld + p)) : _mm512_setzero_si512();
      }
      transpose16(r);
      for (long t = 0; t < 16; ++t) _mm512_mask_storeu_epi32(dst + (p + t) * width + g, store, r[t]);
    }
    for (long l = 0; l < here; ++l) {
      for (long p = full; p < kc; ++p) dst[p * width + g + l] = l < live ? src[(g + l) * ld + p] : 0;
    }
  }
}

// Packing, fp32. op(A)[i0 + i][p0 + p] goes to panel i / MR at [p][i % MR]; op(B)[p0 + p][j0 + j] to panel j / NR
// at [p][j % NR]. Panels past the edge are padded with zeros, so the micro-kernel never branches.

__attribute__((target("avx512f"))) static void pack_a_f32(int transA, const float *A, long lda, long i0, long mc,
                                                          long p0, long kc, float *dst) {
  if (!transA) {
    for (long r = 0; r < mc; r += MR, dst += kc * MR)
      pack_panel_f32(A + (i0 + r) * lda + p0, lda, min_l(MR, mc - r), MR, kc, dst);
    return;
  }
  // op(A) = Aᵀ: each stored row of A holds one k for every i, so read it once, contiguously, into all the panels.
  for (long p = 0; p < kc; ++p) {
    const float *src = A + (p0 + p) * lda + i0;
    if (p + 2 * PREFETCH_PAIRS < kc) prefetch_stretch(src + 2 * PREFETCH_PAIRS * lda, mc);
    for (long r = 0; r < mc; r += MR) {
      const long rows = min_l(MR, mc - r);
      _mm512_mask_storeu_ps(dst + r * kc + p * MR, lanes_mask(MR), _mm512_maskz_loadu_ps(lanes_mask(rows), src + r));
    }
  }
}

__attribute__((target("avx512f"))) static void pack_b_f32(int transB, const float *B, long ldb, long p0, long kc,
                                                          long j0, long nc, float *dst) {
  if (transB) {
    for (long c = 0; c < nc; c += NR, dst += kc * NR)
      pack_panel_f32(B + (j0 + c) * ldb + p0, ldb, min_l(NR, nc - c), NR, kc, dst);
    return;
  }
  // Each stored row of B holds one k for every j: read it once, contiguously, into all the panels.
  for (long p = 0; p < kc; ++p) {
    const float *src = B + (p0 + p) * ldb + j0;
    if (p + 2 * PREFETCH_PAIRS < kc) prefetch_stretch_l2(src + 2 * PREFETCH_PAIRS * ldb, nc);
    for (long c = 0; c < nc; c += NR) {
      const long cols = min_l(NR, nc - c);
      float *d = dst + c * kc + p * NR;
      _mm512_store_ps(d, _mm512_maskz_loadu_ps(lanes_mask(cols), src + c));
      _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(lanes_mask(cols - 16), src + c + 16));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Packing, bf16: the same panels with k in pairs. A: one 32-bit word per (pair, row) holding (k even, k odd) as
// (low, high) bf16; B: per pair, NR words each holding (k even, k odd) of one column. An odd kc pads with zero.

static inline uint32_t pair(float even, float odd) {
  return (uint32_t)ngpt_bf16_rne(even) | ((uint32_t)ngpt_bf16_rne(odd) << 16);
}

// Pairs (e[l], o[l]) lane by lane: k even from one row, k odd from the next.
__attribute__((target("avx512f"))) static inline __m512i pairs_across(__m512 e, __m512 o) {
  return _mm512_or_si512(_mm512_srli_epi32(ngpt_bf16_rne_upper(e), 16),
                         _mm512_and_si512(ngpt_bf16_rne_upper(o), _mm512_set1_epi32((int)0xffff0000)));
}

// Pairs of neighbours along one row: 32 consecutive floats → 16 pairs (x[2l], x[2l+1]).
// The rounded values' upper halves, picked in order from both vectors by one two-source word permutation (vpermt2w,
// AVX512BW: the bf16 packers run only where the bf16 kernel does, and every CPU with AVX512_BF16 has AVX512BW).
__attribute__((target("avx512f,avx512bw"))) static inline __m512i pairs_along(__m512 x0, __m512 x1) {
  const __m512i upper_halves = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29,
                                                27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_permutex2var_epi16(ngpt_bf16_rne_upper(x0), upper_halves, ngpt_bf16_rne_upper(x1));
}

// Two rows' `lanes` values (k even, k odd) as pairs, into 16 words (lanes past `lanes` are 0).
__attribute__((target("avx512f"))) static inline __m512i pairs_of_rows(const float *even, const float *odd,
                                                                       long lanes) {
  const __mmask16 m = lanes_mask(lanes);
  const __m512 e = _mm512_maskz_loadu_ps(m, even), o = odd ? _mm512_maskz_loadu_ps(m, odd) : _mm512_setzero_ps();
  return pairs_across(e, o);
}

// A panel from `lines` rows of src (k contiguous, `ld` apart): pair q of line i at [q * width + i]; the lines
// from `lines` to `width` are zero. Sixteen lines at a time, 16 pairs (32 k) at a time: convert each line's 32
// values to 16 pairs, transpose the 16×16 words, store 16 contiguous words per pair.
__attribute__((target("avx512f,avx512bw"))) static void pack_panel_along(const float *src, long ld, long lines,
                                                                         long width, long kc, uint32_t *dst) {
  const long kq = (kc + 1) / 2, full = kc / 32 * 16;  // pairs handled 16 at a time
  for (long g = 0; g < width; g += 16) {
    const long here = min_l(16, width - g), live = lines - g < 0 ? 0 : min_l(16, lines - g);
    const __mmask16 store = lanes_mask(here);
    for (long q = 0; q < full; q += 16) {
      __m512i r[16];
      for (long l = 0; l < 16; ++l) {
        const float *row = src + (g + l) * ld + 2 * q;
        _mm_prefetch((const char *)(row + width * ld), _MM_HINT_T1);  // the next panel, same stretch
        _mm_prefetch((const char *)(row + width * ld + 16), _MM_HINT_T1);
        r[l] = l < live ? pairs_along(_mm512_loadu_ps(row), _mm512_loadu_ps(row + 16)) : _mm512_setzero_si512();
      }
      transpose16(r);
      for (long t = 0; t < 16; ++t) _mm512_mask_storeu_epi32(dst + (q + t) * width + g, store, r[t]);
    }
    for (long l = 0; l < here; ++l) {
      for (long q = full; q < kq; ++q) {
        long p = 2 * q;
        dst[q * width + g + l] = l < live ? pair(src[(g + l) * ld + p], p + 1 < kc ? src[(g + l) * ld + p + 1] : 0) : 0;
      }
    }
  }
}

__attribute__((target("avx512f,avx512bw"))) static void pack_a_bf16(int transA, const float *A, long lda, long i0,
                                                                    long mc, long p0, long kc, uint32_t *dst) {
  const long kq = (kc + 1) / 2;
  if (!transA) {
    for (long r = 0; r < mc; r += MR, dst += kq * MR)
      pack_panel_along(A + (i0 + r) * lda + p0, lda, min_l(MR, mc - r), MR, kc, dst);
    return;
  }
  // op(A) = Aᵀ: two stored rows of A hold a pair of k for every i; read them once, contiguously, into all the panels.
  for (long q = 0; q < kq; ++q) {
    const float *even = A + (p0 + 2 * q) * lda + i0, *odd = 2 * q + 1 < kc ? even + lda : NULL;
    if (2 * (q + PREFETCH_PAIRS) + 1 < kc) {
      prefetch_stretch(even + 2 * PREFETCH_PAIRS * lda, mc);
      prefetch_stretch(even + (2 * PREFETCH_PAIRS + 1) * lda, mc);
    }
    for (long r = 0; r < mc; r += MR) {
      _mm512_mask_storeu_epi32(dst + r * kq + q * MR, lanes_mask(MR),
                               pairs_of_rows(even + r, odd ? odd + r : NULL, min_l(MR, mc - r)));
    }
  }
}

__attribute__((target("avx512f,avx512bw"))) static void pack_b_bf16(int transB, const float *B, long ldb, long p0,
                                                                    long kc, long j0, long nc, uint32_t *dst) {
  const long kq = (kc + 1) / 2;
  if (transB) {
    for (long c = 0; c < nc; c += NR, dst += kq * NR)
      pack_panel_along(B + (j0 + c) * ldb + p0, ldb, min_l(NR, nc - c), NR, kc, dst);
    return;
  }
  // Two stored rows of B hold a pair of k for every j: read them once, contiguously, into all the panels.
  for (long q = 0; q < kq; ++q) {
    const float *even = B + (p0 + 2 * q) * ldb + j0, *odd = 2 * q + 1 < kc ? even + ldb : NULL;
    if (2 * (q + PREFETCH_PAIRS) + 1 < kc) {
      prefetch_stretch_l2(even + 2 * PREFETCH_PAIRS * ldb, nc);
      prefetch_stretch_l2(even + (2 * PREFETCH_PAIRS + 1) * ldb, nc);
    }
    for (long c = 0; c < nc; c += NR) {
      const long cols = min_l(NR, nc - c);
      uint32_t *d = dst + c * kq + q * NR;
      _mm512_store_si512((void *)d, pairs_of_rows(even + c, odd ? odd + c : NULL, cols));
      _mm512_store_si512((void *)(d + 16), cols > 16
                                               ? pairs_of_rows(even + c + 16, odd ? odd + c + 16 : NULL, cols - 16)
                                               : _mm512_setzero_si512());
    }
  }
}

// op(A) from bfloat16 values that its producer stored already rounded (as the packers above would round them: an
// activation that only products read, in half the bytes). The same panels; nothing to round, so packing is moving
// words: along k a stored pair is one 32-bit word, across k two rows' values are interleaved.

// A panel from `lines` rows of bf16 values (k contiguous, `ld` apart): the pair q of line i, the 32-bit word at
// src + 2q, to [q * width + i]; the lines from `lines` to `width` are zero. Sixteen lines × 16 pairs (one 64-byte
// line each) at a time through `transpose16`.
__attribute__((target("avx512f"))) static void pack_panel_halves(const uint16_t *src, long ld, long lines, long width,
                                                                 long kc, uint32_t *dst) {
  const long kq = (kc + 1) / 2, full = kc / 32 * 16;
  for (long g = 0; g < width; g += 16) {
    const long here = min_l(16, width - g), live = lines - g < 0 ? 0 : min_l(16, lines - g);
    const __mmask16 store = lanes_mask(here);
    for (long q = 0; q < full; q += 16) {
      __m512i r[16];
      for (long l = 0; l < 16; ++l) {
        const uint16_t *row = src + (g + l) * ld + 2 * q;
        _mm_prefetch((const char *)(row + width * ld), _MM_HINT_T1);  // the next panel, same stretch
        r[l] = l < live ? _mm512_loadu_si512((const void *)row) : _mm512_setzero_si512();
      }
      transpose16(r);
      for (long t = 0; t < 16; ++t) _mm512_mask_storeu_epi32(dst + (q + t) * width + g, store, r[t]);
    }
    for (long l = 0; l < here; ++l) {
      const uint16_t *row = src + (g + l) * ld;
      for (long q = full; q < kq; ++q) {
        const uint32_t odd = 2 * q + 1 < kc ? row[2 * q + 1] : 0;
        dst[q * width + g + l] = l < live ? row[2 * q] | odd << 16 : 0;
      }
    }
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void pack_a_halves(int transA, const uint16_t *A, long lda,
                                                                               long i0, long mc, long p0, long kc,
                                                                               uint32_t *dst) {
  const long kq = (kc + 1) / 2;
  if (!transA) {
    for (long r = 0; r < mc; r += MR, dst += kq * MR)
      pack_panel_halves(A + (i0 + r) * lda + p0, lda, min_l(MR, mc - r), MR, kc, dst);
    return;
  }
  // Two stored rows hold a pair of k for every i: each 16-bit value widened to a word, the odd row's shifted up.
  for (long q = 0; q < kq; ++q) {
    const uint16_t *even = A + (p0 + 2 * q) * lda + i0, *odd = 2 * q + 1 < kc ? even + lda : NULL;
    if (2 * (q + PREFETCH_PAIRS) + 1 < kc) {
      prefetch_stretch((const float *)(even + 2 * PREFETCH_PAIRS * lda), (mc + 1) / 2);
      prefetch_stretch((const float *)(even + (2 * PREFETCH_PAIRS + 1) * lda), (mc + 1) / 2);
    }
    for (long r = 0; r < mc; r += MR) {
      const __mmask16 m = lanes_mask(min_l(MR, mc - r));
      const __m512i e = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, even + r));
      const __m512i o = odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, odd + r)) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(dst + r * kq + q * MR, lanes_mask(MR), _mm512_or_si512(e, _mm512_slli_epi32(o, 16)));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Micro-kernels: C[0:mr, 0:nr] = alpha · (A panel · B panel) + beta · C (C is not read when beta == 0).

// The tile's C lines are asked for before the loop over k: a step's outputs are fresh lines in memory, and
// without this every one of the 28 stores (or loads, with beta) at the end waits for its line. A row's first,
// 17th and last column: a row of 32 floats that does not start on a line boundary spans three lines.
#define PREFETCH_TILE                                                           \
  do {                                                                          \
    for (long i = 0; i < mr; ++i) {                                             \
      _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                   \
      _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);          \
      if (nr > 16) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0); \
    }                                                                           \
  } while (0)

#define STORE_TILE                                                                  \
  do {                                                                              \
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);             \
    const __mmask16 m0 = lanes_mask(nr), m1 = lanes_mask(nr - 16);                  \
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; ++i) {                         \
      if (i < mr) {                                                                 \
        float *ci = c + i * ldc;                                                    \
        __m512 r0 = acc[i][0], r1 = acc[i][1]; /* alpha 1 (most products): as is */ \
        if (alpha != 1) {                                                           \
          r0 = _mm512_mul_ps(r0, va);                                               \
          r1 = _mm512_mul_ps(r1, va);                                               \
        }                                                                           \
        if (beta != 0) {                                                            \
          r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);              \
          r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);         \
        }                                                                           \
        _mm512_mask_storeu_ps(ci, m0, r0);                                          \
        _mm512_mask_storeu_ps(ci + 16, m1, r1);                                     \
      }                                                                             \
    }                                                                               \
  } while (0)

// The loops over k, for a tile of `vectors` column vectors: 2 (NR = 32 columns), or 1 where the tile's columns end
// within the first 16 (a panel at the right edge of C: F = 683 is 21 panels and 11 columns), which then costs
// half the multiply-adds. Each lane's sum is the same sequence either way. Inlined with a constant `vectors`.
__attribute__((target("avx512f"), always_inline)) static inline void kernel_f32_loop(const int vectors, long kc,
                                                                                     const float *restrict a,
                                                                                     const float *restrict b, float *c,
                                                                                     long ldc, float alpha, float beta,
                                                                                     long mr, long nr) {
  __m512 acc[MR][2];
  _Pragma("GCC unroll 14") for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  PREFETCH_TILE;
  for (long p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b), b1 = vectors > 1 ? _mm512_load_ps(b + 16) : _mm512_setzero_ps();
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (vectors > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
  STORE_TILE;
}

__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline void kernel_bf16_loop(
    const int vectors, long kq, const uint32_t *restrict a, const uint32_t *restrict b, float *c, long ldc, float alpha,
    float beta, long mr, long nr) {
  __m512 acc[MR][2];
  _Pragma("GCC unroll 14") for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  PREFETCH_TILE;
  for (long q = 0; q < kq; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b),
                   b1 = vectors > 1 ? (__m512bh)_mm512_load_si512((const void *)(b + 16))
                                    : (__m512bh)_mm512_setzero_si512();
    _Pragma("GCC unroll 14") for (int i = 0; i < MR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      if (vectors > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
    a += MR;
    b += NR;
  }
  STORE_TILE;
}

// A tile of C (mr ≤ MR rows, nr ≤ NR columns) from one A panel and one B panel, `depth` steps of k (fp32) or of
// k pairs (bf16).
__attribute__((target("avx512f"))) static void kernel_f32(long kc, const float *restrict a, const float *restrict b,
                                                          float *c, long ldc, float alpha, float beta, long mr,
                                                          long nr) {
  if (nr > 16)
    kernel_f32_loop(2, kc, a, b, c, ldc, alpha, beta, mr, nr);
  else
    kernel_f32_loop(1, kc, a, b, c, ldc, alpha, beta, mr, nr);
}

__attribute__((target("avx512f,avx512bf16"))) static void kernel_bf16(long kq, const uint32_t *restrict a,
                                                                      const uint32_t *restrict b, float *c, long ldc,
                                                                      float alpha, float beta, long mr, long nr) {
  if (nr > 16)
    kernel_bf16_loop(2, kq, a, b, c, ldc, alpha, beta, mr, nr);
  else
    kernel_bf16_loop(1, kq, a, b, c, ldc, alpha, beta, mr, nr);
}

// ---------------------------------------------------------------------------------------------------------------
// The driver: NC column blocks, KC slices (beta applies to the first), MC row blocks, then NR × MR tiles.

__attribute__((target("avx512f"))) static void scale_c(long m, long n, float beta, float *C, long ldc) {
  for (long i = 0; i < m; ++i) {
    float *ci = C + i * ldc;
    for (long j = 0; j < n; ++j) ci[j] = beta == 0 ? 0 : beta * ci[j];
  }
}

static _Atomic int profiling;
static _Atomic unsigned long long profile_pack, profile_pack_b, profile_kernel, profile_calls;

void ngpt_gemm_profile_enable(int on) { atomic_store(&profiling, on != 0); }

ngpt_gemm_profile ngpt_gemm_profile_read(int reset) {
  ngpt_gemm_profile p = {atomic_load(&profile_pack), atomic_load(&profile_pack_b), atomic_load(&profile_kernel),
                         atomic_load(&profile_calls)};
  if (reset) {
    atomic_store(&profile_pack, 0);
    atomic_store(&profile_pack_b, 0);
    atomic_store(&profile_kernel, 0);
    atomic_store(&profile_calls, 0);
  }
  return p;
}

// Time stamps around the packing calls when profiling (a branch per panel otherwise).
#define TICK(profile) ((profile) ? __rdtsc() : 0)

// Packed panels are counted in 4-byte units: floats, or words holding a k pair (bf16).
static long units(long kc, int bf16) { return bf16 ? (kc + 1) / 2 : kc; }
static long whole_panels(long n) { return (n + NR - 1) / NR * NR; }

// Ticks spent packing, summed over one call (profiling only).
struct ticks {
  unsigned long long packing, packing_b;
};

static void pack_a_block(int transA, const void *A, int a_bf16, long lda, long i0, long mc, long p0, long kc,
                         float *dst, int bf16, int profile, struct ticks *t) {
  unsigned long long start = TICK(profile);
  if (a_bf16)
    pack_a_halves(transA, A, lda, i0, mc, p0, kc, (uint32_t *)dst);
  else if (bf16)
    pack_a_bf16(transA, A, lda, i0, mc, p0, kc, (uint32_t *)dst);
  else
    pack_a_f32(transA, A, lda, i0, mc, p0, kc, dst);
  if (profile) t->packing += __rdtsc() - start;
}

static void pack_b_block(int transB, const float *B, long ldb, long p0, long kc, long j0, long nc, float *dst, int bf16,
                         int profile, struct ticks *t) {
  unsigned long long start = TICK(profile);
  if (bf16)
    pack_b_bf16(transB, B, ldb, p0, kc, j0, nc, (uint32_t *)dst);
  else
    pack_b_f32(transB, B, ldb, p0, kc, j0, nc, dst);
  if (profile) t->packing_b += __rdtsc() - start;
}

// C[0:mc, 0:nc] = alpha · (packed A block · packed B block) + beta · C, tile by tile: NR-wide column panels
// outside, MR-row panels inside, so that one B panel stays in L1 while the block's A panels stream past it.
static void multiply_block(long mc, long nc, long kc, const float *pa, const float *pb, float *C, long ldc, float alpha,
                           float beta, int bf16) {
  const long u = units(kc, bf16);
  for (long jr = 0; jr < nc; jr += NR) {
    for (long ir = 0; ir < mc; ir += MR) {
      float *c = C + ir * ldc + jr;
      const long mr = min_l(MR, mc - ir), nr = min_l(NR, nc - jr);
      if (bf16)
        kernel_bf16(u, (const uint32_t *)(pa + ir * u), (const uint32_t *)(pb + jr * u), c, ldc, alpha, beta, mr, nr);
      else
        kernel_f32(u, pa + ir * u, pb + jr * u, c, ldc, alpha, beta, mr, nr);
    }
  }
}

// The drivers. Each packs a KC-deep slice of op(B) into NR-wide panels for up to NC columns, then for each MC-row
// block packs op(A)'s slice and runs the micro-kernels; beta applies to the first slice of C's sum. Products that
// share an operand pack it once for all of them (ngpt_gemm_group). The sum over k runs slice by slice in the same
// order for every C element in all three, so a group gives the bits of its products run one after another.

// Products sharing op(B) (one product is this with count 1): NC column blocks, KC slices, each product's MC row
// blocks.
static void gemm_shared_b(int transA, int transB, const ngpt_gemm_part *parts, int count, float alpha, float beta,
                          int bf16, int profile, struct ticks *t) {
  const long n = parts[0].n, k = parts[0].k, depth = bf16 ? KC_BF16 : KC;
  float *pa = buffer(&packed_a, sizeof(float) * MC * KC), *pb = buffer(&packed_b, sizeof(float) * KC * NC);
  for (long jc = 0; jc < n; jc += NC) {
    const long nc = min_l(NC, n - jc);
    for (long pc = 0; pc < k; pc += depth) {
      const long kc = min_l(depth, k - pc);
      pack_b_block(transB, parts[0].B, parts[0].ldb, pc, kc, jc, nc, pb, bf16, profile, t);
      for (int g = 0; g < count; ++g) {
        const ngpt_gemm_part *p = parts + g;
        for (long ic = 0; ic < p->m; ic += MC) {
          const long mc = min_l(MC, p->m - ic);
          pack_a_block(transA, p->A, p->a_bf16, p->lda, ic, mc, pc, kc, pa, bf16, profile, t);
          multiply_block(mc, nc, kc, pa, pb, p->C + ic * p->ldc + jc, p->ldc, alpha, pc == 0 ? beta : 1, bf16);
        }
      }
    }
  }
}

// Products sharing op(A) (q, k and v from one input): every product's slice of op(B) is packed side by side, then
// each MC-row block of op(A) is packed once and multiplied by all of them. The products' columns, each rounded up
// to whole panels, must fit one block (NC); the caller checks.
static void gemm_shared_a(int transA, int transB, const ngpt_gemm_part *parts, int count, float alpha, float beta,
                          int bf16, int profile, struct ticks *t) {
  const long m = parts[0].m, k = parts[0].k, depth = bf16 ? KC_BF16 : KC;
  float *pa = buffer(&packed_a, sizeof(float) * MC * KC), *pb = buffer(&packed_b, sizeof(float) * KC * NC);
  for (long pc = 0; pc < k; pc += depth) {
    const long kc = min_l(depth, k - pc), u = units(kc, bf16);
    for (long g = 0, column = 0; g < count; column += whole_panels(parts[g].n), ++g)
      pack_b_block(transB, parts[g].B, parts[g].ldb, pc, kc, 0, parts[g].n, pb + column * u, bf16, profile, t);
    for (long ic = 0; ic < m; ic += MC) {
      const long mc = min_l(MC, m - ic);
      pack_a_block(transA, parts[0].A, parts[0].a_bf16, parts[0].lda, ic, mc, pc, kc, pa, bf16, profile, t);
      for (long g = 0, column = 0; g < count; column += whole_panels(parts[g].n), ++g) {
        const ngpt_gemm_part *p = parts + g;
        multiply_block(mc, p->n, kc, pa, pb + column * u, p->C + ic * p->ldc, p->ldc, alpha, pc == 0 ? beta : 1, bf16);
      }
    }
  }
}

// Products summed into one C (∂L/∂x of q, k and v): for each NC column block every product's every slice of op(B)
// is packed first, then each MC-row block of C takes all the products' slices while it is in L2. Every packed
// slice of the block must fit the B buffer (KC × NC floats); the caller checks.
static void gemm_summed(int transA, int transB, const ngpt_gemm_part *parts, int count, float alpha, float beta,
                        int bf16, int profile, struct ticks *t) {
  const long m = parts[0].m, n = parts[0].n, depth = bf16 ? KC_BF16 : KC;
  float *C = parts[0].C;
  const long ldc = parts[0].ldc;
  float *pa = buffer(&packed_a, sizeof(float) * MC * KC), *pb = buffer(&packed_b, sizeof(float) * KC * NC);
  for (long jc = 0; jc < n; jc += NC) {
    const long nc = min_l(NC, n - jc), width = whole_panels(nc);
    float *slice = pb;
    for (int g = 0; g < count; ++g) {
      for (long pc = 0; pc < parts[g].k; pc += depth) {
        const long kc = min_l(depth, parts[g].k - pc);
        pack_b_block(transB, parts[g].B, parts[g].ldb, pc, kc, jc, nc, slice, bf16, profile, t);
        slice += units(kc, bf16) * width;
      }
    }
    for (long ic = 0; ic < m; ic += MC) {
      const long mc = min_l(MC, m - ic);
      float b = beta;
      slice = pb;
      for (int g = 0; g < count; ++g) {
        for (long pc = 0; pc < parts[g].k; pc += depth) {
          const long kc = min_l(depth, parts[g].k - pc);
          pack_a_block(transA, parts[g].A, parts[g].a_bf16, parts[g].lda, ic, mc, pc, kc, pa, bf16, profile, t);
          multiply_block(mc, nc, kc, pa, slice, C + ic * ldc + jc, ldc, alpha, b, bf16);
          slice += units(kc, bf16) * width;
          b = 1;
        }
      }
    }
  }
}

// Whether a group fits its driver's one packed block of op(B) (else its products run one after another).
static int group_fits(int share, const ngpt_gemm_part *parts, int count, int bf16) {
  long floats = 0;
  for (int g = 0; g < count; ++g) {
    if (share == NGPT_GEMM_SHARE_A) floats += whole_panels(parts[g].n);
    if (share == NGPT_GEMM_SUM) floats += units(parts[g].k, bf16) * whole_panels(min_l(NC, parts[g].n));
  }
  return share == NGPT_GEMM_SHARE_A ? floats <= NC : floats <= (long)KC * NC;
}

void ngpt_gemm_group(int transA, int transB, int share, const ngpt_gemm_part *parts, int count, float alpha, float beta,
                     int bf16) {
  if (count <= 0) return;
  int live = 0;  // products with something to add
  for (int g = 0; g < count; ++g) live += parts[g].k > 0 && parts[g].m > 0 && parts[g].n > 0;
  if (live < count || alpha == 0 || !group_fits(share, parts, count, bf16)) {
    // Degenerate or too wide: one product at a time (a sum adds each to the previous ones).
    for (int g = 0; g < count; ++g) {
      const ngpt_gemm_part *p = parts + g;
      if (p->m <= 0 || p->n <= 0) continue;
      const float b = share == NGPT_GEMM_SUM && g > 0 ? 1 : beta;
      if (p->k <= 0 || alpha == 0) {
        if (b != 1) scale_c(p->m, p->n, b, p->C, p->ldc);
      } else {
        ngpt_gemm_group(transA, transB, NGPT_GEMM_SHARE_B, p, 1, alpha, b, bf16);
      }
    }
    return;
  }
  const int profile = atomic_load_explicit(&profiling, memory_order_relaxed);
  const unsigned long long start = TICK(profile);
  struct ticks t = {0, 0};
  if (share == NGPT_GEMM_SHARE_A)
    gemm_shared_a(transA, transB, parts, count, alpha, beta, bf16, profile, &t);
  else if (share == NGPT_GEMM_SUM)
    gemm_summed(transA, transB, parts, count, alpha, beta, bf16, profile, &t);
  else
    gemm_shared_b(transA, transB, parts, count, alpha, beta, bf16, profile, &t);
  if (profile) {
    const unsigned long long total = __rdtsc() - start;
    atomic_fetch_add_explicit(&profile_pack, t.packing + t.packing_b, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_pack_b, t.packing_b, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_kernel, total - t.packing - t.packing_b, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_calls, 1, memory_order_relaxed);
  }
}

void ngpt_gemm(int transA, int transB, long m, long n, long k, float alpha, const float *A, long lda, const float *B,
               long ldb, float beta, float *C, long ldc, int bf16) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0) {
    scale_c(m, n, beta, C, ldc);
    return;
  }
  const ngpt_gemm_part part = {A, lda, B, ldb, C, ldc, m, n, k, 0};
  ngpt_gemm_group(transA, transB, NGPT_GEMM_SHARE_B, &part, 1, alpha, beta, bf16);
}

// ---------------------------------------------------------------------------------------------------------------
// Operands packed once and multiplied many times (attention: a head's K, V, Q and dY are read by every row tile of
// its T×T products, so they are packed once per head instead of once per product).

// Rounded up to 16 floats, so that packings placed one after another in a 64-byte aligned buffer each stay aligned
// (B panels are stored with aligned stores).
long ngpt_packed_a_floats(long m, long k, int bf16) {
  const long panels = (m + MR - 1) / MR;
  return (panels * MR * (bf16 ? (k + 1) / 2 : k) + 15) / 16 * 16;
}

long ngpt_packed_b_floats(long k, long n, int bf16) {
  const long panels = (n + NR - 1) / NR;
  return (panels * NR * (bf16 ? (k + 1) / 2 : k) + 15) / 16 * 16;
}

// While profiling, the ticks since `start` go to `counter` (attention's packing and tiles count as packing and
// micro-kernel time like ngpt_gemm's own).
static void profile_since(_Atomic unsigned long long *counter, unsigned long long start) {
  if (start) atomic_fetch_add_explicit(counter, __rdtsc() - start, memory_order_relaxed);
}

void ngpt_pack_a(int transA, const float *A, long lda, long m, long k, void *dst, int bf16) {
  const unsigned long long start = TICK(atomic_load_explicit(&profiling, memory_order_relaxed));
  if (bf16)
    pack_a_bf16(transA, A, lda, 0, m, 0, k, (uint32_t *)dst);
  else
    pack_a_f32(transA, A, lda, 0, m, 0, k, (float *)dst);
  profile_since(&profile_pack, start);
}

void ngpt_pack_b(int transB, const float *B, long ldb, long k, long n, void *dst, int bf16) {
  const unsigned long long start = TICK(atomic_load_explicit(&profiling, memory_order_relaxed));
  if (bf16)
    pack_b_bf16(transB, B, ldb, 0, k, 0, n, (uint32_t *)dst);
  else
    pack_b_f32(transB, B, ldb, 0, k, 0, n, (float *)dst);
  profile_since(&profile_pack, start);
}

void ngpt_gemm_packed(long i0, long i1, long j0, long j1, long depth, float alpha, const void *pa, long ka, long a0,
                      const void *pb, long kb, long b0, float beta, float *C, long ldc, int bf16) {
  if (i1 <= i0 || j1 <= j0) return;
  if (depth <= 0) {
    scale_c(i1 - i0, j1 - j0, beta, C + i0 * ldc + j0, ldc);
    return;
  }
  const unsigned long long start = TICK(atomic_load_explicit(&profiling, memory_order_relaxed));
  // Panel strides and offsets in the packed unit: floats, or k pairs for bf16 (a0 and b0 even: pairs line up).
  const long sa = bf16 ? (ka + 1) / 2 : ka, sb = bf16 ? (kb + 1) / 2 : kb;
  const long oa = bf16 ? a0 / 2 : a0, ob = bf16 ? b0 / 2 : b0, steps = bf16 ? (depth + 1) / 2 : depth;
  for (long jr = j0; jr < j1; jr += NR) {
    for (long ir = i0; ir < i1; ir += MR) {
      const long mr = min_l(MR, i1 - ir), nr = min_l(NR, j1 - jr);
      float *c = C + ir * ldc + jr;
      if (bf16)
        kernel_bf16(steps, (const uint32_t *)pa + ir * sa + oa * MR, (const uint32_t *)pb + jr * sb + ob * NR, c, ldc,
                    alpha, beta, mr, nr);
      else
        kernel_f32(steps, (const float *)pa + ir * sa + oa * MR, (const float *)pb + jr * sb + ob * NR, c, ldc, alpha,
                   beta, mr, nr);
    }
  }
  profile_since(&profile_kernel, start);
}

void *ngpt_thread_buffer(int slot, size_t bytes) {
  static _Thread_local void *buffers[NGPT_BUFFER_SLOTS];
  static _Thread_local size_t capacity[NGPT_BUFFER_SLOTS];
  if (slot < 0 || slot >= NGPT_BUFFER_SLOTS) abort();
  if (bytes > capacity[slot]) {
    free(buffers[slot]);
    if (posix_memalign(&buffers[slot], 64, bytes) != 0) abort();  // out of memory: nothing sensible to return
    capacity[slot] = bytes;
  }
  return buffers[slot];
}

float *ngpt_gemm_scratch(size_t floats) {
  return (float *)ngpt_thread_buffer(NGPT_BUFFER_GEMM, floats * sizeof(float));
}

// ---------------------------------------------------------------------------------------------------------------
// Peak probe: 24 independent accumulators hide the FMA latency (4 cycles × 2 pipes × up to 3 in flight).

__attribute__((target("avx512f"))) static float probe_f32(long iterations) {
  __m512 acc[24];
  const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
  _Pragma("GCC unroll 24") for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps((float)i);
  for (long t = 0; t < iterations; ++t) {
    _Pragma("GCC unroll 24") for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  _Pragma("GCC unroll 23") for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float probe_bf16(long iterations) {
  __m512 acc[24];
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3c003c00);
  _Pragma("GCC unroll 24") for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps((float)i);
  for (long t = 0; t < iterations; ++t) {
    _Pragma("GCC unroll 24") for (int i = 0; i < 24; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  _Pragma("GCC unroll 23") for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

float ngpt_gemm_peak_probe(long iterations, int bf16) {
  int f = ngpt_gemm_features();
  if (bf16) return (f & NGPT_GEMM_AVX512BF16) ? probe_bf16(iterations) : 0;
  return (f & NGPT_GEMM_AVX512F) ? probe_f32(iterations) : 0;
}
