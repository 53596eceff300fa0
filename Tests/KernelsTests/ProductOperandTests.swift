import Testing

@testable import Kernels

/// Activations that only products read, stored in bf16 (`GEMM.Operand`): a product reading the bf16 values gives
/// the bits of the same product reading the Floats they were rounded from; SwiGLU's C loops are the Swift loops
/// bit for bit, and their bf16 outputs are those Floats rounded.
@Suite(.enabled(if: GEMM.hasBF16, "no AVX512_BF16 on this CPU")) struct ProductOperandTests {
    /// Random values with rounding ties, near-ties, signs, zeros and tiny and huge magnitudes among them.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var v = rng.normals(count, std: 2)
        let specials: [Float] = [
            1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8), 1 + 0x1p-8 + 0x1p-20, 0, -0.0, 0x1p-130, -3e30, 65_504,
        ]
        for (i, s) in specials.enumerated() where i * 31 < count { v[i * 31] = s }
        return v
    }

    /// The values at `floats` rounded to bf16 in place (the first half of the memory), as an operand.
    static func storeBF16(_ values: [Float], _ floats: UnsafeMutablePointer<Float>) -> GEMM.Operand {
        let operand = GEMM.Operand(floats, precision: .bf16)
        for (i, v) in values.enumerated() {
            operand.address.storeBytes(of: BFloat16.round(v), toByteOffset: 2 * i, as: UInt16.self)
        }
        return operand
    }

    /// (m, n, k, transA): forward-like products (A along k: depths over several slices, odd depths that end in a
    /// half pair) and weight-gradient-like ones (A across k: odd row counts, the two halves of k at k ≥ 1024).
    static let shapes: [(Int, Int, Int, Bool)] = [
        (45, 40, 683, false), (20, 33, 7, false), (100, 256, 1030, false), (683, 96, 300, true),
        (33, 50, 71, true), (256, 96, 2048, true),
    ]

    @Test(arguments: [1, 2]) func productsOfBF16OperandsAreTheProductsOfTheirFloats(threads: Int) {
        Threads.configure(threads: threads)
        defer { Threads.configure() }
        for (m, n, k, transA) in Self.shapes {
            let a = Self.values(m * k, seed: UInt64(m * k)), b = Self.values(k * n, seed: 7)
            let start = Self.values(m * n, seed: 3)
            var fromFloats = start, fromHalves = start
            let stored = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            defer { stored.deallocate() }
            GEMM.withPrecision(.bf16) {
                let lda = transA ? m : k
                GEMM.group(
                    transA: transA, transB: false, shared: .b,
                    [GEMM.Product(a, lda: lda, b, ldb: n, &fromFloats, ldc: n, m: m, n: n, k: k)], beta: 1)
                let operand = Self.storeBF16(a, stored)
                GEMM.group(
                    transA: transA, transB: false, shared: .b,
                    [GEMM.Product(operand, lda: lda, b, ldb: n, &fromHalves, ldc: n, m: m, n: n, k: k)], beta: 1)
            }
            let differ = zip(fromFloats, fromHalves).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differ == 0, "\(m)×\(n)×\(k) transA \(transA): \(differ) differ")
        }
    }

    /// The model's groups: ∂L/∂x of up and gate summed, and their weight gradients sharing the input.
    @Test func groupsOfBF16OperandsAreTheGroupsOfTheirFloats() {
        let n = 300, f = 683, d = 64
        let gu = Self.values(n * f, seed: 1), gnu = Self.values(n * f, seed: 2)
        let wUp = Self.values(f * d, seed: 3), wGate = Self.values(f * d, seed: 4), x = Self.values(n * d, seed: 5)
        let storedU = UnsafeMutablePointer<Float>.allocate(capacity: n * f)
        let storedV = UnsafeMutablePointer<Float>.allocate(capacity: n * f)
        defer { storedU.deallocate(); storedV.deallocate() }
        var dxFloats = [Float](repeating: 0, count: n * d), dxHalves = dxFloats
        var gradsFloats = [Float](repeating: 0, count: 2 * f * d), gradsHalves = gradsFloats
        GEMM.withPrecision(.bf16) {
            gu.withUnsafeBufferPointer { u in
                gnu.withUnsafeBufferPointer { v in
                    let floatU = GEMM.Operand(UnsafeMutablePointer(mutating: u.baseAddress!))
                    let floatV = GEMM.Operand(UnsafeMutablePointer(mutating: v.baseAddress!))
                    let halfU = Self.storeBF16(gu, storedU), halfV = Self.storeBF16(gnu, storedV)
                    wUp.withUnsafeBufferPointer { wu in
                        wGate.withUnsafeBufferPointer { wg in
                            let wu = UnsafeMutablePointer(mutating: wu.baseAddress!)
                            let wg = UnsafeMutablePointer(mutating: wg.baseAddress!)
                            GEMM.xw([(floatU, wu, f), (floatV, wg, f)], &dxFloats, m: n, n: d)
                            GEMM.xw([(halfU, wu, f), (halfV, wg, f)], &dxHalves, m: n, n: d)
                        }
                    }
                    gradsFloats.withUnsafeMutableBufferPointer { g in
                        let g = g.baseAddress!
                        GEMM.xTy([(floatU, g, f), (floatV, g + f * d, f)], x, m: n, n: d)
                    }
                    gradsHalves.withUnsafeMutableBufferPointer { g in
                        let g = g.baseAddress!
                        GEMM.xTy([(halfU, g, f), (halfV, g + f * d, f)], x, m: n, n: d)
                    }
                }
            }
        }
        #expect(zip(dxFloats, dxHalves).filter { $0.bitPattern != $1.bitPattern }.count == 0)
        #expect(zip(gradsFloats, gradsHalves).filter { $0.bitPattern != $1.bitPattern }.count == 0)
    }

    /// SwiGLU's C loops against the Swift loops (the reference where the CPU lacks AVX-512), over a length with a
    /// partial vector at the end, through both signs and the saturating ends of σ: the same bits as Floats, and
    /// those bits rounded when stored in bf16.
    @Test func swigluKernelsAreTheSwiftLoopsAndTheirRounding() {
        let n = 16 * 97 + 11
        var rng = SplitMix64(seed: 21)
        let u = rng.normals(n, std: 2), dout = rng.normals(n)
        var gate = rng.normals(n, std: 4)
        gate[5] = 95; gate[6] = -95; gate[n - 1] = 90; gate[n - 2] = -0.0
        var reference = [Float](repeating: 0, count: n), du = reference, dgate = reference
        SwiGLU.forwardLoop(u: u, gate: gate, &reference, from: 0, to: n)
        SwiGLU.backwardLoop(dout, u: u, gate: gate, du: &du, dgate: &dgate, from: 0, to: n)

        var out = [Float](repeating: 0, count: n), ku = out, kg = out
        SwiGLU.forward(u: u, gate: gate, &out, count: n)
        SwiGLU.backward(dout, u: u, gate: gate, du: &ku, dgate: &kg, count: n)
        func differ(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differ(out, reference) == 0)
        #expect(differ(ku, du) == 0)
        #expect(differ(kg, dgate) == 0)

        let storage = UnsafeMutablePointer<Float>.allocate(capacity: 3 * n)
        defer { storage.deallocate() }
        let x = GEMM.Operand(storage, precision: .bf16), gu = GEMM.Operand(storage + n, precision: .bf16)
        let gnu = GEMM.Operand(storage + 2 * n, precision: .bf16)
        SwiGLU.forward(u: u, gate: gate, x, count: n)
        SwiGLU.backward(dout, u: u, gate: gate, du: gu, dgate: gnu, count: n)
        for (operand, floats) in [(x, reference), (gu, du), (gnu, dgate)] {
            let wrong = (0..<n).filter {
                operand.address.load(fromByteOffset: 2 * $0, as: UInt16.self) != BFloat16.round(floats[$0])
            }
            #expect(wrong.isEmpty)
        }
    }

    /// The cross-entropy's gradient stored in bf16, in place over the logits: each row's values are the Float
    /// gradient's, rounded (the target entry included), and the loss is the same.
    @Test func crossEntropyGradientInBF16IsTheFloatGradientRounded() {
        let rows = 37, vocab = 16 * 9 + 5
        var rng = SplitMix64(seed: 5)
        let logits = rng.normals(rows * vocab, std: 3)
        let targets = (0..<rows).map { Int32(($0 * 17) % vocab) }
        var floats = [Float](repeating: 0, count: rows * vocab)
        let lossFloats = CrossEntropy.forwardBackward(
            logits: logits, targets: targets, rows: rows, vocab: vocab, dlogits: &floats, gradScale: 0.25)
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: rows * vocab)
        defer { storage.deallocate() }
        storage.update(from: logits, count: rows * vocab)
        let gradient = GEMM.Operand(storage, precision: .bf16)
        let lossHalves = CrossEntropy.forwardBackward(
            logits: storage, targets: targets, rows: rows, vocab: vocab, gradient: gradient, gradScale: 0.25)
        #expect(lossHalves == lossFloats)
        let wrong = (0..<rows * vocab).filter {
            let (r, i) = $0.quotientAndRemainder(dividingBy: vocab)
            let stored = gradient.address.load(fromByteOffset: 4 * r * vocab + 2 * i, as: UInt16.self)
            return stored != BFloat16.round(floats[$0])
        }
        #expect(wrong.isEmpty, "\(wrong.count) differ")
    }
}
