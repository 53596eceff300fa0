import Foundation
import Testing

@testable import Kernels

/// The fused query/key path (QKNorm) against the kernels it replaces, and RoPE's 16-lane rotation against the
/// pair-by-pair form: bit for bit.
@Suite struct QKNormTests {
    func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }

    /// dk 64 (four vectors), 34 (two and a pair-by-pair tail), 8 (the tail only).
    @Test(arguments: [64, 34, 8])
    func vectorRotationIsThePairByPairForm(dk: Int) {
        let heads = 3, context = 40, rows = 2 * context
        let table = RoPETable(context: context, headDim: dk)
        var rng = SplitMix64(seed: UInt64(dk))
        let x = rng.normals(rows * heads * dk)
        for inverse in [false, true] {
            var y = x
            RoPE.rotate(&y, ld: heads * dk, rows: rows, heads: heads, context: context, table: table, inverse: inverse)
            var expected = x
            for r in 0..<rows {
                for h in 0..<heads {
                    for i in 0..<(dk / 2) {
                        let theta = Double(r % context) * pow(10000, -2 * Double(i) / Double(dk))
                        let c = Float(cos(theta)), s = Float(sin(theta)) * (inverse ? -1 : 1)
                        let at = r * heads * dk + h * dk + 2 * i
                        expected[at] = x[at] * c - x[at + 1] * s
                        expected[at + 1] = x[at] * s + x[at + 1] * c
                    }
                }
            }
            #expect(differing(y, expected) == 0, "inverse \(inverse)")
        }
    }

    @Test(arguments: [(600, 4, 64), (300, 2, 34)])
    func fusedPathIsTheSeparateKernels(rows: Int, heads: Int, dk: Int) {
        let d = heads * dk, context = 256
        let table = RoPETable(context: context, headDim: dk)
        var rng = SplitMix64(seed: UInt64(rows + dk))
        let x = rng.normals(rows * d), s = rng.normals(d), g = rng.normals(rows * d)
        // separately: RoPE, Norm per head, × s; back: Σ g ⊙ hat into s's gradient, × s, Norm's backward, RoPE⁻¹
        var rotated = x, hat = [Float](repeating: 0, count: rows * d), inv = [Float](repeating: 0, count: rows * heads)
        var scaled = hat
        RoPE.rotate(&rotated, ld: d, rows: rows, heads: heads, context: context, table: table)
        RowNorm.l2Forward(rotated, &hat, invNorm: &inv, rows: rows * heads, cols: dk)
        Columns.scale(hat, by: s, &scaled, rows: rows, cols: d)
        var gx = g, sGrad = [Float](repeating: 0.25, count: d)
        Columns.dotAccumulate(gx, hat, factor: 0.03, into: &sGrad, rows: rows, cols: d)
        gx.withUnsafeMutableBufferPointer { p in
            let p = p.baseAddress!
            Columns.scale(p, by: s, p, rows: rows, cols: d)
            RowNorm.l2Backward(p, y: hat, invNorm: inv, p, rows: rows * heads, cols: dk)
            RoPE.rotate(p, ld: d, rows: rows, heads: heads, context: context, table: table, inverse: true)
        }
        // fused
        var hatFused = [Float](repeating: 0, count: rows * d), invFused = [Float](repeating: 0, count: rows * heads)
        var scaledFused = hatFused
        QKNorm.forward(
            x, hat: &hatFused, invNorm: &invFused, scale: s, scaled: &scaledFused, rows: rows, heads: heads,
            context: context, table: table)
        var gxFused = g, sGradFused = [Float](repeating: 0.25, count: d)
        QKNorm.backward(
            &gxFused, hat: hatFused, invNorm: invFused, scale: s, scaleGrad: &sGradFused, factor: 0.03, rows: rows,
            heads: heads, context: context, table: table)
        #expect(differing(hatFused, hat) == 0 && differing(invFused, inv) == 0)
        #expect(differing(scaledFused, scaled) == 0)
        #expect(differing(gxFused, gx) == 0 && differing(sGradFused, sGrad) == 0)
        #expect(gx != g && sGrad.contains { $0 != 0.25 })
    }
}
