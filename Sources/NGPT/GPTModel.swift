import Foundation
import Kernels

/// The baseline GPT (spec §2.3): pre-norm RMSNorm with gains, RoPE, causal attention with 1/√d_k, SwiGLU,
/// residual additions, a final RMSNorm and an untied head.
public final class GPTModel: LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let params: FlatTensors
    public let grads: FlatTensors
    let rope: RoPETable
    public static let rmsEps: Float = 1e-6

    /// Activations per batch size (training and evaluation share one; sampling uses batch 1), and the set the
    /// last forward wrote (what `backward` and `logits` read).
    private var activationSets: [Int: Activations] = [:]
    private var acts: Activations?

    public init(config: ModelConfig) {
        self.config = config
        layout = ParameterLayout(config: config)
        params = FlatTensors(layout: layout)
        grads = FlatTensors(layout: layout)
        rope = RoPETable(context: config.context, headDim: config.headDim)
        initialize(seed: 0)
    }

    /// N(0, 0.02²) for matrices and embeddings, 0.02/√(2L) for W_o and W_down, gains 1.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let outStd = 0.02 / Double(2 * config.layers).squareRoot()
        for t in layout.tensors {
            let p = params.pointer + t.offset
            if t.shape.count == 1 { p.update(repeating: 1, count: t.count) }
            else if t.name.hasSuffix("wo") || t.name.hasSuffix("w_down") { fillNormal(p, count: t.count, std: outStd, rng: &rng) }
            else { fillNormal(p, count: t.count, std: 0.02, rng: &rng) }
        }
    }

    public func projectWeights() -> Float { 0 }

    /// The hidden state after every block of the last forward, [batch × context, d] each (nGPT: unit rows;
    /// GPT: the residual stream).
    public var blockOutputs: [UnsafePointer<Float>] {
        guard let a = acts else { return [] }
        return a.h.dropFirst().map { UnsafePointer($0) }
    }

    public var logits: UnsafeMutablePointer<Float> {
        guard let a = acts else { preconditionFailure("logits before any forward pass") }
        return a.z
    }

    final class Activations {
        let arena = Arena()
        let batch: Int, n: Int
        var h: [UnsafeMutablePointer<Float>] = []       // [L+1] residual stream at each block's input, [N, d]
        var layers: [Layer] = []
        let hf: UnsafeMutablePointer<Float>, rstdF: UnsafeMutablePointer<Float>, z: UnsafeMutablePointer<Float>
        let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>
        let gh: UnsafeMutablePointer<Float>, ghNext: UnsafeMutablePointer<Float>, ga: UnsafeMutablePointer<Float>,
            gy: UnsafeMutablePointer<Float>, gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>,
            gv: UnsafeMutablePointer<Float>, gx: UnsafeMutablePointer<Float>, gu: UnsafeMutablePointer<Float>,
            gnu: UnsafeMutablePointer<Float>, gz: UnsafeMutablePointer<Float>, attnScratch: UnsafeMutablePointer<Float>

        struct Layer {
            var a1, rstd1, q, k, v, probs, y, hMid, a2, rstd2, ur, vr, x: UnsafeMutablePointer<Float>
        }

        init(config c: ModelConfig, batch: Int) {
            self.batch = batch
            n = batch * c.context
            let d = c.dim, f = c.mlpHidden
            let shape = AttentionShape(batch: batch, context: c.context, heads: c.heads, headDim: c.headDim)
            for _ in 0...c.layers { h.append(arena.floats(n * d)) }
            for _ in 0..<c.layers {
                let A = arena
                layers.append(Layer(a1: A.floats(n * d), rstd1: A.floats(n), q: A.floats(n * d), k: A.floats(n * d),
                                    v: A.floats(n * d), probs: A.floats(shape.probsCount), y: A.floats(n * d),
                                    hMid: A.floats(n * d), a2: A.floats(n * d), rstd2: A.floats(n), ur: A.floats(n * f),
                                    vr: A.floats(n * f), x: A.floats(n * f)))
            }
            hf = arena.floats(n * d); rstdF = arena.floats(n); z = arena.floats(n * c.vocabSize)
            inputs = .allocate(capacity: n)
            targets = .allocate(capacity: n)
            gh = arena.floats(n * d); ghNext = arena.floats(n * d); ga = arena.floats(n * d); gy = arena.floats(n * d)
            gq = arena.floats(n * d); gk = arena.floats(n * d); gv = arena.floats(n * d)
            gx = arena.floats(n * f); gu = arena.floats(n * f); gnu = arena.floats(n * f)
            gz = arena.floats(n * c.vocabSize)
            attnScratch = arena.floats(shape.backwardScratchCount)
        }

        deinit {
            inputs.deallocate()
            targets.deallocate()
        }
    }

    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Double {
        let a = activationSets[batch] ?? Activations(config: config, batch: batch)
        activationSets[batch] = a
        acts = a
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        a.inputs.update(from: inputs, count: n)
        a.targets.update(from: targets, count: n)
        let shape = AttentionShape(batch: batch, context: c.context, heads: H, headDim: dk)

        Embedding.forward(table: params["tok_embeddings.weight"], ids: inputs, count: n, dim: d, vocab: V, a.h[0])
        for l in 0..<c.layers {
            let s = a.layers[l], h = a.h[l], p = "layers.\(l)."
            // a = RMSNorm₁(h); q, k, v = a·Wᵀ; RoPE(q, k)   [N, d]
            RowNorm.rmsForward(h, gain: params[p + "attn_norm.weight"], s.a1, rstd: s.rstd1, rows: n, cols: d, eps: Self.rmsEps)
            GEMM.xwT(s.a1, params[p + "attn.wq"], s.q, m: n, k: d, n: d)
            GEMM.xwT(s.a1, params[p + "attn.wk"], s.k, m: n, k: d, n: d)
            GEMM.xwT(s.a1, params[p + "attn.wv"], s.v, m: n, k: d, n: d)
            RoPE.rotate(s.q, ld: d, rows: n, heads: H, context: c.context, table: rope)
            RoPE.rotate(s.k, ld: d, rows: n, heads: H, context: c.context, table: rope)
            Attention.forward(q: s.q, k: s.k, v: s.v, ld: d, y: s.y, ldy: d, probs: s.probs, shape: shape,
                              scale: 1 / Float(dk).squareRoot())
            // h_mid = h + y·W_o
            GEMM.xw(s.y, params[p + "attn.wo"], s.hMid, m: n, k: d, n: d)
            Columns.add(s.hMid, h, s.hMid, count: n * d)
            // m = RMSNorm₂(h_mid); h_out = h_mid + ((m·W_upᵀ) ⊙ SiLU(m·W_gateᵀ))·W_down
            RowNorm.rmsForward(s.hMid, gain: params[p + "mlp_norm.weight"], s.a2, rstd: s.rstd2, rows: n, cols: d, eps: Self.rmsEps)
            GEMM.xwT(s.a2, params[p + "mlp.w_up"], s.ur, m: n, k: d, n: f)
            GEMM.xwT(s.a2, params[p + "mlp.w_gate"], s.vr, m: n, k: d, n: f)
            SwiGLU.forward(u: s.ur, gate: s.vr, s.x, count: n * f)
            GEMM.xw(s.x, params[p + "mlp.w_down"], a.h[l + 1], m: n, k: f, n: d)
            Columns.add(a.h[l + 1], s.hMid, a.h[l + 1], count: n * d)
        }
        // z = RMSNorm_f(h_L)·E_outᵀ   [N, V]
        RowNorm.rmsForward(a.h[c.layers], gain: params["norm.weight"], a.hf, rstd: a.rstdF, rows: n, cols: d, eps: Self.rmsEps)
        GEMM.xwT(a.hf, params["output.weight"], a.z, m: n, k: d, n: V)
        return CrossEntropy.forwardBackward(logits: a.z, targets: targets, rows: n, vocab: V) / Double(n)
    }

    public func backward(lossScale: Float) {
        guard let a = acts else { preconditionFailure("backward before forward") }
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        let shape = AttentionShape(batch: a.batch, context: c.context, heads: H, headDim: dk)
        let g = grads

        _ = CrossEntropy.forwardBackward(logits: a.z, targets: a.targets, rows: n, vocab: V, dlogits: a.gz,
                                         gradScale: lossScale / Float(n))
        GEMM.xTy(a.gz, a.hf, g["output.weight"], m: n, k: V, n: d, beta: 1)
        GEMM.xw(a.gz, params["output.weight"], a.ga, m: n, k: V, n: d)
        RowNorm.rmsBackward(a.ga, x: a.h[c.layers], gain: params["norm.weight"], rstd: a.rstdF, a.gh,
                            dgain: g["norm.weight"], rows: n, cols: d)
        var gh = a.gh, ghNext = a.ghNext
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let s = a.layers[l], p = "layers.\(l)."
            // MLP: gh = ∂L/∂h_out = ∂L/∂(x·W_down) and the residual part of ∂L/∂h_mid
            GEMM.xwT(gh, params[p + "mlp.w_down"], a.gx, m: n, k: d, n: f)
            GEMM.xTy(s.x, gh, g[p + "mlp.w_down"], m: n, k: f, n: d, beta: 1)
            SwiGLU.backward(a.gx, u: s.ur, gate: s.vr, du: a.gu, dgate: a.gnu, count: n * f)
            GEMM.xTy(a.gu, s.a2, g[p + "mlp.w_up"], m: n, k: f, n: d, beta: 1)
            GEMM.xTy(a.gnu, s.a2, g[p + "mlp.w_gate"], m: n, k: f, n: d, beta: 1)
            GEMM.xw(a.gu, params[p + "mlp.w_up"], a.ga, m: n, k: f, n: d)
            GEMM.xw(a.gnu, params[p + "mlp.w_gate"], a.ga, m: n, k: f, n: d, beta: 1)
            ghNext.update(from: gh, count: n * d)
            RowNorm.rmsBackward(a.ga, x: s.hMid, gain: params[p + "mlp_norm.weight"], rstd: s.rstd2, ghNext,
                                dgain: g[p + "mlp_norm.weight"], rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)
            // attention: gh = ∂L/∂h_mid
            GEMM.xwT(gh, params[p + "attn.wo"], a.gy, m: n, k: d, n: d)
            GEMM.xTy(s.y, gh, g[p + "attn.wo"], m: n, k: d, n: d, beta: 1)
            Attention.backward(dy: a.gy, ldy: d, q: s.q, k: s.k, v: s.v, ld: d, probs: s.probs, dq: a.gq, dk: a.gk,
                               dv: a.gv, ldg: d, scratch: a.attnScratch, shape: shape, scale: 1 / Float(dk).squareRoot())
            RoPE.rotate(a.gq, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            RoPE.rotate(a.gk, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            GEMM.xTy(a.gq, s.a1, g[p + "attn.wq"], m: n, k: d, n: d, beta: 1)
            GEMM.xTy(a.gk, s.a1, g[p + "attn.wk"], m: n, k: d, n: d, beta: 1)
            GEMM.xTy(a.gv, s.a1, g[p + "attn.wv"], m: n, k: d, n: d, beta: 1)
            GEMM.xw(a.gq, params[p + "attn.wq"], a.ga, m: n, k: d, n: d)
            GEMM.xw(a.gk, params[p + "attn.wk"], a.ga, m: n, k: d, n: d, beta: 1)
            GEMM.xw(a.gv, params[p + "attn.wv"], a.ga, m: n, k: d, n: d, beta: 1)
            ghNext.update(from: gh, count: n * d)
            RowNorm.rmsBackward(a.ga, x: a.h[l], gain: params[p + "attn_norm.weight"], rstd: s.rstd1, ghNext,
                                dgain: g[p + "attn_norm.weight"], rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)
        }
        Embedding.backward(gh, ids: a.inputs, count: n, dim: d, vocab: V, dtable: g["tok_embeddings.weight"])
    }
}
