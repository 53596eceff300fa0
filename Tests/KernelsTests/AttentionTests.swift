import CRowKernels
import Foundation
import Testing

@testable import Kernels

/// Double reference: per (batch, head), y = softmax(scale·q·kᵀ + causal mask)·v.
func referenceAttention(q: [Float], k: [Float], v: [Float], shape s: AttentionShape, scale: Double) -> [Double] {
    let T = s.context, H = s.heads, dk = s.headDim, d = H * dk
    var y = [Double](repeating: 0, count: s.batch * T * d)
    for b in 0..<s.batch {
        for h in 0..<H {
            for i in 0..<T {
                var scores = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var dotp = 0.0
                    for c in 0..<dk {
                        dotp += Double(q[(b * T + i) * d + h * dk + c]) * Double(k[(b * T + j) * d + h * dk + c])
                    }
                    scores[j] = scale * dotp
                }
                let m = scores.max()!
                let e = scores.map { Foundation.exp($0 - m) }
                let z = e.reduce(0, +)
                for j in 0...i {
                    for c in 0..<dk {
                        y[(b * T + i) * d + h * dk + c] += e[j] / z * Double(v[(b * T + j) * d + h * dk + c])
                    }
                }
            }
        }
    }
    return y
}

@Suite struct AttentionTests {
    static let shapes = [
        AttentionShape(batch: 2, context: 7, heads: 2, headDim: 4),
        AttentionShape(batch: 1, context: 33, heads: 3, headDim: 8),
        AttentionShape(batch: 3, context: 1, heads: 1, headDim: 2),
        AttentionShape(batch: 2, context: 17, heads: 2, headDim: 16),
    ]

    /// The two paths: tile by tile on packed operands (ngpt's kernels; the blocked path where they cannot run), and
    /// blocks of 5 rows, so that the tests cross several row/column blocks with a remainder (the production block
    /// is 64 rows).
    enum Path: CaseIterable, CustomTestStringConvertible {
        case tiles, blocks
        var block: Int? { self == .tiles ? nil : 5 }
        var testDescription: String { self == .tiles ? "tiles" : "blocks of 5" }

        /// Where row i's probabilities end (entries past the diagonal up to here are written as 0).
        func rowEnd(_ i: Int, context T: Int) -> Int {
            guard let block = Attention.blockedPath(block) else {
                return Attention.tileWidth(end: min(T, (i / Attention.tileRows + 1) * Attention.tileRows), context: T)
            }
            return min(T, (i / block + 1) * block)
        }
    }

    func run(_ s: AttentionShape, q: [Float], k: [Float], v: [Float], scale: Float, path: Path)
        -> (y: [Float], probs: [Float])
    {
        let d = s.heads * s.headDim
        var y = [Float](repeating: 0, count: s.batch * s.context * d)
        var probs = [Float](repeating: 0, count: s.probsCount)
        Attention.forward(
            q: q, k: k, v: v, ld: d, y: &y, ldy: d, probs: &probs, shape: s, scale: scale, block: path.block)
        return (y, probs)
    }

    @Test(arguments: shapes, Path.allCases)
    func forwardMatchesReference(shape s: AttentionShape, path: Path) {
        let n = s.batch * s.context * s.heads * s.headDim
        var rng = SplitMix64(seed: UInt64(n))
        let q = rng.normals(n), k = rng.normals(n), v = rng.normals(n)
        for scale in [1 / Float(s.headDim).squareRoot(), Float(s.headDim).squareRoot()] {
            let (y, probs) = run(s, q: q, k: k, v: v, scale: scale, path: path)
            // softmax + a T-term weighted sum in Float: 1e-5 relative to the largest output.
            #expect(relativeMaxError(y, referenceAttention(q: q, k: k, v: v, shape: s, scale: Double(scale))) < 1e-5)
            // rows of P sum to 1 and the upper triangle is exactly 0 as far as the row's tile or block reaches
            let T = s.context
            for pair in 0..<(s.batch * s.heads) {
                for i in 0..<T {
                    let row = probs[(pair * T + i) * T..<(pair * T + i + 1) * T]
                    #expect(abs(row.reduce(0, +) - 1) < 1e-5)
                    #expect(row.prefix(path.rowEnd(i, context: T)).dropFirst(i + 1).allSatisfy { $0 == 0 })
                }
            }
        }
    }

