import Foundation

@testable import Kernels

/// Float draws for the kernel tests from the library's SplitMix64, so every test draws the same inputs on every
/// platform.
extension SplitMix64 {
    /// Approximately N(0, std²) (Box–Muller).
    mutating func normal(_ std: Float = 1) -> Float {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-300)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)) * std
    }
    mutating func normals(_ n: Int, std: Float = 1) -> [Float] { (0..<n).map { _ in normal(std) } }
}

/// The sizes the kernels must handle, chosen to hit every SIMD tail: below, at and above the 16-lane width.
let oddSizes = [1, 7, 16, 33, 257]

/// max_i |a_i − b_i| / max(max_i |b_i|, floor): error relative to the reference's largest magnitude.
/// Elementwise relative error is meaningless for entries that are ~0, so tests use this norm-wise metric;
/// `floor` turns it into an absolute error where the whole reference is ~0.
func relativeMaxError(_ a: [Float], _ b: [Double], floor: Double = 1e-30) -> Double {
    precondition(a.count == b.count)
    var worst = 0.0, scale = floor
    for i in a.indices {
        worst = max(worst, abs(Double(a[i]) - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return worst / scale
}

func relativeMaxError(_ a: [Float], _ b: [Float]) -> Double { relativeMaxError(a, b.map(Double.init)) }

/// Central finite differences of `loss` (a scalar function of the Float input, evaluated by the kernel under
/// test and reduced in Double) at every input index, compared with the analytic gradient.
/// Returns the norm-wise relative error (see `relativeMaxError`).
///
/// Tolerance reasoning for Float kernels: with step h the truncation error is ~h²·|f'''|/6 and the rounding
/// error is ~ε_f·|L|/h with ε_f ≈ 6e-8 per Float result (times √n for a reduction over n outputs). With h = 1e-2
/// and O(1) inputs both terms are ≲ 1e-4 relative, so 2e-3 leaves a 20× margin while still catching any
/// wrong term in a backward formula (those give O(1) relative errors).
func finiteDifferenceError(at x: [Float], h: Float = 1e-2, analytic: [Float], loss: ([Float]) -> Double) -> Double {
    var fd = [Double](repeating: 0, count: x.count)
    var xp = x
    for i in x.indices {
        let orig = xp[i]
        xp[i] = orig + h
        let lp = loss(xp)
        xp[i] = orig - h
        let lm = loss(xp)
        xp[i] = orig
        // the step actually taken in Float
        fd[i] = (lp - lm) / (Double(orig + h) - Double(orig - h))
    }
    // Gradients that are ~0 everywhere (e.g. the normalisation of a 1-vector) are judged in absolute terms:
    // below 1e-3 the tolerance applies to |error| / 1e-3.
    return relativeMaxError(analytic, fd, floor: 1e-3)
}

let fdTolerance = 2e-3

/// Σ w ⊙ y in Double: the scalar loss that finite-difference tests differentiate (so dy = w).
func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
    var s = 0.0
    for i in y.indices { s += Double(y[i]) * Double(w[i]) }
    return s
}
