import Foundation
import Kernels

/// The buffers an nGPT allocates besides its parameters and gradients: folded weight copies and activations.
extension NGPTModel {
    /// Scale vectors that act on a matrix product's outputs are folded into copies of the weights at each
    /// forward (diag(s)·W is [rows, d]; scaling the [tokens, rows] product instead costs a pass over it):
    /// E_out·diag(s_z), W_up·diag(s_u), W_gate·diag(√d·s_ν). Their gradients come back through `gradOut`,
    /// `gradUp` and `gradGate` (see `unfoldScaleGradient`).
    final class ScaledWeights {
        let arena: Arena
        let output: UnsafeMutablePointer<Float>  // [V, d]
        let up: [UnsafeMutablePointer<Float>], gate: [UnsafeMutablePointer<Float>]  // [F, d] per layer
        let gradOut: UnsafeMutablePointer<Float>, gradUp: UnsafeMutablePointer<Float>,
            gradGate: UnsafeMutablePointer<Float>

        init(config c: ModelConfig, arena: Arena = Arena()) {
            self.arena = arena
            let vd = c.vocabSize * c.dim, fd = c.mlpHidden * c.dim
            output = arena.floats(vd)
            up = (0..<c.layers).map { _ in arena.floats(fd) }
            gate = (0..<c.layers).map { _ in arena.floats(fd) }
            gradOut = arena.floats(vd)
            gradUp = arena.floats(fd)
            gradGate = arena.floats(fd)
        }
    }
}

/// nGPT's saved activations for one (batch, context); allocated once and reused.
public final class NGPTActivations: StreamActivations {
    let layers: [Layer]
    // backward scratch of nGPT's own: the LERP's and normalisations' gradients ([n, d]) and α's ([d])
    let gA: UnsafeMutablePointer<Float>, gB: UnsafeMutablePointer<Float>,
        gd1: UnsafeMutablePointer<Float>, gAlpha: UnsafeMutablePointer<Float>

    struct Layer {
        // attention sub-block
        var a1, invA1, q, k, v, qhat, khat, invQ, invK, qs, ks, probs, y, hA, invHA, hMid,
            invRho1: UnsafeMutablePointer<Float>
        // MLP sub-block
        var a2, invA2, u, nu, x, hM, invHM, invRho2: UnsafeMutablePointer<Float>
    }

    override init(config c: ModelConfig, batch: Int, arena A: Arena = Arena()) {
        let n = batch * c.context, d = c.dim, f = Self.mlpStride(c), nh = n * c.heads
        let probs = AttentionShape(batch: batch, context: c.context, heads: c.heads, headDim: c.headDim).probsCount
        layers = (0..<c.layers).map { _ in
            Layer(
                a1: A.floats(n * d), invA1: A.floats(n), q: A.floats(n * d), k: A.floats(n * d), v: A.floats(n * d),
                qhat: A.floats(n * d), khat: A.floats(n * d), invQ: A.floats(nh), invK: A.floats(nh),
                qs: A.floats(n * d), ks: A.floats(n * d), probs: A.floats(probs), y: A.floats(n * d),
                hA: A.floats(n * d), invHA: A.floats(n), hMid: A.floats(n * d), invRho1: A.floats(n),
                a2: A.floats(n * d), invA2: A.floats(n), u: A.floats(n * f), nu: A.floats(n * f),
                x: A.floats(n * f), hM: A.floats(n * d), invHM: A.floats(n), invRho2: A.floats(n))
        }
        gA = A.floats(n * d); gB = A.floats(n * d); gd1 = A.floats(n * d)
        gAlpha = A.floats(d)
        super.init(config: c, batch: batch, arena: A)
    }
}
