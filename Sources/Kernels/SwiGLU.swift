import CRowKernels
import Foundation

/// SwiGLU's gate: out = u ⊙ SiLU(ν) with SiLU(x) = x·σ(x), elementwise over n values. The output and the input
/// gradients are only read by matrix products, so they are written as those products read them (`GEMM.Operand`:
/// bf16 where the products run in bf16). Where the CPU has AVX-512 the loops are CRowKernels' (the same arithmetic,
/// bit for bit, and the rounding to bf16 Swift's SIMD does one lane at a time); elsewhere the Swift loops below.
public enum SwiGLU {
    /// u, gate: [n]; out: [n] as stored for products (a Float `out` may be u itself; the decoder's use).
    public static func forward(
        u: UnsafePointer<Float>, gate: UnsafePointer<Float>, _ out: GEMM.Operand, count n: Int
    ) {
        Threads.parallelFor((n + 15) / 16, workPerItem: 3 * 64 * Threads.computeHeavy) { _, blocks in
            let start = blocks.lowerBound * 16, end = min(n, blocks.upperBound * 16)
            if GEMM.hasAVX512 {
                ngpt_swiglu_forward(
                    u + start, gate + start, out.address + start * out.stride, end - start, out.isBF16 ? 1 : 0)
            } else {
                forwardLoop(u: u, gate: gate, out.floats, from: start, to: end)
            }
        }
    }

    /// The same into Floats.
    public static func forward(
        u: UnsafePointer<Float>, gate: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count n: Int
    ) {
        forward(u: u, gate: gate, GEMM.Operand(out), count: n)
    }

    /// du = dout ⊙ SiLU(ν),  dν = dout ⊙ u ⊙ σ(ν)·(1 + ν·(1 − σ(ν))), as stored for products (Float du/dν may
    /// alias u/gate).
    public static func backward(
        _ dout: UnsafePointer<Float>, u: UnsafePointer<Float>, gate: UnsafePointer<Float>, du: GEMM.Operand,
        dgate: GEMM.Operand, count n: Int
    ) {
        precondition(du.isBF16 == dgate.isBF16)
        Threads.parallelFor((n + 15) / 16, workPerItem: 5 * 64 * Threads.computeHeavy) { _, blocks in
            let start = blocks.lowerBound * 16, end = min(n, blocks.upperBound * 16)
            if GEMM.hasAVX512 {
                ngpt_swiglu_backward(
                    dout + start, u + start, gate + start, du.address + start * du.stride,
                    dgate.address + start * dgate.stride, end - start, du.isBF16 ? 1 : 0)
            } else {
                backwardLoop(dout, u: u, gate: gate, du: du.floats, dgate: dgate.floats, from: start, to: end)
            }
        }
    }

    /// The same into Floats.
    public static func backward(
        _ dout: UnsafePointer<Float>, u: UnsafePointer<Float>, gate: UnsafePointer<Float>,
        du: UnsafeMutablePointer<Float>, dgate: UnsafeMutablePointer<Float>, count n: Int
    ) {
        backward(dout, u: u, gate: gate, du: GEMM.Operand(du), dgate: GEMM.Operand(dgate), count: n)
    }

    /// The forward's arithmetic over start..<end (CPUs without AVX-512, and the reference in tests).
    static func forwardLoop(
        u: UnsafePointer<Float>, gate: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, from start: Int,
        to end: Int
    ) {
        var i = start
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

    /// The backward's arithmetic over start..<end (CPUs without AVX-512, and the reference in tests).
    static func backwardLoop(
        _ dout: UnsafePointer<Float>, u: UnsafePointer<Float>, gate: UnsafePointer<Float>,
        du: UnsafeMutablePointer<Float>, dgate: UnsafeMutablePointer<Float>, from start: Int, to end: Int
    ) {
        var i = start
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
