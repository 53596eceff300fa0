import Foundation
import Kernels

/// Single-token inference with a KV cache: a forward pass separate from the training path, whose cost per token
/// grows linearly with the number of cached positions (one matrix–vector product per weight, plus attention over
/// the cache). Logits equal the full forward's at every position.
public protocol TokenDecoder: AnyObject {
    var config: ModelConfig { get }
    /// Tokens in the cache (the position the next token takes).
    var position: Int { get }
    /// Forgets the cache (and re-reads the model's scale vectors).
    func reset()
    /// Appends `token` at `position` and returns the logits for the next token, [vocab].
    func step(_ token: Int32) -> UnsafeMutablePointer<Float>
}

public func makeDecoder(for model: LanguageModel) -> TokenDecoder {
    if let m = model as? NGPTModel { return NGPTDecoder(m) }
    if let m = model as? GPTModel { return GPTDecoder(m) }
    preconditionFailure("no decoder for \(type(of: model))")
}

/// Buffers shared by both decoders: the cache and one token's activations.
class DecoderState {
    let config: ModelConfig
    let arena = Arena()
    let kCache: [UnsafeMutablePointer<Float>], vCache: [UnsafeMutablePointer<Float>]   // per layer [T, d]
    let x, a, q, k, v, y, o, t1: UnsafeMutablePointer<Float>   // [d]
    let u, g: UnsafeMutablePointer<Float>                      // [F]
    let scores: UnsafeMutablePointer<Float>                    // [H, T]
    let logits: UnsafeMutablePointer<Float>                    // [V]
    let inv: UnsafeMutablePointer<Float>                       // per-head inverse norms [H]
    var position = 0

    init(_ c: ModelConfig) {
        config = c
        let d = c.dim
        kCache = (0..<c.layers).map { [arena] _ in arena.floats(c.context * d) }
        vCache = (0..<c.layers).map { [arena] _ in arena.floats(c.context * d) }
        x = arena.floats(d); a = arena.floats(d); q = arena.floats(d); k = arena.floats(d); v = arena.floats(d)
        y = arena.floats(d); o = arena.floats(d); t1 = arena.floats(d)
        u = arena.floats(c.mlpHidden); g = arena.floats(c.mlpHidden)
        scores = arena.floats(c.heads * c.context)
        logits = arena.floats(c.vocabSize)
        inv = arena.floats(c.heads)
    }

    /// y = softmax(scale · q̃·K̃ᵀ)·V over the cached positions 0...position, per head.
    func attend(layer l: Int, scale: Float) {
        let c = config
        Attention.decode(q: q, kCache: kCache[l], vCache: vCache[l], ld: c.dim, count: position + 1, heads: c.heads,
                         headDim: c.headDim, scale: scale, scores: scores, y: y)
    }
}

final class NGPTDecoder: TokenDecoder {
    let model: NGPTModel
    let s: DecoderState
    var config: ModelConfig { model.config }
    var position: Int { s.position }

    init(_ model: NGPTModel) {
        self.model = model
        s = DecoderState(model.config)
        reset()
    }

    func reset() {
        s.position = 0
        model.computeEffectiveScales()
    }