    @Test(arguments: shapes, Path.allCases)
    func backwardMatchesFiniteDifferences(shape s: AttentionShape, path: Path) {
        let n = s.batch * s.context * s.heads * s.headDim, d = s.heads * s.headDim
        var rng = SplitMix64(seed: 77 + UInt64(n))
        let q = rng.normals(n), k = rng.normals(n), v = rng.normals(n), w = rng.normals(n)
        let scale = Float(s.headDim).squareRoot()  // the nGPT temperature: the sharper softmax is the harder case
        let (_, probs) = run(s, q: q, k: k, v: v, scale: scale, path: path)
        var dq = [Float](repeating: 0, count: n), dk = dq, dv = dq
        var scratch = [Float](repeating: 0, count: s.backwardScratchCount)
        Attention.backward(
            dy: w, ldy: d, q: q, k: k, v: v, ld: d, probs: probs, dq: &dq, dk: &dk, dv: &dv, ldg: d,
            scratch: &scratch, shape: s, scale: scale, block: path.block)
        let eq = finiteDifferenceError(at: q, h: 3e-3, analytic: dq) {
            weightedSum(run(s, q: $0, k: k, v: v, scale: scale, path: path).y, w)
        }
        let ek = finiteDifferenceError(at: k, h: 3e-3, analytic: dk) {
            weightedSum(run(s, q: q, k: $0, v: v, scale: scale, path: path).y, w)
        }
        let ev = finiteDifferenceError(at: v, h: 3e-3, analytic: dv) {
            weightedSum(run(s, q: q, k: k, v: $0, scale: scale, path: path).y, w)
        }
        #expect(eq < fdTolerance, "dq \(eq)")
        #expect(ek < fdTolerance, "dk \(ek)")
        #expect(ev < fdTolerance, "dv \(ev)")
    }

    /// The tiles on packed operands replace 64-row blocks of GEMMs where ngpt's kernels run: every sum runs over the
    /// same terms in the same order and pairs (the blocks' extra terms are exact zeros), so outputs and gradients
    /// are the same bits, in fp32 and bf16, at config S's head shape and at a context that ends in partial tiles.
    @Test(arguments: [256, 150, 31])
    func tilesEqualBlocksBitForBit(context: Int) throws {
        try #require(GEMM.path == .native, "the tiles run only on ngpt's kernels")
        let s = AttentionShape(batch: 2, context: context, heads: 2, headDim: 64)
        let d = s.heads * s.headDim, n = s.batch * s.context * d
        var rng = SplitMix64(seed: UInt64(context))
        let q = rng.normals(n), k = rng.normals(n), v = rng.normals(n), w = rng.normals(n)
        for precision in GEMM.hasBF16 ? [GEMM.Precision.fp32, .bf16] : [.fp32] {
            var outputs: [[Float]] = []
            for block in [nil, Attention.defaultBlock] {
                var y = [Float](repeating: 0, count: n), probs = [Float](repeating: 0, count: s.probsCount)
                var dq = y, dk = y, dv = y, scratch = [Float](repeating: 0, count: s.backwardScratchCount)
                GEMM.withPrecision(precision) {
                    Attention.forward(
                        q: q, k: k, v: v, ld: d, y: &y, ldy: d, probs: &probs, shape: s, scale: 8, block: block)
                    Attention.backward(
                        dy: w, ldy: d, q: q, k: k, v: v, ld: d, probs: probs, dq: &dq, dk: &dk, dv: &dv, ldg: d,
                        scratch: &scratch, shape: s, scale: 8, block: block)
                }
                outputs.append(y + dq + dk + dv)
            }
            #expect(outputs[0] == outputs[1], "\(precision)")
            #expect(outputs[0].allSatisfy { $0.isFinite })
        }
    }

    @Test func largeBatchUsesWorkersAndAgreesWithSerial() {
        // 16 (batch, head) pairs are split over the workers; each must equal the single-pair computation.
        let s = AttentionShape(batch: 8, context: 64, heads: 2, headDim: 32)
        let n = s.batch * s.context * s.heads * s.headDim
        var rng = SplitMix64(seed: 8)
        let q = rng.normals(n), k = rng.normals(n), v = rng.normals(n)
        for path in Path.allCases {
            let (y, _) = run(s, q: q, k: k, v: v, scale: 0.2, path: path)
            #expect(relativeMaxError(y, referenceAttention(q: q, k: k, v: v, shape: s, scale: 0.2)) < 1e-5)
        }
    }

