import Foundation
import Kernels

/// Single-token inference with a KV cache: a forward pass separate from the training path, whose cost per token
/// grows linearly with the number of cached positions (one matrix–vector product per weight, plus attention over
/// the cache). Logits equal the full forward's at every position.
public protocol TokenDecoder: AnyObject {
    var config: ModelConfig { get }
    /// Tokens in the cache (the position the next token takes).
    var position: Int { get }
    /// Forgets the cache.
    func reset()
    /// Re-reads the model's weights (call after changing them; the decoder prepares its own copies).
    func refreshWeights()
    /// Appends `token` at `position` and returns the logits for the next token, [vocab].
    func step(_ token: Int32) -> UnsafeMutablePointer<Float>
}

/// Weight precision of the single-token path.
public enum DecodePrecision: String, Sendable, CaseIterable {
    /// The model's Float weights: logits equal the training forward's (to rounding).
    case fp32
    /// bfloat16 copies of every matrix: half the bytes streamed per token, at ~3 significant digits per weight.
    /// With AVX512_BF16 the vector entering each product is rounded to bfloat16 too (one vdpbf16ps per 32
    /// weights, like a bf16 training GEMM); sums, attention, normalisations and the KV cache stay Float.
    case bf16
}

/// A weight matrix as the decoder reads it: the Float original, or a bfloat16 copy. The copy is stored as the
/// product uses it, [outputs, inputs] (transposed when the decoder multiplies by Aᵀ), so every bf16 product is a
/// dot product per row: one vdpbf16ps per 32 weights (`GEMM.gemvBF16`).
struct DecodeMatrix {
    let f32: UnsafePointer<Float>
    let b16: UnsafeMutablePointer<UInt16>?
    let rows: Int, cols: Int
    let scratch: UnsafeMutablePointer<Float>

    /// y = W·x (or Wᵀ·x), + beta·y.
    @inline(__always) func apply(
        transpose: Bool = false, _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>
    ) {
        if let b = b16 {
            let (outputs, inputs) = transpose ? (cols, rows) : (rows, cols)
            GEMM.gemvBF16(rows: outputs, cols: inputs, b, x, beta: beta, y, scratch: scratch)
        } else {
            GEMM.gemv(transpose: transpose, rows: rows, cols: cols, f32, lda: cols, x, beta: beta, y)
        }
    }
}

/// Owns the bfloat16 copies.
final class DecodeWeights {
    let precision: DecodePrecision
    private var buffers: [UnsafeMutablePointer<UInt16>] = []
    private let scratch: UnsafeMutablePointer<Float>
    init(_ precision: DecodePrecision, maxDimension: Int) {
        self.precision = precision
        scratch = .allocate(capacity: 2 * maxDimension + 64)
    }

    /// `p` is [rows, cols]; `transposed` when the decoder multiplies by its transpose (W_o, W_down).
    func matrix(_ p: UnsafePointer<Float>, rows: Int, cols: Int, transposed: Bool = false) -> DecodeMatrix {
        guard precision == .bf16 else {
            return DecodeMatrix(f32: p, b16: nil, rows: rows, cols: cols, scratch: scratch)
        }
        let b = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * cols)
        if transposed {
            for r in 0..<rows { for c in 0..<cols { b[c * rows + r] = BFloat16.round(p[r * cols + c]) } }
        } else {
            BFloat16.convert(p, b, count: rows * cols)
        }
        buffers.append(b)
        return DecodeMatrix(f32: p, b16: b, rows: rows, cols: cols, scratch: scratch)
    }

    func clear() { buffers.forEach { $0.deallocate() }; buffers = [] }
    deinit { clear(); scratch.deallocate() }
}

