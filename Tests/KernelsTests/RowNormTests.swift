import Testing

@testable import Kernels

@Suite struct RowNormTests {
    // Forward results are a handful of Float operations from O(1) inputs: 1e-6 relative to the largest entry
    // is ~16 ulp of headroom over the Double reference.
    static let forwardTolerance = 1e-6

    @Test(arguments: oddSizes)
    func l2ForwardMatchesReference(cols: Int) {
        let rows = 5
        var rng = SplitMix64(seed: UInt64(cols))
        let x = rng.normals(rows * cols, std: 3)
        var y = [Float](repeating: 0, count: rows * cols), inv = [Float](repeating: 0, count: rows)
        RowNorm.l2Forward(x, &y, invNorm: &inv, rows: rows, cols: cols)
        var ref = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let norm = (0..<cols).reduce(0.0) { $0 + Double(x[r * cols + $1]) * Double(x[r * cols + $1]) }.squareRoot()
            for c in 0..<cols { ref[r * cols + c] = Double(x[r * cols + c]) / norm }
            #expect(abs(Double(inv[r]) * norm - 1) < 1e-6)
        }
        #expect(relativeMaxError(y, ref) < Self.forwardTolerance)
    }

    /// The fused residual update gives the bits of the kernels it replaces (l2Forward in place, Columns.lerp,
    /// l2Forward in place, l2Forward into the next input), with and without the next input, over enough rows to be
    /// split over the workers (its backward is theirs: the model's finite-difference and PyTorch tests cover it).
    @Test(arguments: [(1000, 256), (600, 40), (7, 17)])
    func residualUpdateIsTheSeparateKernels(rows: Int, cols: Int) {
        var rng = SplitMix64(seed: UInt64(rows + cols))
        let a = rng.normals(rows * cols), b = rng.normals(rows * cols, std: 2), alpha = rng.normals(cols, std: 0.3)
        // separately
        var bSeparate = b, out = [Float](repeating: 0, count: rows * cols), next = out
        var invB = [Float](repeating: 0, count: rows), invOut = invB, invNext = invB
        RowNorm.l2Forward(bSeparate, &bSeparate, invNorm: &invB, rows: rows, cols: cols)
        Columns.lerp(a, bSeparate, alpha: alpha, &out, rows: rows, cols: cols)
        RowNorm.l2Forward(out, &out, invNorm: &invOut, rows: rows, cols: cols)
        RowNorm.l2Forward(out, &next, invNorm: &invNext, rows: rows, cols: cols)
        for withNext in [true, false] {
            var bFused = b, outFused = [Float](repeating: 0, count: rows * cols), nextFused = outFused
            var invBFused = [Float](repeating: 0, count: rows), invOutFused = invBFused, invNextFused = invBFused
            bFused.withUnsafeMutableBufferPointer { bp in
                nextFused.withUnsafeMutableBufferPointer { np in
                    invNextFused.withUnsafeMutableBufferPointer { ip in
                        RowNorm.residualUpdate(
                            a: a, b: bp.baseAddress!, invB: &invBFused, alpha: alpha, out: &outFused,
                            invOut: &invOutFused, next: withNext ? np.baseAddress! : nil,
                            invNext: withNext ? ip.baseAddress! : nil, rows: rows, cols: cols)
                    }
                }
            }
            func same(_ x: [Float], _ y: [Float]) -> Bool {
                x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern }
            }
            #expect(same(bFused, bSeparate) && same(invBFused, invB))
            #expect(same(outFused, out) && same(invOutFused, invOut))
            if withNext { #expect(same(nextFused, next) && same(invNextFused, invNext)) }
        }
    }

    /// The fused residual backward against the kernels it replaces (l2Backward, Columns.lerpBackward, l2Backward):
    /// ga and gb bit for bit; α's gradient, summed over row blocks instead of whole columns, to rounding.
    @Test(arguments: [(1000, 256), (600, 40), (7, 17)])
    func residualUpdateBackwardIsTheSeparateKernels(rows: Int, cols: Int) {
        var rng = SplitMix64(seed: UInt64(3 * rows + cols))
        let g = rng.normals(rows * cols), a = rng.normals(rows * cols), alpha = rng.normals(cols, std: 0.3)
        var b = rng.normals(rows * cols), out = [Float](repeating: 0, count: rows * cols)
        var invB = [Float](repeating: 0, count: rows), invOut = invB
        RowNorm.l2Forward(b, &b, invNorm: &invB, rows: rows, cols: cols)
        Columns.lerp(a, b, alpha: alpha, &out, rows: rows, cols: cols)
        RowNorm.l2Forward(out, &out, invNorm: &invOut, rows: rows, cols: cols)
        // separately
        var grho = [Float](repeating: 0, count: rows * cols), ga = grho, gb = grho
        var galpha = [Float](repeating: 0.5, count: cols)
        RowNorm.l2Backward(g, y: out, invNorm: invOut, &grho, rows: rows, cols: cols)
        Columns.lerpBackward(grho, a: a, b: b, alpha: alpha, ga: &ga, gb: &gb, galpha: &galpha, rows: rows, cols: cols)
        gb.withUnsafeMutableBufferPointer { p in
            RowNorm.l2Backward(p.baseAddress!, y: b, invNorm: invB, p.baseAddress!, rows: rows, cols: cols)
        }
        // fused
        var gaFused = [Float](repeating: 0, count: rows * cols), gbFused = gaFused
        var galphaFused = [Float](repeating: 0.5, count: cols)
        RowNorm.residualUpdateBackward(
            g, out: out, invOut: invOut, a: a, b: b, invB: invB, alpha: alpha, ga: &gaFused, gb: &gbFused,
            galpha: &galphaFused, rows: rows, cols: cols)
        func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differing(gaFused, ga) == 0 && differing(gbFused, gb) == 0)
        #expect(relativeMaxError(galphaFused, galpha.map(Double.init)) < 1e-5)
    }

    /// A pending normalisation backward (`plus`) gives the bits of adding it into g first with l2Backward, also
    /// when ga is the pending gradient's own buffer (as in nGPT's backward).
    @Test(arguments: [(600, 256), (7, 17)])
    func residualUpdateBackwardAddsThePendingNormBackward(rows: Int, cols: Int) {
        var rng = SplitMix64(seed: UInt64(5 * rows + cols))
        let g = rng.normals(rows * cols), a = rng.normals(rows * cols), alpha = rng.normals(cols, std: 0.3)
        let out = rng.normals(rows * cols), b = rng.normals(rows * cols), y = rng.normals(rows * cols)
        let invOut = rng.normals(rows).map { abs($0) + 0.5 }, invB = invOut.map { $0 * 0.7 }
        let invY = invOut.map { $0 * 1.3 }, pendingDy = rng.normals(rows * cols)
        // first added into g, then the residual backward
        var gTotal = g, ga = [Float](repeating: 0, count: rows * cols), gb = ga
        var galpha = [Float](repeating: 0, count: cols)
        RowNorm.l2Backward(pendingDy, y: y, invNorm: invY, &gTotal, rows: rows, cols: cols, accumulate: true)
        RowNorm.residualUpdateBackward(
            gTotal, out: out, invOut: invOut, a: a, b: b, invB: invB, alpha: alpha, ga: &ga, gb: &gb, galpha: &galpha,
            rows: rows, cols: cols)
        // pending, with ga written over the pending gradient's buffer
        var gaFused = pendingDy, gbFused = [Float](repeating: 0, count: rows * cols)
        var galphaFused = [Float](repeating: 0, count: cols)
        gaFused.withUnsafeMutableBufferPointer { dy in
            y.withUnsafeBufferPointer { yp in
                invY.withUnsafeBufferPointer { ip in
                    let pending = RowNorm.PendingL2Backward(
                        dy: dy.baseAddress!, y: yp.baseAddress!, invNorm: ip.baseAddress!)
                    RowNorm.residualUpdateBackward(
                        g, plus: pending, out: out, invOut: invOut, a: a, b: b, invB: invB, alpha: alpha,
                        ga: dy.baseAddress!, gb: &gbFused, galpha: &galphaFused, rows: rows, cols: cols)
                }
            }
        }
        func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differing(gaFused, ga) == 0 && differing(gbFused, gb) == 0 && differing(galphaFused, galpha) == 0)
    }

    @Test(arguments: oddSizes)
    func l2BackwardMatchesFiniteDifferences(cols: Int) {
        let rows = 3
        var rng = SplitMix64(seed: 100 + UInt64(cols))
        let x = rng.normals(rows * cols), w = rng.normals(rows * cols)
        func forward(_ x: [Float]) -> ([Float], [Float]) {
            var y = [Float](repeating: 0, count: rows * cols), inv = [Float](repeating: 0, count: rows)
            RowNorm.l2Forward(x, &y, invNorm: &inv, rows: rows, cols: cols)
            return (y, inv)
        }
        let (y, inv) = forward(x)
        var dx = [Float](repeating: 0, count: rows * cols)
        RowNorm.l2Backward(w, y: y, invNorm: inv, &dx, rows: rows, cols: cols)
        let err = finiteDifferenceError(at: x, analytic: dx) { weightedSum(forward($0).0, w) }
        #expect(err < fdTolerance, "relative error \(err)")
        // accumulate mode adds onto what is there
        var acc = [Float](repeating: 1, count: rows * cols)
        RowNorm.l2Backward(w, y: y, invNorm: inv, &acc, rows: rows, cols: cols, accumulate: true)
        #expect(relativeMaxError(acc, dx.map { Double($0) + 1 }) < 1e-6)
    }

    @Test func renormalizeGivesUnitRows() {
        let rows = 37, cols = 33
        var rng = SplitMix64(seed: 3)
        var w = rng.normals(rows * cols, std: 0.02)
        let before = RowNorm.maxRowNormDeviation(w, rows: rows, cols: cols)
        #expect(before > 0.5)
        RowNorm.renormalizeRows(&w, rows: rows, cols: cols)
        #expect(RowNorm.maxRowNormDeviation(w, rows: rows, cols: cols) < 1e-6)
        // a zero row stays finite (the 1e-12 floor)
        var z = [Float](repeating: 0, count: 8)
        RowNorm.renormalizeRows(&z, rows: 1, cols: 8)
        #expect(z.allSatisfy { $0 == 0 })
    }

    @Test func largeInputsTakeTheParallelPathAndAgree() {
        // 4096 × 256 crosses the 1 MB threshold, so rows are split over the workers.
        let rows = 4096, cols = 256
        var rng = SplitMix64(seed: 4)
        let x = rng.normals(rows * cols)
        var y = [Float](repeating: 0, count: rows * cols)
        RowNorm.l2Forward(x, &y, invNorm: nil, rows: rows, cols: cols)
        #expect(RowNorm.maxRowNormDeviation(y, rows: rows, cols: cols) < 1e-6)
    }

    @Test(arguments: oddSizes)
    func rmsForwardMatchesReference(cols: Int) {
        let rows = 4
        var rng = SplitMix64(seed: 200 + UInt64(cols))
        let x = rng.normals(rows * cols, std: 2), g = rng.normals(cols)
        var y = [Float](repeating: 0, count: rows * cols), rstd = [Float](repeating: 0, count: rows)
        RowNorm.rmsForward(x, gain: g, &y, rstd: &rstd, rows: rows, cols: cols)
        var ref = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let ms = (0..<cols).reduce(0.0) { $0 + Double(x[r * cols + $1]) * Double(x[r * cols + $1]) } / Double(cols)
            let s = 1 / (ms + 1e-6).squareRoot()
            for c in 0..<cols { ref[r * cols + c] = Double(g[c]) * Double(x[r * cols + c]) * s }
        }
        #expect(relativeMaxError(y, ref) < Self.forwardTolerance)
    }

    @Test(arguments: oddSizes)
    func rmsBackwardMatchesFiniteDifferences(cols: Int) {
        let rows = 3
        var rng = SplitMix64(seed: 300 + UInt64(cols))
        let x = rng.normals(rows * cols), g = rng.normals(cols), w = rng.normals(rows * cols)
        func forward(_ x: [Float], _ g: [Float]) -> ([Float], [Float]) {
            var y = [Float](repeating: 0, count: rows * cols), rstd = [Float](repeating: 0, count: rows)
            RowNorm.rmsForward(x, gain: g, &y, rstd: &rstd, rows: rows, cols: cols)
            return (y, rstd)
        }
        let (_, rstd) = forward(x, g)
        var dx = [Float](repeating: 0, count: rows * cols), dg = [Float](repeating: 0, count: cols)
        RowNorm.rmsBackward(w, x: x, gain: g, rstd: rstd, &dx, dgain: &dg, rows: rows, cols: cols)
        let errX = finiteDifferenceError(at: x, analytic: dx) { weightedSum(forward($0, g).0, w) }
        let errG = finiteDifferenceError(at: g, analytic: dg) { weightedSum(forward(x, $0).0, w) }
        #expect(errX < fdTolerance, "dx relative error \(errX)")
        #expect(errG < fdTolerance, "dgain relative error \(errG)")
    }
}
