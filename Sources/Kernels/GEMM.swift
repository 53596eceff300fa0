import CBLAS

/// The one seam every matrix product in ngpt goes through (OpenBLAS' sgemm today). All matrices are row-major
/// with explicit leading dimensions, so head slices of a [tokens, d] activation can be used in place.
public enum GEMM {
    /// C[m×n] = alpha · op(A) · op(B) + beta · C, where op(A) is m×k (A stored k×m when `transA`)
    /// and op(B) is k×n (B stored n×k when `transB`).
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int,
        _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Y[M,N] = X[M,K] · W[K,N]  (+ beta·Y). Used for y = x·W layers (W_o, W_oMLP) and P·V.
    @inline(__always)
    public static func xw(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                          m: Int, k: Int, n: Int, beta: Float = 0) {
        gemm(transA: false, transB: false, m: m, n: n, k: k, x, lda: k, w, ldb: n, beta: beta, y, ldc: n)
    }

    /// Y[M,N] = X[M,K] · W[N,K]ᵀ  (+ beta·Y). Used for y = x·Wᵀ layers (q, k, v, u, ν, logits).
    @inline(__always)
    public static func xwT(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                           m: Int, k: Int, n: Int, beta: Float = 0) {
        gemm(transA: false, transB: true, m: m, n: n, k: k, x, lda: k, w, ldb: k, beta: beta, y, ldc: n)
    }

    /// G[K,N] = X[M,K]ᵀ · Y[M,N]  (+ beta·G). Weight gradients: with beta 1 it accumulates.
    @inline(__always)
    public static func xTy(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                           m: Int, k: Int, n: Int, beta: Float = 0) {
        gemm(transA: true, transB: false, m: k, n: n, k: m, x, lda: k, y, ldb: n, beta: beta, g, ldc: n)
    }

    /// y = alpha · op(A) · x + beta · y, with A stored [rows, cols] (lda) and op(A) = A (y has `rows` entries, x
    /// `cols`) or Aᵀ (y has `cols`, x `rows`). The single-token (KV-cache) path's matrix–vector products.
    ///
    /// Both cases are computed here rather than by BLAS: with OpenBLAS 0.3.21's sgemv, decoding config S ran at
    /// ≈500 tokens/s (its kernels ~80 % of the time); these loops give ≈1,100–1,300 (see `ngpt-bench sample`).
    /// op(A) = A is a row dot product per output, op(A) = Aᵀ a sum of scaled rows (y += x[r]·A[r, :]).
    @inline(__always)
    public static func gemv(transpose: Bool, rows: Int, cols: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                            _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        if rows == 0 || cols == 0 { return }
        if !transpose {
            // On the calling thread: splitting rows over two workers was measured slower here (decoding is bound by
            // streaming the weights from memory, which a second core did not speed up, and each fork costs ~10 µs).
            gemvRows(a, lda: lda, x, cols: cols, alpha: alpha, beta: beta, y, from: 0, to: rows)
            return
        }
        if beta == 0 { y.update(repeating: 0, count: cols) } else if beta != 1 { Kernels.scale(y, beta, y, cols) }
        var r = 0
        // Two rows per pass halve the loads and stores of y.
        while r + 2 <= rows {
            let x0 = F32x16(repeating: alpha * x[r]), x1 = F32x16(repeating: alpha * x[r + 1])
            let a0 = a + r * lda, a1 = a0 + lda
            var c = 0
            while c + 16 <= cols { store16(load16(y + c) + x0 * load16(a0 + c) + x1 * load16(a1 + c), y + c); c += 16 }
            while c < cols { y[c] += alpha * (x[r] * a0[c] + x[r + 1] * a1[c]); c += 1 }
            r += 2
        }
        if r < rows {
            let xr = alpha * x[r], a0 = a + r * lda
            let v = F32x16(repeating: xr)
            var c = 0
            while c + 16 <= cols { store16(load16(y + c) + v * load16(a0 + c), y + c); c += 16 }
            while c < cols { y[c] += xr * a0[c]; c += 1 }
        }
    }

    /// y[r] = alpha·⟨A[r, :], x⟩ + beta·y[r] for r in from..<to. One row at a time: measured faster here than four
    /// interleaved rows (one sequential stream suits the prefetchers; 21 vs 9 GB/s once the matrices leave the cache).
    @inline(__always)
    static func gemvRows(_ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>, cols: Int, alpha: Float, beta: Float,
                         _ y: UnsafeMutablePointer<Float>, from: Int, to rows: Int) {
        for r in from..<rows {
            let t = alpha * dot(a + r * lda, x, cols)
            y[r] = beta == 0 ? t : t + beta * y[r]
        }
    }
}
