import CRowKernels
import Foundation

/// AdamW and global gradient-norm clipping over flat parameter buffers.
public enum Optimizer {
    public struct AdamConfig: Sendable, Equatable {
        public var beta1: Float, beta2: Float, eps: Float
        public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8) {
            self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        }
    }

    /// One AdamW step on a tensor of `count` values, the same arithmetic as torch.optim.AdamW:
    ///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
    ///   p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε),
    /// with g = grad · gradScale (pass the clipping factor here to avoid a separate pass). `step` counts from 1.
    public static func adamW(
        param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>,
        m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
        lr: Float, weightDecay: Float, step: Int, config: AdamConfig = AdamConfig(),
        gradScale: Float = 1
    ) {
        precondition(step >= 1, "Adam steps count from 1")
        let b1 = config.beta1, b2 = config.beta2
        let bias1 = 1 - pow(Double(b1), Double(step)), bias2 = 1 - pow(Double(b2), Double(step))
        let stepSize = Float(Double(lr) / bias1)
        let invSqrtBias2 = Float(1 / bias2.squareRoot())
        let decay = 1 - lr * weightDecay
        let eps = config.eps
        Threads.parallelFor(count, workPerItem: 28) { _, range in
            if GEMM.hasAVX512 {  // the same arithmetic, with a vector square root (see CRowKernels)
                let i = range.lowerBound
                ngpt_adamw_avx512(
                    param + i, grad + i, m + i, v + i, range.count, b1, b2, decay, stepSize, invSqrtBias2, eps,
                    gradScale)
                return
            }
            let vb1 = F32x16(repeating: b1), vb2 = F32x16(repeating: b2), vdecay = F32x16(repeating: decay)
            let vstep = F32x16(repeating: stepSize), vbias = F32x16(repeating: invSqrtBias2),
                veps = F32x16(repeating: eps)
            let vscale = F32x16(repeating: gradScale)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let g = load16(grad + i) * vscale
                let mi = vb1 * load16(m + i) + (1 - vb1) * g
                let vi = vb2 * load16(v + i) + (1 - vb2) * g * g
                store16(mi, m + i)
                store16(vi, v + i)
                store16(load16(param + i) * vdecay - vstep * mi / (vi.squareRoot() * vbias + veps), param + i)
                i += 16
            }
            while i < range.upperBound {
                let g = grad[i] * gradScale
                let mi = b1 * m[i] + (1 - b1) * g
                let vi = b2 * v[i] + (1 - b2) * g * g
                m[i] = mi
                v[i] = vi
                param[i] = param[i] * decay - stepSize * mi / (vi.squareRoot() * invSqrtBias2 + eps)
                i += 1
            }
        }
    }

    /// √(Σ g²) over several gradient buffers (accumulated in Double across blocks).
    public static func globalNorm(_ buffers: [(UnsafePointer<Float>, Int)]) -> Double {
        var total = 0.0
        for (p, n) in buffers { total += sumOfSquares(p, n) }
        return total.squareRoot()
    }

    /// The factor torch.nn.utils.clip_grad_norm_ applies: min(1, maxNorm / (norm + 1e-6)).
    public static func clipFactor(norm: Double, maxNorm: Double) -> Float {
        guard maxNorm > 0, norm.isFinite else { return 1 }
        return Float(min(1, maxNorm / (norm + 1e-6)))
    }

    /// g ← g · factor, in place.
    public static func scaleInPlace(_ g: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        scale(g, factor, g, count)
    }
}
