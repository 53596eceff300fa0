import CBLAS
import CGEMM
import Testing

@testable import Kernels

/// ngpt's own GEMM against OpenBLAS (fp32: to round-off) and against OpenBLAS on bf16-rounded inputs (bf16: the
/// kernel must compute exactly the fp32 product of the rounded inputs, up to summation order), over odd sizes
/// around the 14×32 tile and the 256-deep k blocks, every transpose, strided operands, alpha and beta.
@Suite(.enabled(if: GEMM.hasAVX512, "this CPU has no AVX-512: ngpt's GEMM cannot run here")) struct NativeGEMMTests {
    // Float sums over k ≤ 1,100 terms: the two implementations' rounding differs by ≲ k·ε_f relative to the
    // products' scale; measured ≲ 3e-7 here; 2e-5 leaves room and still catches any wrong term (O(1)).
    static let tolerance = 2e-5

    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (13, 31, 7), (14, 32, 256), (15, 33, 257), (29, 65, 2), (100, 17, 513),
        (3, 300, 64), (170, 40, 31),
        (29, 45, 1100),
    ]  // k ≥ 4·max(m, n): computed as two halves of k

    /// op(A) (m×k) and op(B) (k×n) stored with padding (leading dimensions larger than the rows).
    struct Operands {
        let a: [Float], b: [Float], c: [Float], lda: Int, ldb: Int, ldc: Int
        init(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, rng: inout SplitMix64) {
            lda = (transA ? m : k) + 3
            ldb = (transB ? k : n) + 5
            ldc = n + 2
            a = rng.normals((transA ? k : m) * lda)
            b = rng.normals((transB ? n : k) * ldb)
            c = rng.normals(m * ldc)
        }
    }

    func run(
        _ o: Operands, _ m: Int, _ n: Int, _ k: Int, _ ta: Bool, _ tb: Bool, _ alpha: Float, _ beta: Float,
        bf16: Bool
    ) -> (ours: [Float], reference: [Float]) {
        var ours = o.c, reference = o.c
        GEMM.native(
            transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, o.a, lda: o.lda, o.b, ldb: o.ldb, beta: beta,
            &ours, ldc: o.ldc, precision: bf16 ? .bf16 : .fp32)
        let round = { (v: [Float]) in bf16 ? v.map { BFloat16.float(BFloat16.round($0)) } : v }
        cblas_sgemm(
            CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
            alpha, round(o.a), Int32(o.lda), round(o.b), Int32(o.ldb), beta, &reference, Int32(o.ldc))
        return (ours, reference)
    }

    @Test(arguments: [false, true])
    func matchesOpenBLAS(bf16: Bool) throws {
        try #require(!bf16 || GEMM.hasBF16, "no AVX512_BF16 on this CPU")
        var rng = SplitMix64(seed: bf16 ? 2 : 1)
        for (m, n, k) in Self.shapes {
            for ta in [false, true] {
                for tb in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                        let o = Operands(m: m, n: n, k: k, transA: ta, transB: tb, rng: &rng)
                        let (ours, reference) = run(o, m, n, k, ta, tb, alpha, beta, bf16: bf16)
                        // compare the m×n result; the padding columns must be untouched
                        var worst = 0.0, scale = 1e-30
                        for i in 0..<m {
                            for j in 0..<n {
                                worst = max(worst, Double(abs(ours[i * o.ldc + j] - reference[i * o.ldc + j])))
                                scale = max(scale, Double(abs(reference[i * o.ldc + j])))
                            }
                            for j in n..<o.ldc { #expect(ours[i * o.ldc + j] == o.c[i * o.ldc + j], "padding written") }
                        }
                        #expect(
                            worst / scale < Self.tolerance,
                            "\(bf16 ? "bf16" : "fp32") \(m)×\(n)×\(k) tA \(ta) tB \(tb) α \(alpha) β \(beta): \(worst)"
                        )
                    }
                }
            }
        }
    }

    /// The packers' rounding to bf16 is BFloat16.round (what the decoder's weights and vectors use), bit for bit,
    /// on ties, near-ties, large and tiny normal values and signs (infinities would turn the identity's zeros into
    /// NaN, so they are not in it). A times the identity (exact in bf16, one non-zero product per entry) gives
    /// round(A) itself, through every packer: A along and across k, the identity as B along and across k, the
    /// 32-wide blocks and the scalar tail (k = 40), a partial row tile (m = 20).
    @Test(.enabled(if: GEMM.hasBF16, "no AVX512_BF16 on this CPU")) func bf16RoundingIsBFloat16Round() {
        let m = 20, k = 40
        var rng = SplitMix64(seed: 12)
        let specials: [Float] = [
            1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8), 1 + 0x1p-8 + 0x1p-20, 1 + 0x1p-8 - 0x1p-20, 0x1.fe7p127,
            -0x1.fffep-100, 0x1p-126, 0, 65_504, 1e-30, -3e30,
        ]
        var values = rng.normals(m * k, std: 100)
        for (i, v) in specials.enumerated() { values[i * 37 % (m * k)] = v }
        let expected = values.map { BFloat16.float(BFloat16.round($0)) }
        let identity = (0..<k * k).map { $0 / k == $0 % k ? Float(1) : 0 }
        let transposed = (0..<k * m).map { values[($0 % m) * k + $0 / m] }  // Aᵀ stored [k, m]
        for transA in [false, true] {
            for transB in [false, true] {
                var c = [Float](repeating: 0, count: m * k)
                GEMM.native(
                    transA: transA, transB: transB, m: m, n: k, k: k, transA ? transposed : values,
                    lda: transA ? m : k, identity, ldb: k, &c, ldc: k, precision: .bf16)
                let wrong = c.indices.filter { c[$0].bitPattern != expected[$0].bitPattern }
                #expect(
                    wrong.isEmpty,
                    "tA \(transA) tB \(transB): \(wrong.count) differ, first \(wrong.first.map { values[$0] } ?? 0)")
            }
        }
    }

    /// beta = 0 never reads C (a NaN there must not leak); k = 0 and alpha = 0 scale C by beta.
    @Test func betaZeroIgnoresCAndDegenerateShapes() {
        var c = [Float](repeating: .nan, count: 15 * 33)
        let a = [Float](repeating: 1, count: 15 * 5), b = [Float](repeating: 2, count: 5 * 33)
        GEMM.native(
            transA: false, transB: false, m: 15, n: 33, k: 5, a, lda: 5, b, ldb: 33, &c, ldc: 33, precision: .fp32)
        #expect(c.allSatisfy { $0 == 10 })
        GEMM.native(
            transA: false, transB: false, m: 15, n: 33, k: 0, a, lda: 5, b, ldb: 33, beta: 0.5, &c, ldc: 33,
            precision: .fp32)
        #expect(c.allSatisfy { $0 == 5 })
    }

    /// The result does not depend on how rows are split over workers (so training is reproducible for any budget).
    @Test(arguments: [(1000, 96, 300, false), (60, 70, 2000, true)])  // rows split; two halves of k (weight gradients)
    func resultsDoNotDependOnTheThreadCount(m: Int, n: Int, k: Int, transA: Bool) {
        var rng = SplitMix64(seed: 9)
        let a = rng.normals(m * k), b = rng.normals(n * k)
        var results: [[Float]] = []
        for threads in [1, 2] {
            Threads.configure(threads: threads)
            var c = [Float](repeating: 0.5, count: m * n)
            GEMM.native(
                transA: transA, transB: true, m: m, n: n, k: k, a, lda: transA ? m : k, b, ldb: k, beta: 1, &c, ldc: n,
                precision: .fp32)
            results.append(c)
        }
        Threads.configure()
        // a count, not the arrays: a failing == of 96,000-element arrays makes the test library diff them (minutes)
        #expect(zip(results[0], results[1]).filter { $0.bitPattern != $1.bitPattern }.count == 0)
    }
}

