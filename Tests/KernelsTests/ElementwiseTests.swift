import Foundation
import Testing

@testable import Kernels

@Suite struct ElementwiseTests {
    @Test func exp16MatchesLibm() {
        // Cephes' polynomial after Cody–Waite reduction: ≲ 2 ulp (≈ 1.2e-7 relative) over the clamp range.
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            var v = F32x16()
            for l in 0..<16 { v[l] = min(x + Float(l) * 0.0137, 88) }
            let e = exp16(v)
            for l in 0..<16 {
                let ref = Foundation.exp(Double(v[l]))
                worst = max(worst, abs(Double(e[l]) - ref) / ref)
            }
            x += 0.173
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        #expect(exp16(F32x16(repeating: .nan))[0].isNaN)
        #expect(exp16(F32x16(repeating: -.infinity))[0] < 1e-37)
    }

    @Test(arguments: oddSizes)
    func swigluForwardAndBackward(n: Int) {
        var rng = SplitMix64(seed: 400 + UInt64(n))
        let u = rng.normals(n, std: 2), gate = rng.normals(n, std: 3), w = rng.normals(n)
        func forward(_ u: [Float], _ gate: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            SwiGLU.forward(u: u, gate: gate, &out, count: n)
            return out
        }
        let out = forward(u, gate)
        let ref = (0..<n).map { i -> Double in
            let g = Double(gate[i])
            return Double(u[i]) * g / (1 + Foundation.exp(-g))
        }
        #expect(relativeMaxError(out, ref) < 1e-6)
        var du = [Float](repeating: 0, count: n), dg = [Float](repeating: 0, count: n)
        SwiGLU.backward(w, u: u, gate: gate, du: &du, dgate: &dg, count: n)
        let errU = finiteDifferenceError(at: u, analytic: du) { weightedSum(forward($0, gate), w) }
        let errG = finiteDifferenceError(at: gate, analytic: dg) { weightedSum(forward(u, $0), w) }
        #expect(errU < fdTolerance, "du \(errU)")
        #expect(errG < fdTolerance, "dgate \(errG)")
    }

    @Test(arguments: oddSizes)
    func crossEntropyForwardAndBackward(vocab: Int) {
        let rows = 6
        var rng = SplitMix64(seed: 500 + UInt64(vocab))
        let logits = rng.normals(rows * vocab, std: 3)
        let targets = (0..<rows).map { _ in Int32.random(in: 0..<Int32(vocab), using: &rng) }
        var losses = [Float](repeating: 0, count: rows)
        var grad = [Float](repeating: 0, count: rows * vocab)
        let total = CrossEntropy.forwardBackward(
            logits: logits, targets: targets, rows: rows, vocab: vocab,
            losses: &losses, dlogits: &grad, gradScale: 1 / Float(rows))
        var refTotal = 0.0
        for r in 0..<rows {
            let row = (0..<vocab).map { Double(logits[r * vocab + $0]) }
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
            let loss = lse - row[Int(targets[r])]
            #expect(abs(Double(losses[r]) - loss) < 1e-5 * max(1, loss))
            refTotal += loss
        }
        #expect(abs(total - refTotal) < 1e-5 * refTotal + 1e-6)
        // Gradient of the mean loss against finite differences of the loss-only path.
        let err = finiteDifferenceError(at: logits, analytic: grad) { x in
            CrossEntropy.forwardBackward(logits: x, targets: targets, rows: rows, vocab: vocab) / Double(rows)
        }
        #expect(err < fdTolerance, "dlogits \(err)")
        // In place (dlogits aliasing logits) gives the same gradient.
        var inPlace = logits
        inPlace.withUnsafeMutableBufferPointer { p in
            _ = CrossEntropy.forwardBackward(
                logits: p.baseAddress!, targets: targets, rows: rows, vocab: vocab,
                dlogits: p.baseAddress!, gradScale: 1 / Float(rows))
        }
        #expect(inPlace == grad)
    }

    @Test func crossEntropyPropagatesNaN() {
        var logits: [Float] = [0, 1, .nan, 2]
        let loss = CrossEntropy.forwardBackward(logits: &logits, targets: [1], rows: 1, vocab: 4)
        #expect(loss.isNaN)
    }

    @Test(arguments: oddSizes)
    func embeddingGatherAndScatter(dim: Int) {
        let vocab = 11, count = 9
        var rng = SplitMix64(seed: 600 + UInt64(dim))
        let table = rng.normals(vocab * dim)
        let ids: [Int32] = [3, 0, 10, 3, 7, 3, 1, 0, 5]  // repeats accumulate
        var out = [Float](repeating: 0, count: count * dim)
        Embedding.forward(table: table, ids: ids, count: count, dim: dim, vocab: vocab, &out)
        for i in 0..<count {
            #expect(Array(out[i * dim..<(i + 1) * dim]) == Array(table[Int(ids[i]) * dim..<(Int(ids[i]) + 1) * dim]))
        }
        let dout = rng.normals(count * dim)
        var dtable = [Float](repeating: 0, count: vocab * dim)
        Embedding.backward(dout, ids: ids, count: count, dim: dim, vocab: vocab, dtable: &dtable)
        var ref = [Double](repeating: 0, count: vocab * dim)
        for i in 0..<count { for c in 0..<dim { ref[Int(ids[i]) * dim + c] += Double(dout[i * dim + c]) } }
        #expect(relativeMaxError(dtable, ref) < 1e-6)
        let err = finiteDifferenceError(at: table, analytic: dtable) { t in
            var o = [Float](repeating: 0, count: count * dim)
            Embedding.forward(table: t, ids: ids, count: count, dim: dim, vocab: vocab, &o)
            return weightedSum(o, dout)
        }
        #expect(err < fdTolerance)
    }

    @Test func parallelForCoversEveryIndexOnce() {
        let n = 1 << 20
        var hits = [UInt8](repeating: 0, count: n)
        hits.withUnsafeMutableBufferPointer { h in
            let p = h.baseAddress!
            Threads.parallelFor(n, workPerItem: 64) { worker, range in
                precondition(worker < Threads.count)
                for i in range { p[i] &+= 1 }
            }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }
}