    /// The production paths (tiles; blocks of 64) over a context that is not a multiple of either: forward against
    /// the reference and backward against the small-block backward (itself checked by finite differences above).
    @Test func productionBlockSizeAgrees() {
        let s = AttentionShape(batch: 1, context: 150, heads: 2, headDim: 8)
        let d = s.heads * s.headDim, n = s.batch * s.context * d
        var rng = SplitMix64(seed: 21)
        let q = rng.normals(n), k = rng.normals(n), v = rng.normals(n), w = rng.normals(n)
        var y = [Float](repeating: 0, count: n), probs = [Float](repeating: 0, count: s.probsCount)
        Attention.forward(q: q, k: k, v: v, ld: d, y: &y, ldy: d, probs: &probs, shape: s, scale: 2)
        #expect(relativeMaxError(y, referenceAttention(q: q, k: k, v: v, shape: s, scale: 2)) < 1e-5)
        var grads: [[Float]] = []
        for block in [nil, Attention.defaultBlock, 5] {
            var p = [Float](repeating: 0, count: s.probsCount), yy = y
            Attention.forward(q: q, k: k, v: v, ld: d, y: &yy, ldy: d, probs: &p, shape: s, scale: 2, block: block)
            var dq = [Float](repeating: 0, count: n), dk = dq, dv = dq
            var scratch = [Float](repeating: 0, count: s.backwardScratchCount)
            Attention.backward(
                dy: w, ldy: d, q: q, k: k, v: v, ld: d, probs: p, dq: &dq, dk: &dk, dv: &dv, ldg: d,
                scratch: &scratch, shape: s, scale: 2, block: block)
            grads.append(dq + dk + dv)
        }
        #expect(relativeMaxError(grads[0], grads[2]) < 1e-5)
        #expect(relativeMaxError(grads[1], grads[2]) < 1e-5)
    }
}

extension AttentionShape: CustomTestStringConvertible {
    public var testDescription: String { "B\(batch) T\(context) H\(heads) dk\(headDim)" }
}

@Suite struct RoPETests {
    func reference(_ x: [Float], rows: Int, heads: Int, dk: Int, context: Int, offset: Int) -> [Double] {
        var y = x.map(Double.init)
        for r in 0..<rows {
            let t = Double(offset + r % context)
            for h in 0..<heads {
                for i in 0..<(dk / 2) {
                    let theta = t * Foundation.pow(10000, -2 * Double(i) / Double(dk))
                    let a = Double(x[r * heads * dk + h * dk + 2 * i]),
                        b = Double(x[r * heads * dk + h * dk + 2 * i + 1])
                    y[r * heads * dk + h * dk + 2 * i] = a * Foundation.cos(theta) - b * Foundation.sin(theta)
                    y[r * heads * dk + h * dk + 2 * i + 1] = a * Foundation.sin(theta) + b * Foundation.cos(theta)
                }
            }
        }
        return y
    }