/// The profile's counters see the work they claim (products land in GEMM kernels and packing) and count nothing
/// while off. The counters are process-wide and other suites run products in parallel with this one, so how large
/// each share is, and whether the parts fit in threads × wall time, is for the benchmark (nothing else running) to
/// show, not asserted here.
@Suite struct WorkProfileTests {
    @Test(.enabled(if: GEMM.path == .native)) func countersSeeTheirWorkAndNothingWhileOff() {
        var rng = SplitMix64(seed: 3)
        let m = 256, k = 256, n = 256
        let a = rng.normals(m * k), b = rng.normals(k * n)
        var c = [Float](repeating: 0, count: m * n)
        func products() {
            for _ in 0..<20 {
                GEMM.native(
                    transA: false, transB: false, m: m, n: n, k: k, a, lda: k, b, ldb: n, beta: 0, &c, ldc: n,
                    precision: .fp32)
            }
        }
        let profile = WorkProfile.measure { products() }
        #expect(profile.gemmKernels > 0 && profile.packing > 0 && profile.packingB <= profile.packing)
        products()  // profiling is off again: the counters (reset by `measure`) stay at zero
        let after = ngpt_gemm_profile_read(0)
        #expect(after.kernel == 0 && after.pack == 0 && after.calls == 0)
    }
}
