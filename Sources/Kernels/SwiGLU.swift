import Foundation

/// SwiGLU's gate: out = u ⊙ SiLU(ν) with SiLU(x) = x·σ(x), elementwise over n values.
public enum SwiGLU {
    /// u, gate, out: [n] (out may alias neither input only if the caller keeps u and gate for backward).
    public static func forward(
        u: UnsafePointer<Float>, gate: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        count n: Int
    ) {
        Threads.parallelFor((n + 15) / 16, workPerItem: 3 * 64 * Threads.computeHeavy) { _, blocks in
            var i = blocks.lowerBound * 16
            let end = min(n, blocks.upperBound * 16)
            while i + 16 <= end {
                let g = load16(gate + i)
                store16(load16(u + i) * g * sigmoid16(g), out + i)
                i += 16
            }
            while i < end {
                let g = gate[i]
                out[i] = u[i] * g / (1 + expf(-g))
                i += 1
            }
        }
    }

    /// du = dout ⊙ SiLU(ν),  dν = dout ⊙ u ⊙ σ(ν)·(1 + ν·(1 − σ(ν))). du/dν may alias u/gate.
    public static func backward(
        _ dout: UnsafePointer<Float>, u: UnsafePointer<Float>, gate: UnsafePointer<Float>,
        du: UnsafeMutablePointer<Float>, dgate: UnsafeMutablePointer<Float>, count n: Int
    ) {
        Threads.parallelFor((n + 15) / 16, workPerItem: 5 * 64 * Threads.computeHeavy) { _, blocks in
            var i = blocks.lowerBound * 16
            let end = min(n, blocks.upperBound * 16)
            while i + 16 <= end {
                let g = load16(gate + i), uu = load16(u + i), d = load16(dout + i)
                let sg = sigmoid16(g)
                store16(d * g * sg, du + i)
                store16(d * uu * sg * (1 + g * (1 - sg)), dgate + i)
                i += 16
            }
            while i < end {
                let g = gate[i], uu = u[i], d = dout[i]
                let sg = 1 / (1 + expf(-g))
                du[i] = d * g * sg
                dgate[i] = d * uu * sg * (1 + g * (1 - sg))
                i += 1
            }
        }
    }
}
