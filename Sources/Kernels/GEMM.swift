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
}
