import Testing

@testable import Kernels

/// Reference C = alpha·op(A)·op(B) + beta·C in Double.
func referenceGEMM(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double, a: [Float], b: [Float],
    beta: Double, c: [Float]
) -> [Double] {
    var out = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA ? a[p * m + i] : a[i * k + p]
                let bv = transB ? b[j * k + p] : b[p * n + j]
                s += Double(av) * Double(bv)
            }
            out[i * n + j] = alpha * s + beta * Double(c[i * n + j])
        }
    }
    return out
}

@Suite struct GEMMTests {
    // Float sums over k ≤ 257 terms of O(1) products: error ≲ k·ε_f·max|term| ≈ 257·6e-8 ≈ 1.5e-5 of the scale
    // (BLAS blocks the sum, so in practice much less). 1e-5 relative to the largest entry is the bound.
    static let tolerance = 1e-5

    @Test(arguments: [(1, 1, 1), (7, 33, 16), (33, 7, 257), (257, 16, 7), (16, 257, 33)])
    func allTransposesAndBeta(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = SplitMix64(seed: UInt64(m * 1000 + n * 10 + k))
        for transA in [false, true] {
            for transB in [false, true] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                    let a = rng.normals(m * k), b = rng.normals(k * n), c0 = rng.normals(m * n)
                    var c = c0
                    GEMM.gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                        a, lda: transA ? m : k, b, ldb: transB ? k : n, beta: beta, &c, ldc: n)
                    let ref = referenceGEMM(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: Double(alpha),
                        a: a, b: b, beta: Double(beta), c: c0)
                    #expect(relativeMaxError(c, ref) < Self.tolerance, "tA \(transA) tB \(transB) α \(alpha) β \(beta)")
                }
            }
        }
    }

    @Test func namedForms() {
        let m = 33, k = 7, n = 257
        var rng = SplitMix64(seed: 5)
        let x = rng.normals(m * k), w = rng.normals(k * n), wT = rng.normals(n * k), dy = rng.normals(m * n)
        var y = [Float](repeating: 0, count: m * n)
        GEMM.xw(x, w, &y, m: m, k: k, n: n)
        #expect(
            relativeMaxError(
                y,
                referenceGEMM(
                    transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: x, b: w,
                    beta: 0, c: y)) < Self.tolerance)
        GEMM.xwT(x, wT, &y, m: m, k: k, n: n)
        #expect(
            relativeMaxError(
                y,
                referenceGEMM(
                    transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x, b: wT,
                    beta: 0, c: y)) < Self.tolerance)
        // xTy accumulates with beta = 1 onto an existing gradient.
        let g0 = rng.normals(k * n)
        var g = g0
        GEMM.xTy(x, dy, &g, m: m, k: k, n: n, beta: 1)
        #expect(
            relativeMaxError(
                g,
                referenceGEMM(
                    transA: true, transB: false, m: k, n: n, k: m, alpha: 1, a: x, b: dy,
                    beta: 1, c: g0)) < Self.tolerance)
    }

    @Test func stridedHeadSlice() {
        // Q_h·K_hᵀ for head 1 of a [T, 3·4] buffer, as attention uses it.
        let t = 5, heads = 3, dk = 4, ld = heads * dk
        var rng = SplitMix64(seed: 9)
        let q = rng.normals(t * ld), kk = rng.normals(t * ld)
        var s = [Float](repeating: 0, count: t * t)
        q.withUnsafeBufferPointer { qp in
            kk.withUnsafeBufferPointer { kp in
                GEMM.gemm(
                    transA: false, transB: true, m: t, n: t, k: dk, qp.baseAddress! + dk, lda: ld,
                    kp.baseAddress! + dk, ldb: ld, &s, ldc: t)
            }
        }
        for i in 0..<t {
            for j in 0..<t {
                var ref = 0.0
                for c in 0..<dk { ref += Double(q[i * ld + dk + c]) * Double(kk[j * ld + dk + c]) }
                #expect(abs(Double(s[i * t + j]) - ref) < 1e-5)
            }
        }
    }
}