/// Buffers shared by both decoders: the cache and one token's activations.
class DecoderState {
    let config: ModelConfig
    let arena = Arena()
    let kCache: [UnsafeMutablePointer<Float>], vCache: [UnsafeMutablePointer<Float>]  // per layer [T, d]
    let x, a, q, k, v, y, o: UnsafeMutablePointer<Float>  // [d]
    let u, g: UnsafeMutablePointer<Float>  // [F]
    let scores: UnsafeMutablePointer<Float>  // [H, T]
    let logits: UnsafeMutablePointer<Float>  // [V]
    var position = 0

    init(_ c: ModelConfig) {
        config = c
        let d = c.dim
        kCache = (0..<c.layers).map { [arena] _ in arena.floats(c.context * d) }
        vCache = (0..<c.layers).map { [arena] _ in arena.floats(c.context * d) }
        x = arena.floats(d); a = arena.floats(d); q = arena.floats(d); k = arena.floats(d); v = arena.floats(d)
        y = arena.floats(d); o = arena.floats(d)
        u = arena.floats(c.mlpHidden); g = arena.floats(c.mlpHidden)
        scores = arena.floats(c.heads * c.context)
        logits = arena.floats(c.vocabSize)
    }

    /// y = softmax(scale · q̃·K̃ᵀ)·V over the cached positions 0...position, per head.
    func attend(layer l: Int, scale: Float) {
        let c = config
        Attention.decode(
            q: q, kCache: kCache[l], vCache: vCache[l], ld: c.dim, count: position + 1, heads: c.heads,
            headDim: c.headDim, scale: scale, scores: scores, y: y)
    }
}

/// A layer's matrices as the decoder reads them.
struct DecodeLayer {
    let wq, wk, wv, wo: DecodeMatrix  // [d, d]
    let up, gate, down: DecodeMatrix  // [F, d]
}

extension DecodeWeights {
    /// A layer's seven matrices (d and F from `c`); the up and gate matrices may be folded copies (nGPT).
    func layer(
        _ c: ModelConfig, wq: UnsafePointer<Float>, wk: UnsafePointer<Float>, wv: UnsafePointer<Float>,
        wo: UnsafePointer<Float>, up: UnsafePointer<Float>, gate: UnsafePointer<Float>, down: UnsafePointer<Float>
    ) -> DecodeLayer {
        let d = c.dim, f = c.mlpHidden
        return DecodeLayer(
            wq: matrix(wq, rows: d, cols: d), wk: matrix(wk, rows: d, cols: d), wv: matrix(wv, rows: d, cols: d),
            wo: matrix(wo, rows: d, cols: d, transposed: true), up: matrix(up, rows: f, cols: d),
            gate: matrix(gate, rows: f, cols: d), down: matrix(down, rows: f, cols: d, transposed: true))
    }
}

/// What both decoders hold: the model, the cache and activations, the (bfloat16) weight copies, per-layer matrices
/// and the output matrix. Each model's decoder adds `loadWeights` (which matrices it reads) and its `step`.
class MatrixDecoder<Model: LanguageModel> {
    let model: Model
    let s: DecoderState
    let weights: DecodeWeights
    var layers: [DecodeLayer] = []
    var output: DecodeMatrix?
    var config: ModelConfig { s.config }
    var position: Int { s.position }

    init(_ model: Model, precision: DecodePrecision) {
        self.model = model
        let c = model.config
        s = DecoderState(c)
        weights = DecodeWeights(precision, maxDimension: max(c.vocabSize, c.mlpHidden, c.dim))
        refreshWeights()
    }

    func reset() { s.position = 0 }

    /// Re-reads the model's weights (after an optimiser step) and empties the cache.
    func refreshWeights() {
        reset()
        weights.clear()
        loadWeights()
    }

    /// Sets `layers` and `output` from the model's current weights.
    func loadWeights() { preconditionFailure("each decoder loads its model's weights") }
}