    func step(_ token: Int32) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.dim, f = c.mlpHidden, H = c.heads, dk = c.headDim, t = s.position
        precondition(t < c.context, "the KV cache is full; reset or slide the window")
        let p = model.params, e = model.effective
        Embedding.forward(table: p["tok_embeddings.weight"], ids: [token], count: 1, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let pre = "layers.\(l)."
            // attention: A = Norm(h); q, k, v = W·h; RoPE; per-head Norm × s_qk; cache k̃, v
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: 1, cols: d)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wq"], lda: d, s.x, s.q)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wk"], lda: d, s.x, s.k)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wv"], lda: d, s.x, s.vCache[l] + t * d)
            RoPE.rotate(s.q, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            RoPE.rotate(s.k, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            RowNorm.l2Forward(s.q, s.q, invNorm: nil, rows: H, cols: dk)
            RowNorm.l2Forward(s.k, s.k, invNorm: nil, rows: H, cols: dk)
            e.sqk[l].withUnsafeBufferPointer { sq in
                Columns.scale(s.q, by: sq.baseAddress.unsafelyUnwrapped, s.q, rows: 1, cols: d)
                Columns.scale(s.k, by: sq.baseAddress.unsafelyUnwrapped, s.kCache[l] + t * d, rows: 1, cols: d)
            }
            s.attend(layer: l, scale: Float(dk).squareRoot())
            // h_A = Norm(y·W_o); h ← Norm(A + α_A ⊙ (h_A − A))
            GEMM.gemv(transpose: true, rows: d, cols: d, p[pre + "attn.wo"], lda: d, s.y, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: 1, cols: d)
            e.alphaA[l].withUnsafeBufferPointer { Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: 1, cols: d) }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: 1, cols: d)
            // MLP with the folded scales: u = (diag(s_u)W_up)·h, ν = (diag(√d·s_ν)W_gate)·h
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: 1, cols: d)
            GEMM.gemv(transpose: false, rows: f, cols: d, model.upScaled[l], lda: d, s.x, s.u)
            GEMM.gemv(transpose: false, rows: f, cols: d, model.gateScaled[l], lda: d, s.x, s.g)
            SwiGLU.forward(u: s.u, gate: s.g, s.u, count: f)
            GEMM.gemv(transpose: true, rows: f, cols: d, p[pre + "mlp.w_down"], lda: d, s.u, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: 1, cols: d)
            e.alphaM[l].withUnsafeBufferPointer { Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: 1, cols: d) }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: 1, cols: d)
        }
        // z = (diag(s_z)E_out)·h
        GEMM.gemv(transpose: false, rows: c.vocabSize, cols: d, model.outputScaled, lda: d, s.x, s.logits)
        s.position += 1
        return s.logits
    }
}

final class GPTDecoder: TokenDecoder {
    let model: GPTModel
    let s: DecoderState
    var config: ModelConfig { model.config }
    var position: Int { s.position }

    init(_ model: GPTModel) {
        self.model = model
        s = DecoderState(model.config)
    }

    func reset() { s.position = 0 }

    func step(_ token: Int32) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.dim, f = c.mlpHidden, H = c.heads, dk = c.headDim, t = s.position
        precondition(t < c.context, "the KV cache is full; reset or slide the window")
        let p = model.params
        var rstd: Float = 0
        Embedding.forward(table: p["tok_embeddings.weight"], ids: [token], count: 1, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let pre = "layers.\(l)."
            RowNorm.rmsForward(s.x, gain: p[pre + "attn_norm.weight"], s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wq"], lda: d, s.a, s.q)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wk"], lda: d, s.a, s.kCache[l] + t * d)
            GEMM.gemv(transpose: false, rows: d, cols: d, p[pre + "attn.wv"], lda: d, s.a, s.vCache[l] + t * d)
            RoPE.rotate(s.q, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            RoPE.rotate(s.kCache[l] + t * d, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            s.attend(layer: l, scale: 1 / Float(dk).squareRoot())
            // h += y·W_o
            GEMM.gemv(transpose: true, rows: d, cols: d, p[pre + "attn.wo"], lda: d, s.y, beta: 1, s.x)
            RowNorm.rmsForward(s.x, gain: p[pre + "mlp_norm.weight"], s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
            GEMM.gemv(transpose: false, rows: f, cols: d, p[pre + "mlp.w_up"], lda: d, s.a, s.u)
            GEMM.gemv(transpose: false, rows: f, cols: d, p[pre + "mlp.w_gate"], lda: d, s.a, s.g)
            SwiGLU.forward(u: s.u, gate: s.g, s.u, count: f)
            GEMM.gemv(transpose: true, rows: f, cols: d, p[pre + "mlp.w_down"], lda: d, s.u, beta: 1, s.x)
        }
        RowNorm.rmsForward(s.x, gain: p["norm.weight"], s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
        GEMM.gemv(transpose: false, rows: c.vocabSize, cols: d, p["output.weight"], lda: d, s.a, s.logits)
        s.position += 1
        return s.logits
    }
}