    @Test(arguments: [2, 8, 34])
    func forwardIsTheTrueRotation(dk: Int) {
        let heads = 3, context = 33, rows = 2 * context
        let table = RoPETable(context: 64, headDim: dk)
        var rng = SplitMix64(seed: UInt64(dk))
        let x = rng.normals(rows * heads * dk)
        for offset in [0, 5] {
            var y = x
            RoPE.rotate(
                &y, ld: heads * dk, rows: rows, heads: heads, context: context, positionOffset: offset, table: table)
            // The table is rounded to Float once; one rotation adds a few ulp: 1e-6 relative.
            #expect(
                relativeMaxError(y, reference(x, rows: rows, heads: heads, dk: dk, context: context, offset: offset))
                    < 1e-6)
            // the inverse undoes it
            RoPE.rotate(
                &y, ld: heads * dk, rows: rows, heads: heads, context: context, positionOffset: offset, table: table,
                inverse: true)
            #expect(relativeMaxError(y, x) < 1e-6)
        }
    }

    @Test func dotProductsDependOnlyOnRelativePosition() {
        let dk = 16, table = RoPETable(context: 16, headDim: dk)
        var rng = SplitMix64(seed: 1)
        let q = rng.normals(dk), k = rng.normals(dk)
        func rotated(_ x: [Float], at t: Int) -> [Float] {
            var y = x
            RoPE.rotate(&y, ld: dk, rows: 1, heads: 1, context: 1, positionOffset: t, table: table)
            return y
        }
        func dotp(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        let d21 = dotp(rotated(q, at: 2), rotated(k, at: 1)), d54 = dotp(rotated(q, at: 5), rotated(k, at: 4))
        #expect(abs(d21 - d54) < 1e-5)
        // and norms are preserved
        #expect(abs(dotp(rotated(q, at: 7), rotated(q, at: 7)) - dotp(q, q)) < 1e-4)
    }

    @Test func backwardIsTheInverseRotation() {
        let dk = 8, heads = 2, context = 7, rows = 14
        let table = RoPETable(context: context, headDim: dk)
        var rng = SplitMix64(seed: 2)
        let x = rng.normals(rows * heads * dk), w = rng.normals(rows * heads * dk)
        var dx = w
        RoPE.rotate(&dx, ld: heads * dk, rows: rows, heads: heads, context: context, table: table, inverse: true)
        let err = finiteDifferenceError(at: x, analytic: dx) { x in
            var y = x
            RoPE.rotate(&y, ld: heads * dk, rows: rows, heads: heads, context: context, table: table)
            return weightedSum(y, w)
        }
        #expect(err < fdTolerance)
    }
}

@Suite struct OptimizerTests {
    @Test func adamWMatchesTorchArithmetic() {
        let n = 37
        var rng = SplitMix64(seed: 11)
        var p = rng.normals(n)
        var m = [Float](repeating: 0, count: n), v = m
        var pd = p.map(Double.init), md = [Double](repeating: 0, count: n), vd = md
        let lr: Float = 3e-3, wd: Float = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8
        for step in 1...5 {
            let g = rng.normals(n)
            let clip: Float = 0.5
            Optimizer.adamW(
                param: &p, grad: g, m: &m, v: &v, count: n, lr: lr, weightDecay: wd, step: step, gradScale: clip)
            let bc1 = 1 - Foundation.pow(b1, Double(step)), bc2 = 1 - Foundation.pow(b2, Double(step))
            for i in 0..<n {
                let gi = Double(g[i] * clip)
                pd[i] *= 1 - Double(lr) * Double(wd)
                md[i] = b1 * md[i] + (1 - b1) * gi
                vd[i] = b2 * vd[i] + (1 - b2) * gi * gi
                pd[i] -= Double(lr) / bc1 * md[i] / (vd[i].squareRoot() / bc2.squareRoot() + eps)
            }
        }
        // five Float updates of size ≤ lr on O(1) weights: 1e-6 relative is a few ulp.
        #expect(relativeMaxError(p, pd) < 1e-6)
        #expect(relativeMaxError(m, md) < 1e-5)
    }

