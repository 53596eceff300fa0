import Testing

@testable import Kernels

/// A group of products sharing an operand (`GEMM.group`) gives the bits of the same products run one after another
/// through `GEMM.gemm`: for each way of sharing, both precisions, every transpose, strided operands, widths that are
/// not whole panels, depths over several slices, the weight gradients' two halves of k, a group too wide for one
/// packed block, and one or two threads.
@Suite(.enabled(if: GEMM.hasAVX512, "this CPU has no AVX-512: ngpt's GEMM cannot run here")) struct GroupedGEMMTests {
    /// Operands stored one after another in one array, each with padding (leading dimensions larger than the rows).
    struct Operands {
        var values: [Float] = [], offsets: [Int] = [], lds: [Int] = []
        mutating func add(rows: Int, cols: Int, rng: inout SplitMix64) {
            offsets.append(values.count)
            lds.append(cols + 3)
            values += rng.normals(rows * (cols + 3))
        }
    }

    /// (m, n, k) of each product; the shared sizes are equal within a group.
    static let cases: [(GEMM.Shared, [(Int, Int, Int)])] = [
        (.a, [(45, 256, 256), (45, 256, 256), (45, 256, 256)]),  // q, k, v
        (.a, [(100, 683, 256), (100, 683, 256)]),  // up and gate: widths that are not whole panels
        (.a, [(31, 40, 600), (31, 7, 600), (31, 90, 600)]),  // several slices of k
        (.a, [(20, 1500, 16), (20, 1000, 16)]),  // too wide for one block: one after another
        (.b, [(256, 96, 2048), (256, 96, 2048), (100, 96, 2048)]),  // weight gradients: two halves of k
        (.b, [(30, 50, 70), (17, 50, 70)]),  // rows split over the products' tiles
        (.sum, [(60, 256, 256), (60, 256, 256), (60, 256, 256)]),  // ∂L/∂x of q, k, v
        (.sum, [(37, 90, 683), (37, 90, 683)]),  // ∂L/∂x of up and gate: several slices of k
        (.sum, [(15, 300, 40), (15, 300, 1100)]),  // different depths
    ]

    @Test(arguments: [GEMM.Precision.fp32, .bf16], [1, 2])
    func groupGivesTheBitsOfItsProductsOneAfterAnother(precision: GEMM.Precision, threads: Int) throws {
        try #require(precision == .fp32 || GEMM.hasBF16, "no AVX512_BF16 on this CPU")
        Threads.configure(threads: threads)
        defer { Threads.configure() }
        var rng = SplitMix64(seed: 11)
        for (shared, shapes) in Self.cases {
            for (ta, tb) in [(false, true), (true, false), (false, false), (true, true)] {
                let (alpha, beta): (Float, Float) = ta ? (0.5, 1) : (1, 0)
                // the shared operand once, the others per product
                var a = Operands(), b = Operands(), c = Operands()
                for i in shapes.indices {
                    let (m, n, k) = shapes[i]
                    if shared != .a || i == 0 { a.add(rows: ta ? k : m, cols: ta ? m : k, rng: &rng) }
                    if shared != .b || i == 0 { b.add(rows: tb ? n : k, cols: tb ? k : n, rng: &rng) }
                    if shared != .sum || i == 0 { c.add(rows: m, cols: n, rng: &rng) }
                }
                func which(_ i: Int) -> (Int, Int, Int) {
                    (shared == .a ? 0 : i, shared == .b ? 0 : i, shared == .sum ? 0 : i)
                }
                var expected = c.values, grouped = c.values
                GEMM.withPrecision(precision) {
                    for (i, (m, n, k)) in shapes.enumerated() {
                        let (ia, ib, ic) = which(i)
                        a.values.withUnsafeBufferPointer { ap in
                            b.values.withUnsafeBufferPointer { bp in
                                expected.withUnsafeMutableBufferPointer { cp in
                                    GEMM.gemm(
                                        transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha,
                                        ap.baseAddress! + a.offsets[ia], lda: a.lds[ia],
                                        bp.baseAddress! + b.offsets[ib],
                                        ldb: b.lds[ib], beta: shared == .sum && i > 0 ? 1 : beta,
                                        cp.baseAddress! + c.offsets[ic], ldc: c.lds[ic])
                                }
                            }
                        }
                    }
                }
                a.values.withUnsafeBufferPointer { ap in
                    b.values.withUnsafeBufferPointer { bp in
                        grouped.withUnsafeMutableBufferPointer { cp in
                            let products = shapes.enumerated().map { i, s in
                                let (ia, ib, ic) = which(i)
                                return GEMM.Product(
                                    ap.baseAddress! + a.offsets[ia], lda: a.lds[ia], bp.baseAddress! + b.offsets[ib],
                                    ldb: b.lds[ib], cp.baseAddress! + c.offsets[ic], ldc: c.lds[ic], m: s.0, n: s.1,
                                    k: s.2)
                            }
                            GEMM.withPrecision(precision) {
                                GEMM.group(transA: ta, transB: tb, shared: shared, products, alpha: alpha, beta: beta)
                            }
                        }
                    }
                }
                // a count, not the arrays: a failing == of large arrays makes the test library diff them
                let differing = zip(expected, grouped).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(shared) \(shapes) tA \(ta) tB \(tb): \(differing) values differ")
                #expect(expected != c.values, "the products changed C")
            }
        }
    }
}
