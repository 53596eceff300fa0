import Foundation
import Kernels

/// One GPT block's tensors (see `ModelTensors`).
public struct GPTBlock<P> {
    var attnNorm: P  // [d]
    var wq, wk, wv, wo: P  // [d, d]
    var mlpNorm: P  // [d]
    var wUp, wGate, wDown: P  // [F, d]

    func map<Q>(_ f: (P) -> Q) -> GPTBlock<Q> {
        .init(
            attnNorm: f(attnNorm), wq: f(wq), wk: f(wk), wv: f(wv), wo: f(wo), mlpNorm: f(mlpNorm), wUp: f(wUp),
            wGate: f(wGate), wDown: f(wDown))
    }
}

/// The GPT's tensors; `head` is the final RMSNorm's gain.
typealias GPTTensors<P> = ModelTensors<P, GPTBlock<P>>

extension ModelTensors where Block == GPTBlock<P> {
    var norm: P { head }
    func map<Q>(_ f: (P) -> Q) -> GPTTensors<Q> { map(f) { $0.map(f) } }
}

/// The baseline GPT (design §4.2): pre-norm RMSNorm with gains, RoPE, causal attention with 1/√d_k, SwiGLU,
/// residual additions, a final RMSNorm and an untied head.
public final class GPTModel: TransformerModel<GPTBlock<UnsafeMutablePointer<Float>>, GPTActivations>,
    LanguageModel
{
    public static let displayName = "GPT"
    /// AdamW with weight decay 0.1 on matrices and embeddings and a linear warmup over 5 % of the run (design §6).
    /// The default rate is the learning-rate study's fit (docs/lr-transfer/): 1.2e-3 at d 256 and 600 steps,
    /// × (256/d)^0.74 × (steps/600)^−0.05.
    public static let recipe = Recipe(
        learningRate: 1.2e-3, referenceDim: 256, widthExponent: 0.74, defaultHorizonExponent: -0.05, weightDecay: 0.1,
        warmupPercent: 5)
    public static let rmsEps: Float = 1e-6

    /// N(0, 0.02²) for matrices and embeddings, 0.02/√(2L) for W_o and W_down, gains 1.
    static func tensors(_ c: ModelConfig) -> (layout: ParameterLayout, offsets: GPTTensors<Int>) {
        var b = LayoutBuilder()
        let d = c.dim, f = c.mlpHidden, v = c.vocabSize
        let std = 0.02, outStd = 0.02 / Double(2 * c.layers).squareRoot()
        func matrix(_ name: String, _ rows: Int, _ std: Double, _ group: ParameterGroup = .matrix) -> Int {
            b.add(name, [rows, d], .normal(std: std), group: group, decay: true)
        }
        func gain(_ name: String) -> Int { b.add(name, [d], .constant(1)) }
        let tokEmbeddings = matrix("tok_embeddings.weight", v, std, .embedding)
        var blocks: [GPTBlock<Int>] = []
        for l in 0..<c.layers {
            let p = "layers.\(l)."
            let attnNorm = gain(p + "attn_norm.weight")
            let wq = matrix(p + "attn.wq", d, std), wk = matrix(p + "attn.wk", d, std),
                wv = matrix(p + "attn.wv", d, std)
            let wo = matrix(p + "attn.wo", d, outStd)
            let mlpNorm = gain(p + "mlp_norm.weight")
            let wUp = matrix(p + "mlp.w_up", f, std), wGate = matrix(p + "mlp.w_gate", f, std),
                wDown = matrix(p + "mlp.w_down", f, outStd)
            blocks.append(
                .init(
                    attnNorm: attnNorm, wq: wq, wk: wk, wv: wv, wo: wo, mlpNorm: mlpNorm, wUp: wUp, wGate: wGate,
                    wDown: wDown))
        }
        let norm = gain("norm.weight")
        let output = matrix("output.weight", v, std, .unembedding)
        return (b.layout, GPTTensors(tokEmbeddings: tokEmbeddings, blocks: blocks, head: norm, output: output))
    }

    public static func parameterLayout(_ config: ModelConfig) -> ParameterLayout { tensors(config).layout }

    public static func workingFloats(_ config: ModelConfig, batch: Int) -> Int {
        let counter = Arena(counting: true)
        _ = GPTActivations(config: config, batch: batch, arena: counter)
        return counter.count
    }

    public init(config: ModelConfig) {
        let (layout, offsets) = Self.tensors(config)
        super.init(config: config, layout: layout) { buffer in offsets.map { buffer.pointer + $0 } }
    }

    public func makeDecoder(precision: DecodePrecision) -> TokenDecoder { GPTDecoder(self, precision: precision) }
    public func makeBatchDecoder(precision: DecodePrecision, slots: Int, maxRows: Int) -> BatchDecoder {
        GPTDecoder(self, precision: precision, slots: slots, maxRows: maxRows)
    }

    public func trainingMetrics() -> [String: Metric] { [:] }

    public func learnedScales() -> LearnedScales? { nil }

    public var matrices: TransformerMatrices {
        TransformerMatrices(
            embeddingIn: w.tokEmbeddings, embeddingOut: w.output,
            blocks: w.blocks.map {
                .init(wq: $0.wq, wk: $0.wk, wv: $0.wv, wo: $0.wo, up: $0.wUp, gate: $0.wGate, down: $0.wDown)
            })
    }

    public func projectWeights() -> Float { 0 }

    /// z = RMSNorm_f(h_L)·E_outᵀ: dz·E_out goes to a.ga, then through the final norm (`finishHeadBackward`).
    override func head(_ a: GPTActivations) -> HeadOperands {
        HeadOperands(x: a.hf, weight: w.output, dx: a.ga, weightGrad: g.output, beta: 1)
    }

    override func finishHeadBackward(_ a: GPTActivations) {
        RowNorm.rmsBackward(
            a.ga, x: a.h[config.layers], gain: w.norm, rstd: a.rstdF, a.gh, dgain: g.norm, rows: a.n, cols: config.dim)
    }

    /// Embeddings, blocks and the final norm: everything before the output matrix (saving what backward reads).
    override func forwardBlocks(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int)
        -> GPTActivations
    {
        let a = activations.use(batch: batch) { GPTActivations(config: config, batch: batch) }
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        a.inputs.update(from: inputs, count: n)
        a.targets.update(from: targets, count: n)
        a.productPrecision = GEMM.precision
        let shape = AttentionShape(batch: batch, context: c.context, heads: H, headDim: dk)

        Embedding.forward(table: w.tokEmbeddings, ids: inputs, count: n, dim: d, vocab: V, a.h[0])
        for l in 0..<c.layers {
            let s = a.layers[l], h = a.h[l], wl = w.blocks[l]
            // a = RMSNorm₁(h); q, k, v = a·Wᵀ; RoPE(q, k)   [N, d]
            RowNorm.rmsForward(h, gain: wl.attnNorm, s.a1, rstd: s.rstd1, rows: n, cols: d, eps: Self.rmsEps)
            GEMM.xwT(s.a1, m: n, k: d, [(wl.wq, s.q, d), (wl.wk, s.k, d), (wl.wv, s.v, d)])
            RoPE.rotate(s.q, ld: d, rows: n, heads: H, context: c.context, table: rope)
            RoPE.rotate(s.k, ld: d, rows: n, heads: H, context: c.context, table: rope)
            Attention.forward(
                q: s.q, k: s.k, v: s.v, ld: d, y: s.y, ldy: d, probs: s.probs, shape: shape,
                scale: 1 / Float(dk).squareRoot())
            // h_mid = h + y·W_o
            GEMM.xw(s.y, wl.wo, s.hMid, m: n, k: d, n: d)
            Columns.add(s.hMid, h, s.hMid, count: n * d)
            // m = RMSNorm₂(h_mid); h_out = h_mid + ((m·W_upᵀ) ⊙ SiLU(m·W_gateᵀ))·W_down
            RowNorm.rmsForward(s.hMid, gain: wl.mlpNorm, s.a2, rstd: s.rstd2, rows: n, cols: d, eps: Self.rmsEps)
            GEMM.xwT(s.a2, m: n, k: d, [(wl.wUp, s.ur, f), (wl.wGate, s.vr, f)], ldc: a.ldF)
            SwiGLU.forward(u: s.ur, gate: s.vr, a.operand(s.x), count: n * a.ldF)
            GEMM.xw(a.operand(s.x), lda: a.ldF, wl.wDown, a.h[l + 1], m: n, k: f, n: d)
            Columns.add(a.h[l + 1], s.hMid, a.h[l + 1], count: n * d)
        }
        RowNorm.rmsForward(a.h[c.layers], gain: w.norm, a.hf, rstd: a.rstdF, rows: n, cols: d, eps: Self.rmsEps)
        return a
    }

    override func backwardBlocks(_ a: GPTActivations) {
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        let shape = AttentionShape(batch: a.batch, context: c.context, heads: H, headDim: dk)
        var gh = a.gh, ghNext = a.ghNext
        let gu = a.operand(a.gu), gnu = a.operand(a.gnu)
        let gq = GEMM.Operand(a.gq), gk = GEMM.Operand(a.gk), gv = GEMM.Operand(a.gv)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let s = a.layers[l], wl = w.blocks[l], gl = g.blocks[l]
            // MLP: gh = ∂L/∂h_out = ∂L/∂(x·W_down) and the residual part of ∂L/∂h_mid
            GEMM.xwT(gh, wl.wDown, a.gx, m: n, k: d, n: f, ldc: a.ldF)
            GEMM.xTy(a.operand(s.x), lda: a.ldF, gh, gl.wDown, m: n, k: f, n: d, beta: 1)
            SwiGLU.backward(a.gx, u: s.ur, gate: s.vr, du: gu, dgate: gnu, count: n * a.ldF)
            GEMM.xTy([(gu, gl.wUp, f), (gnu, gl.wGate, f)], s.a2, m: n, n: d, beta: 1, lda: a.ldF)
            GEMM.xw([(gu, wl.wUp, f), (gnu, wl.wGate, f)], a.ga, m: n, n: d, lda: a.ldF)
            ghNext.update(from: gh, count: n * d)
            RowNorm.rmsBackward(
                a.ga, x: s.hMid, gain: wl.mlpNorm, rstd: s.rstd2, ghNext,
                dgain: gl.mlpNorm, rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)
            // attention: gh = ∂L/∂h_mid
            GEMM.xwT(gh, wl.wo, a.gy, m: n, k: d, n: d)
            GEMM.xTy(s.y, gh, gl.wo, m: n, k: d, n: d, beta: 1)
            Attention.backward(
                dy: a.gy, ldy: d, q: s.q, k: s.k, v: s.v, ld: d, probs: s.probs, dq: a.gq, dk: a.gk,
                dv: a.gv, ldg: d, scratch: a.attnScratch, shape: shape, scale: 1 / Float(dk).squareRoot())
            RoPE.rotate(a.gq, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            RoPE.rotate(a.gk, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            GEMM.xTy([(gq, gl.wq, d), (gk, gl.wk, d), (gv, gl.wv, d)], s.a1, m: n, n: d, beta: 1)
            GEMM.xw([(gq, wl.wq, d), (gk, wl.wk, d), (gv, wl.wv, d)], a.ga, m: n, n: d)
            ghNext.update(from: gh, count: n * d)
            RowNorm.rmsBackward(
                a.ga, x: a.h[l], gain: wl.attnNorm, rstd: s.rstd1, ghNext,
                dgain: gl.attnNorm, rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)
        }
        Embedding.backward(gh, ids: a.inputs, count: n, dim: d, vocab: V, dtable: g.tokEmbeddings)
    }
}

/// The GPT's saved activations for one (batch, context); allocated once and reused.
public final class GPTActivations: StreamActivations {
    let layers: [Layer]
    let hf: UnsafeMutablePointer<Float>, rstdF: UnsafeMutablePointer<Float>  // final norm: [n, d], [n]
    let ga: UnsafeMutablePointer<Float>, gy: UnsafeMutablePointer<Float>  // backward scratch, [n, d]

    struct Layer {
        var a1, rstd1, q, k, v, probs, y, hMid, a2, rstd2, ur, vr, x: UnsafeMutablePointer<Float>
    }

    override init(config c: ModelConfig, batch: Int, arena A: Arena = Arena()) {
        let n = batch * c.context, d = c.dim, f = Self.mlpStride(c)
        let probs = AttentionShape(batch: batch, context: c.context, heads: c.heads, headDim: c.headDim).probsCount
        layers = (0..<c.layers).map { _ in
            Layer(
                a1: A.floats(n * d), rstd1: A.floats(n), q: A.floats(n * d), k: A.floats(n * d),
                v: A.floats(n * d), probs: A.floats(probs), y: A.floats(n * d), hMid: A.floats(n * d),
                a2: A.floats(n * d), rstd2: A.floats(n), ur: A.floats(n * f), vr: A.floats(n * f),
                x: A.floats(n * f))
        }
        hf = A.floats(n * d); rstdF = A.floats(n)
        ga = A.floats(n * d); gy = A.floats(n * d)
        super.init(config: c, batch: batch, arena: A)
    }
}