    /// The update is the same Float arithmetic, in the same order, as the per-value formula (the AVX-512 loop in
    /// CAdamW where the CPU has it, and its tail): bit for bit, over a length with a partial vector at the end.
    @Test func adamWIsThePerValueFormulaBitForBit() {
        let n = 16 * 40 + 7
        var rng = SplitMix64(seed: 12)
        var p = rng.normals(n), m = rng.normals(n, std: 0.01), v = rng.normals(n, std: 0.01).map { $0 * $0 }
        let g = rng.normals(n)
        var pr = p, mr = m, vr = v
        let lr: Float = 3e-3, wd: Float = 0.1, step = 3, clip: Float = 0.7
        Optimizer.adamW(
            param: &p, grad: g, m: &m, v: &v, count: n, lr: lr, weightDecay: wd, step: step, gradScale: clip)
        let bias1 = 1 - Foundation.pow(Double(Float(0.9)), Double(step))
        let bias2 = 1 - Foundation.pow(Double(Float(0.95)), Double(step))
        let stepSize = Float(Double(lr) / bias1), invSqrtBias2 = Float(1 / bias2.squareRoot()), decay = 1 - lr * wd
        let b1: Float = 0.9, b2: Float = 0.95, eps: Float = 1e-8
        for i in 0..<n {
            let gi = g[i] * clip
            mr[i] = b1 * mr[i] + (1 - b1) * gi
            vr[i] = b2 * vr[i] + (1 - b2) * gi * gi
            pr[i] = pr[i] * decay - stepSize * mr[i] / (vr[i].squareRoot() * invSqrtBias2 + eps)
        }
        func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differing(p, pr) == 0 && differing(m, mr) == 0 && differing(v, vr) == 0)
    }

    @Test func noWeightDecayLeavesZeroGradientWeightsAlone() {
        var p: [Float] = [0.5, -1.5], m: [Float] = [0, 0], v: [Float] = [0, 0]
        Optimizer.adamW(param: &p, grad: [0, 0], m: &m, v: &v, count: 2, lr: 0.1, weightDecay: 0, step: 1)
        #expect(p == [0.5, -1.5])
        Optimizer.adamW(param: &p, grad: [0, 0], m: &m, v: &v, count: 2, lr: 0.1, weightDecay: 0.5, step: 2)
        #expect(abs(p[0] - 0.5 * 0.95) < 1e-7)
    }

    @Test func globalNormAndClipping() {
        let a: [Float] = [3, 0, 0], b: [Float] = (0..<1000).map { _ in 0.1 }
        let norm = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in Optimizer.globalNorm([(ap.baseAddress!, 3), (bp.baseAddress!, 1000)]) }
        }
        #expect(abs(norm - (9.0 + 10.0).squareRoot()) < 1e-5)
        #expect(Optimizer.clipFactor(norm: 0.5, maxNorm: 1) == 1)
        #expect(abs(Double(Optimizer.clipFactor(norm: 4, maxNorm: 1)) - 1 / (4 + 1e-6)) < 1e-7)
    }
}

/// The packed tiles' softmax and its backward in C against the Swift rows they replace: the same bits, for rows
/// of every length from 1 to T (partial vectors of every size), tiles of 14 rows with the zeros up to the tile's
/// width, and scores from flat to far sharper than nGPT's temperature gives.
@Suite struct SoftmaxRowTests {
    @Test(arguments: [1.0, 8.0, 60.0] as [Float])
    func cRowsGiveTheSwiftRowsBits(spread: Float) {
        var rng = SplitMix64(seed: UInt64(spread * 10))
        let T = 100, tile = Attention.tileRows
        let scores = (0..<(T * T)).map { _ in spread * Float(rng.normal(std: 1)) }
        let dP = (0..<(T * T)).map { _ in Float(rng.normal(std: 1)) }
        var swiftP = [Float](repeating: .nan, count: T * T), cP = swiftP
        var swiftDS = swiftP, cDS = swiftP
        for r0 in stride(from: 0, to: T, by: tile) {
            let r1 = min(T, r0 + tile), width = Attention.tileWidth(end: r1, context: T)
            for i in r0..<r1 {
                for j in 0..<width { swiftP[i * T + j] = scores[i * T + j]; swiftDS[i * T + j] = dP[i * T + j] }
            }
            for i in r0..<r1 { Attention.causalSoftmaxRow(&swiftP[i * T], valid: i + 1, count: width) }
            for i in r0..<r1 {
                swiftP.withUnsafeBufferPointer { p in
                    swiftDS.withUnsafeMutableBufferPointer { d in
                        Attention.softmaxBackwardRow(
                            p.baseAddress! + i * T, d.baseAddress! + i * T, valid: i + 1, count: width)
                    }
                }
            }
            for i in r0..<r1 {
                for j in 0..<width { cP[i * T + j] = scores[i * T + j]; cDS[i * T + j] = dP[i * T + j] }
            }
            cP.withUnsafeMutableBufferPointer {
                ngpt_causal_softmax($0.baseAddress! + r0 * T, T, r1 - r0, r0 + 1, width)
            }
            cP.withUnsafeBufferPointer { p in
                cDS.withUnsafeMutableBufferPointer { d in
                    ngpt_causal_softmax_backward(
                        p.baseAddress! + r0 * T, d.baseAddress! + r0 * T, T, r1 - r0, r0 + 1, width)
                }
            }
        }
        func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differing(cP, swiftP) == 0)
        #expect(differing(cDS, swiftDS) == 0)
        #expect(swiftP[5 * T + 5] > 0 && swiftP[5 * T + 6] == 0)  // the rows hold what the tiles need
    }
}