final class NGPTDecoder: MatrixDecoder<NGPTModel>, TokenDecoder {
    override func loadWeights() {
        model.computeEffectiveScales()  // also refolds s_z, s_u, s_ν into the scaled weight copies
        let c = config
        layers = model.w.blocks.indices.map { l in
            let b = model.w.blocks[l]
            return weights.layer(
                c, wq: b.wq, wk: b.wk, wv: b.wv, wo: b.wo, up: model.scaled.up[l], gate: model.scaled.gate[l],
                down: b.wDown)
        }
        output = weights.matrix(model.scaled.output, rows: c.vocabSize, cols: c.dim)
    }

    func step(_ token: Int32) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.dim, f = c.mlpHidden, H = c.heads, dk = c.headDim, t = s.position
        precondition(t < c.context, "the KV cache is full; reset or slide the window")
        let e = model.effective
        Embedding.forward(table: model.w.tokEmbeddings, ids: [token], count: 1, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let w = layers[l]
            // attention: A = Norm(h); q, k, v = W·h; RoPE; per-head Norm × s_qk; cache k̃, v
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: 1, cols: d)
            w.wq.apply(s.x, s.q)
            w.wk.apply(s.x, s.k)
            w.wv.apply(s.x, s.vCache[l] + t * d)
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
            w.wo.apply(transpose: true, s.y, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: 1, cols: d)
            e.alphaA[l].withUnsafeBufferPointer {
                Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: 1, cols: d)
            }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: 1, cols: d)
            // MLP with the folded scales: u = (diag(s_u)W_up)·h, ν = (diag(√d·s_ν)W_gate)·h
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: 1, cols: d)
            w.up.apply(s.x, s.u)
            w.gate.apply(s.x, s.g)
            SwiGLU.forward(u: s.u, gate: s.g, s.u, count: f)
            w.down.apply(transpose: true, s.u, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: 1, cols: d)
            e.alphaM[l].withUnsafeBufferPointer {
                Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: 1, cols: d)
            }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: 1, cols: d)
        }
        // z = (diag(s_z)E_out)·h
        output?.apply(s.x, s.logits)
        s.position += 1
        return s.logits
    }
}

final class GPTDecoder: MatrixDecoder<GPTModel>, TokenDecoder {
    override func loadWeights() {
        let c = config
        layers = model.w.blocks.map { b in
            weights.layer(c, wq: b.wq, wk: b.wk, wv: b.wv, wo: b.wo, up: b.wUp, gate: b.wGate, down: b.wDown)
        }
        output = weights.matrix(model.w.output, rows: c.vocabSize, cols: c.dim)
    }

    func step(_ token: Int32) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.dim, f = c.mlpHidden, H = c.heads, dk = c.headDim, t = s.position
        precondition(t < c.context, "the KV cache is full; reset or slide the window")
        let p = model.w
        var rstd: Float = 0
        Embedding.forward(table: p.tokEmbeddings, ids: [token], count: 1, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let w = layers[l], gains = p.blocks[l]
            RowNorm.rmsForward(s.x, gain: gains.attnNorm, s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
            w.wq.apply(s.a, s.q)
            w.wk.apply(s.a, s.kCache[l] + t * d)
            w.wv.apply(s.a, s.vCache[l] + t * d)
            RoPE.rotate(s.q, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            RoPE.rotate(s.kCache[l] + t * d, ld: d, rows: 1, heads: H, context: 1, positionOffset: t, table: model.rope)
            s.attend(layer: l, scale: 1 / Float(dk).squareRoot())
            // h += y·W_o
            w.wo.apply(transpose: true, s.y, beta: 1, s.x)
            RowNorm.rmsForward(s.x, gain: gains.mlpNorm, s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
            w.up.apply(s.a, s.u)
            w.gate.apply(s.a, s.g)
            SwiGLU.forward(u: s.u, gate: s.g, s.u, count: f)
            w.down.apply(transpose: true, s.u, beta: 1, s.x)
        }
        RowNorm.rmsForward(s.x, gain: p.norm, s.a, rstd: &rstd, rows: 1, cols: d, eps: GPTModel.rmsEps)
        output?.apply(s.a, s.logits)
        s.position += 1
        return s.logits
    }
}
