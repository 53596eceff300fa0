import Foundation
import Kernels

/// One of nGPT's learnable scale vectors (design §4.1, §4.5): stored raw, starting at `scale`, and used as
/// raw · init/scale, so that it starts at `initial` and Adam moves it `1/scale` times slower than a raw value.
public struct ScaleVector: Sendable {
    public let initial: Float, scale: Float
    /// raw → effective.
    public var factor: Float { initial / scale }

    /// α_A, α_M: init 0.05, scale 1/√d (paper); init 0.05·L_base/L, scale 0.03 (νGPT).
    public static func alpha(_ c: ModelConfig) -> ScaleVector {
        c.parameterization == .nu
            ? ScaleVector(initial: 0.05 * Float(NuGPT.baseLayers) / Float(c.layers), scale: NuGPT.scale)
            : ScaleVector(initial: 0.05, scale: 1 / Float(c.dim).squareRoot())
    }

    /// s_qk: init 1, scale 1/√d (paper) or 0.03 (νGPT).
    public static func qk(_ c: ModelConfig) -> ScaleVector {
        ScaleVector(initial: 1, scale: c.parameterization == .nu ? NuGPT.scale : 1 / Float(c.dim).squareRoot())
    }

    /// s_z: init 1, scale 1/√d (paper); init √(d/d_base), scale 0.03 (νGPT).
    public static func z(_ c: ModelConfig) -> ScaleVector {
        c.parameterization == .nu
            ? ScaleVector(initial: (Float(c.dim) / Float(NuGPT.baseDim)).squareRoot(), scale: NuGPT.scale)
            : ScaleVector(initial: 1, scale: 1 / Float(c.dim).squareRoot())
    }
}

/// νGPT's base sizes and constants (design §4.5): the sizes its learning rates are given at.
public enum NuGPT {
    public static let baseDim = 256, baseLayers = 4, baseSteps = 600
    static let scale: Float = 0.03
}

/// One nGPT block's tensors (see `ModelTensors`).
public struct NGPTBlock<P> {
    var wq, wk, wv, wo: P  // [d, d]
    var sQK, alphaAttn: P  // [d]
    var wUp, wGate, wDown: P  // [F, d]
    var sU, sV: P  // [F]
    var alphaMLP: P  // [d]

    func map<Q>(_ f: (P) -> Q) -> NGPTBlock<Q> {
        .init(
            wq: f(wq), wk: f(wk), wv: f(wv), wo: f(wo), sQK: f(sQK), alphaAttn: f(alphaAttn), wUp: f(wUp),
            wGate: f(wGate), wDown: f(wDown), sU: f(sU), sV: f(sV), alphaMLP: f(alphaMLP))
    }
}

/// nGPT's tensors; `head` is the logit scale s_z.
typealias NGPTTensors<P> = ModelTensors<P, NGPTBlock<P>>

extension ModelTensors where Block == NGPTBlock<P> {
    var sZ: P { head }
    func map<Q>(_ f: (P) -> Q) -> NGPTTensors<Q> { map(f) { $0.map(f) } }
}

/// The normalized Transformer (design §4.1): every hidden state, embedding and matrix row on the unit sphere,
/// each block a learned LERP step towards its normalised output followed by a retraction.
public final class NGPTModel: TransformerModel<NGPTBlock<UnsafeMutablePointer<Float>>, NGPTActivations>,
    LanguageModel
{
    public static let displayName = "nGPT"
    /// Adam without weight decay or warmup (design §6); every matrix row renormalised after each step. The paper's
    /// parameterization; its default rate is the learning-rate study's fit (docs/lr-transfer/): 9e-3 at d 256 and
    /// 600 steps, × (256/d)^0.57 × (steps/600)^−0.31.
    public static let recipe = Recipe(
        learningRate: 9e-3, referenceDim: 256, widthExponent: 0.57, defaultHorizonExponent: -0.31, weightDecay: 0,
        warmupPercent: 0)
    /// νGPT's (design §4.5): the rate is given at the base sizes (d 256, 4 layers, 600 steps) and follows the run
    /// length as (steps/600)^(−1/3); embeddings take (d/256)^(−1/2) of it, block matrices and the output
    /// embedding (d/256)^(−3/4), scale vectors all of it; the cosine ends at 10 % of the peak. The default base rate
    /// is the learning-rate study's fit (docs/lr-transfer/): 4.9e-3 at d 256 and 600 steps, × (256/d)^0.15 ×
    /// (steps/600)^0.07, the drift left over by νGPT's own rules.
    public static let nuRecipe = Recipe(
        learningRate: 4.9e-3, referenceDim: NuGPT.baseDim, widthExponent: 0.15, baseSteps: NuGPT.baseSteps,
        defaultHorizonExponent: 0.07, horizonExponent: -1.0 / 3,
        groupWidthExponents: [.embedding: -0.5, .matrix: -0.75, .unembedding: -0.75], weightDecay: 0,
        warmupPercent: 0, minLRFraction: 0.1)

    /// Every matrix and embedding is renormalised (its initial scale is irrelevant once rows are projected onto
    /// the sphere): N(0, 1/d), output projections /√(2L). Scale vectors start at their raw init (design §4.1).
    static func tensors(_ c: ModelConfig) -> (layout: ParameterLayout, offsets: NGPTTensors<Int>) {
        var b = LayoutBuilder()
        let d = c.dim, f = c.mlpHidden, v = c.vocabSize
        let std = 1 / Double(d).squareRoot(), outStd = std / Double(2 * c.layers).squareRoot()
        let alpha = Initialization.constant(ScaleVector.alpha(c).scale)
        let qk = Initialization.constant(ScaleVector.qk(c).scale), z = Initialization.constant(ScaleVector.z(c).scale)
        func matrix(_ name: String, _ rows: Int, _ std: Double, _ group: ParameterGroup = .matrix) -> Int {
            b.add(name, [rows, d], .normal(std: std), group: group, renormalize: true)
        }
        let tokEmbeddings = matrix("tok_embeddings.weight", v, std, .embedding)
        var blocks: [NGPTBlock<Int>] = []
        for l in 0..<c.layers {
            let p = "layers.\(l)."
            let wq = matrix(p + "attn.wq", d, std), wk = matrix(p + "attn.wk", d, std),
                wv = matrix(p + "attn.wv", d, std)
            let wo = matrix(p + "attn.wo", d, outStd)
            let sQK = b.add(p + "attn.s_qk", [d], qk), alphaAttn = b.add(p + "alpha_attn", [d], alpha)
            let wUp = matrix(p + "mlp.w_up", f, std), wGate = matrix(p + "mlp.w_gate", f, std),
                wDown = matrix(p + "mlp.w_down", f, outStd)
            let sU = b.add(p + "mlp.s_u", [f], .constant(1)), sV = b.add(p + "mlp.s_v", [f], .constant(1))
            let alphaMLP = b.add(p + "alpha_mlp", [d], alpha)
            blocks.append(
                .init(
                    wq: wq, wk: wk, wv: wv, wo: wo, sQK: sQK, alphaAttn: alphaAttn, wUp: wUp, wGate: wGate,
                    wDown: wDown, sU: sU, sV: sV, alphaMLP: alphaMLP))
        }
        let sZ = b.add("s_z", [v], z)
        let output = matrix("output.weight", v, std, .unembedding)
        return (b.layout, NGPTTensors(tokEmbeddings: tokEmbeddings, blocks: blocks, head: sZ, output: output))
    }

    public static func parameterLayout(_ config: ModelConfig) -> ParameterLayout { tensors(config).layout }

    public static func workingFloats(_ config: ModelConfig, batch: Int) -> Int {
        let counter = Arena(counting: true)
        _ = NGPTActivations(config: config, batch: batch, arena: counter)
        _ = ScaledWeights(config: config, arena: counter)
        return counter.count
    }

    /// |‖row‖ − 1| before the last projection (logged as row_norm_drift).
    private var lastProjectionDrift: Float = 0

    let scaled: ScaledWeights

    public init(config: ModelConfig) {
        let (layout, offsets) = Self.tensors(config)
        scaled = ScaledWeights(config: config)
        super.init(config: config, layout: layout) { buffer in offsets.map { buffer.pointer + $0 } }
    }

    @discardableResult
    public func projectWeights() -> Float {
        var worst: Float = 0
        for t in layout.tensors where t.renormalize {
            worst = max(worst, RowNorm.renormalizeRows(params.pointer + t.offset, rows: t.shape[0], cols: t.shape[1]))
        }
        lastProjectionDrift = worst
        return worst
    }

    public func learnedScales() -> LearnedScales? {
        computeEffectiveScales()
        return LearnedScales(
            alphaAttn: effective.alphaA, alphaMLP: effective.alphaM, sqk: effective.sqk, su: effective.su,
            sv: effective.sv, sz: effective.sz)
    }

    /// Per layer the means of the effective α_A, α_M, s_qk, s_u, s_ν; the mean and max of s_z; the largest
    /// deviation of a row norm from 1 now and before the last projection.
    public func trainingMetrics() -> [String: Metric] {
        computeEffectiveScales()
        func mean(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) } / Double(max(1, v.count)) }
        return [
            "alpha_attn": .perLayer(effective.alphaA.map(mean)), "alpha_mlp": .perLayer(effective.alphaM.map(mean)),
            "s_qk": .perLayer(effective.sqk.map(mean)), "s_u": .perLayer(effective.su.map(mean)),
            "s_v": .perLayer(effective.sv.map(mean)), "s_z_mean": .value(mean(effective.sz)),
            "s_z_max": .value(Double(effective.sz.max() ?? 0)),
            "max_row_norm_dev": .value(Double(maxRowNormDeviation())),
            "row_norm_drift": .value(Double(lastProjectionDrift)),
        ]
    }

    public var matrices: TransformerMatrices {
        TransformerMatrices(
            embeddingIn: w.tokEmbeddings, embeddingOut: w.output,
            blocks: w.blocks.map {
                .init(wq: $0.wq, wk: $0.wk, wv: $0.wv, wo: $0.wo, up: $0.wUp, gate: $0.wGate, down: $0.wDown)
            })
    }

    public func makeDecoder(precision: DecodePrecision) -> TokenDecoder { NGPTDecoder(self, precision: precision) }
    public func makeBatchDecoder(precision: DecodePrecision, slots: Int, maxRows: Int) -> BatchDecoder {
        NGPTDecoder(self, precision: precision, slots: slots, maxRows: maxRows)
    }

    /// The largest |‖row‖ − 1| over every renormalised tensor (≈1e-7 right after `projectWeights`).
    public func maxRowNormDeviation() -> Float {
        layout.tensors.filter(\.renormalize).map {
            RowNorm.maxRowNormDeviation(params.pointer + $0.offset, rows: $0.shape[0], cols: $0.shape[1])
        }.max() ?? 0
    }

    /// Effective scale vectors, recomputed from the raw parameters at each forward.
    var effective: (alphaA: [[Float]], alphaM: [[Float]], sqk: [[Float]], su: [[Float]], sv: [[Float]], sz: [Float]) = (
        [], [], [], [], [], []
    )

    func computeEffectiveScales() {
        let d = config.dim, L = config.layers, f = config.mlpHidden
        let ca = ScaleVector.alpha(config).factor, cqk = ScaleVector.qk(config).factor
        let cz = ScaleVector.z(config).factor
        func vec(_ p: UnsafePointer<Float>, _ count: Int, _ map: (Float) -> Float) -> [Float] {
            (0..<count).map { map(p[$0]) }
        }
        effective.alphaA = w.blocks.map { vec($0.alphaAttn, d) { abs($0 * ca) } }
        effective.alphaM = w.blocks.map { vec($0.alphaMLP, d) { abs($0 * ca) } }
        effective.sqk = w.blocks.map { vec($0.sQK, d) { $0 * cqk } }
        effective.su = w.blocks.map { vec($0.sU, f) { $0 } }
        effective.sv = w.blocks.map { vec($0.sV, f) { $0 } }
        effective.sz = vec(w.sZ, config.vocabSize) { $0 * cz }
        func fold(
            _ weight: UnsafePointer<Float>, _ s: [Float], factor: Float, into out: UnsafeMutablePointer<Float>,
            rows: Int
        ) {
            s.withUnsafeBufferPointer {
                Columns.scaleRows(
                    weight, by: $0.baseAddress.unsafelyUnwrapped, factor: factor, out, rows: rows, cols: d)
            }
        }
        fold(w.output, effective.sz, factor: 1, into: scaled.output, rows: config.vocabSize)
        for l in 0..<L {
            fold(w.blocks[l].wUp, effective.su[l], factor: 1, into: scaled.up[l], rows: f)
            fold(w.blocks[l].wGate, effective.sv[l], factor: Float(d).squareRoot(), into: scaled.gate[l], rows: f)
        }
    }

    /// z = s_z ⊙ (h_L·E_outᵀ) = h_L·(diag(s_z)E_out)ᵀ (no final norm). G = dzᵀ·h_L is the gradient of
    /// E_s = diag(s_z)·E_out [V, d]: dh_L = dz·E_s goes to a.gh, and `finishHeadBackward` unfolds G:
    /// dE_out[v] += s_z[v]·G[v],  ds_z,raw[v] += √d·⟨G[v], E_out[v]⟩.
    override func head(_ a: NGPTActivations) -> HeadOperands {
        HeadOperands(x: a.h[config.layers], weight: scaled.output, dx: a.gh, weightGrad: scaled.gradOut, beta: 0)
    }

    override func finishHeadBackward(_ a: NGPTActivations) {
        unfoldScaleGradient(
            scaled.gradOut, weight: w.output, weightGrad: g.output, scale: effective.sz, factor: 1, scaleGrad: g.sZ,
            rawFactor: ScaleVector.z(config).factor, rows: config.vocabSize)
    }

    /// Embeddings and blocks (the effective scales folded first): everything before the head.
    override func forwardBlocks(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int)
        -> NGPTActivations
    {
        let a = activations.use(batch: batch) { NGPTActivations(config: config, batch: batch) }
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        a.inputs.update(from: inputs, count: n)
        a.targets.update(from: targets, count: n)
        a.productPrecision = GEMM.precision
        computeEffectiveScales()
        let shape = AttentionShape(batch: batch, context: c.context, heads: H, headDim: dk)

        // h_0 = E_in[token]  [N, d] (unit rows already; no √d, no positions)
        Embedding.forward(table: w.tokEmbeddings, ids: inputs, count: n, dim: d, vocab: V, a.h[0])
        for l in 0..<c.layers {
            let s = a.layers[l], h = a.h[l], wl = w.blocks[l]
            // --- attention sub-block ---
            // A = Norm(h) [N, d] (equal to h in value; its Jacobian matters, design §4.1); after the first block,
            // the previous block's fused update has written it
            if l == 0 { RowNorm.l2Forward(h, s.a1, invNorm: s.invA1, rows: n, cols: d) }
            // q, k, v = h·Wᵀ [N, d]; RoPE on q, k; per-head Norm over d_k; × s_qk
            GEMM.xwT(h, m: n, k: d, [(wl.wq, s.q, d), (wl.wk, s.k, d), (wl.wv, s.v, d)])
            effective.sqk[l].withUnsafeBufferPointer { sq in
                let sq = sq.baseAddress.unsafelyUnwrapped
                QKNorm.forward(
                    s.q, hat: s.qhat, invNorm: s.invQ, scale: sq, scaled: s.qs, rows: n, heads: H, context: c.context,
                    table: rope)
                QKNorm.forward(
                    s.k, hat: s.khat, invNorm: s.invK, scale: sq, scaled: s.ks, rows: n, heads: H, context: c.context,
                    table: rope)
            }
            // y = softmax(√d_k · q̃k̃ᵀ + mask)·v   [N, d]
            Attention.forward(
                q: s.qs, k: s.ks, v: s.v, ld: d, y: s.y, ldy: d, probs: s.probs, shape: shape,
                scale: Float(dk).squareRoot())
            // h_A = Norm(y·W_o)   [N, d]  (h_att is staged in hA, normalised in place);
            // h ← Norm(A + α_A ⊙ (h_A − A)) into hMid; the MLP's A = Norm(h) into a2   (one fused pass)
            GEMM.xw(s.y, wl.wo, s.hA, m: n, k: d, n: d)
            effective.alphaA[l].withUnsafeBufferPointer { al in
                RowNorm.residualUpdate(
                    a: s.a1, b: s.hA, invB: s.invHA, alpha: al.baseAddress.unsafelyUnwrapped, out: s.hMid,
                    invOut: s.invRho1, next: s.a2, invNext: s.invA2, rows: n, cols: d)
            }

            // --- MLP sub-block ---
            // u = s_u ⊙ (h·W_upᵀ) = h·(diag(s_u)W_up)ᵀ, ν = √d·s_ν ⊙ (h·W_gateᵀ)   [N, F]
            GEMM.xwT(s.hMid, m: n, k: d, [(scaled.up[l], s.u, f), (scaled.gate[l], s.nu, f)], ldc: a.ldF)
            SwiGLU.forward(u: s.u, gate: s.nu, a.operand(s.x), count: n * a.ldF)  // rows ldF apart, as a whole
            // h_M = Norm(x·W_down)   [N, d];  h_{l+1} = Norm(A + α_M ⊙ (h_M − A)), and the next block's
            // A = Norm(h_{l+1})   (one fused pass)
            GEMM.xw(a.operand(s.x), lda: a.ldF, wl.wDown, s.hM, m: n, k: f, n: d)
            let nextA = l + 1 < c.layers ? a.layers[l + 1] : nil
            effective.alphaM[l].withUnsafeBufferPointer { al in
                RowNorm.residualUpdate(
                    a: s.a2, b: s.hM, invB: s.invHM, alpha: al.baseAddress.unsafelyUnwrapped, out: a.h[l + 1],
                    invOut: s.invRho2, next: nextA?.a1, invNext: nextA?.invA1, rows: n, cols: d)
            }
        }
        return a
    }

    override func backwardBlocks(_ a: NGPTActivations) {
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        let shape = AttentionShape(batch: a.batch, context: c.context, heads: H, headDim: dk)
        let sqrtD = Float(d).squareRoot(), cqk = ScaleVector.qk(c).factor

        var gh = a.gh, ghNext = a.ghNext
        // ∂L/∂h through the previous sub-block's input normalisation, added by the next residual backward as it
        // reads gh (one pass over gh fewer; the same bits)
        var pending: RowNorm.PendingL2Backward? = nil
        let gu = a.operand(a.gu), gnu = a.operand(a.gnu)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let s = a.layers[l], wl = w.blocks[l], gl = g.blocks[l]
            // --- MLP sub-block (gh + pending = ∂L/∂h_{l+1}) ---
            residualBackward(
                gh, plus: pending, out: a.h[l + 1], invRho: s.invRho2, a: s.a2, b: s.hM, invB: s.invHM,
                alpha: effective.alphaM[l],
                alphaGrad: gl.alphaMLP, alphaRaw: wl.alphaMLP, acts: a)  // a.gB = d h_mlp
            GEMM.xwT(a.gB, wl.wDown, a.gx, m: n, k: d, n: f, ldc: a.ldF)  // dx = dh_mlp·W_downᵀ
            GEMM.xTy(a.operand(s.x), lda: a.ldF, a.gB, gl.wDown, m: n, k: f, n: d, beta: 1)
            SwiGLU.backward(a.gx, u: s.u, gate: s.nu, du: gu, dgate: gnu, count: n * a.ldF)
            // through the folded weights diag(s_u)W_up and diag(√d·s_ν)W_gate (see the head above)
            GEMM.xTy([(gu, scaled.gradUp, f), (gnu, scaled.gradGate, f)], s.hMid, m: n, n: d, lda: a.ldF)
            unfoldScaleGradient(
                scaled.gradUp, weight: wl.wUp, weightGrad: gl.wUp, scale: effective.su[l], factor: 1,
                scaleGrad: gl.sU, rawFactor: 1, rows: f)
            unfoldScaleGradient(
                scaled.gradGate, weight: wl.wGate, weightGrad: gl.wGate, scale: effective.sv[l], factor: sqrtD,
                scaleGrad: gl.sV, rawFactor: sqrtD, rows: f)
            // ∂L/∂h_mid = du·(diag(s_u)W_up) + dν·(diag(√d·s_ν)W_gate)   (into ghNext) + Norm'(A)ᵀ dA   (pending)
            GEMM.xw([(gu, scaled.up[l], f), (gnu, scaled.gate[l], f)], ghNext, m: n, n: d, lda: a.ldF)
            pending = .init(dy: a.gA, y: s.a2, invNorm: s.invA2)
            swap(&gh, &ghNext)

            // --- attention sub-block (gh + pending = ∂L/∂h_mid) ---
            residualBackward(
                gh, plus: pending, out: s.hMid, invRho: s.invRho1, a: s.a1, b: s.hA, invB: s.invHA,
                alpha: effective.alphaA[l],
                alphaGrad: gl.alphaAttn, alphaRaw: wl.alphaAttn, acts: a)  // a.gB = d h_att
            GEMM.xwT(a.gB, wl.wo, a.gd1, m: n, k: d, n: d)  // dy = dh_att·W_oᵀ
            GEMM.xTy(s.y, a.gB, gl.wo, m: n, k: d, n: d, beta: 1)
            Attention.backward(
                dy: a.gd1, ldy: d, q: s.qs, k: s.ks, v: s.v, ld: d, probs: s.probs, dq: a.gq, dk: a.gk,
                dv: a.gv, ldg: d, scratch: a.attnScratch, shape: shape, scale: Float(dk).squareRoot())
            // back through × s_qk, the heads' Norm and RoPE; s_qk feeds both q and k:
            // g_raw += c · Σ_t (dq̃ ⊙ q̂ + dk̃ ⊙ k̂)
            effective.sqk[l].withUnsafeBufferPointer { sq in
                let sq = sq.baseAddress.unsafelyUnwrapped
                QKNorm.backward(
                    a.gq, hat: s.qhat, invNorm: s.invQ, scale: sq, scaleGrad: gl.sQK, factor: cqk, rows: n, heads: H,
                    context: c.context, table: rope)
                QKNorm.backward(
                    a.gk, hat: s.khat, invNorm: s.invK, scale: sq, scaleGrad: gl.sQK, factor: cqk, rows: n, heads: H,
                    context: c.context, table: rope)
            }
            let h = a.h[l]
            let gq = GEMM.Operand(a.gq), gk = GEMM.Operand(a.gk), gv = GEMM.Operand(a.gv)
            GEMM.xTy([(gq, gl.wq, d), (gk, gl.wk, d), (gv, gl.wv, d)], h, m: n, n: d, beta: 1)
            GEMM.xw([(gq, wl.wq, d), (gk, wl.wk, d), (gv, wl.wv, d)], ghNext, m: n, n: d)
            pending = .init(dy: a.gA, y: s.a1, invNorm: s.invA1)
            swap(&gh, &ghNext)
        }
        if let p = pending {  // the first block's input normalisation, for the embeddings' gradient
            RowNorm.l2Backward(p.dy, y: p.y, invNorm: p.invNorm, gh, rows: n, cols: d, accumulate: true)
        }
        Embedding.backward(gh, ids: a.inputs, count: n, dim: d, vocab: V, dtable: g.tokEmbeddings)
    }

    /// Backward of one residual update h' = Norm(A + α ⊙ (Norm(o) − A)) (design §4.1), given ∂L/∂h' = g plus the
    /// pending normalisation backward: leaves ∂L/∂A in acts.gA and ∂L/∂o (the block's raw output) in acts.gB, and
    /// adds α's gradient.
    private func residualBackward(
        _ g: UnsafePointer<Float>, plus pending: RowNorm.PendingL2Backward?, out: UnsafePointer<Float>,
        invRho: UnsafePointer<Float>,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, invB: UnsafePointer<Float>, alpha: [Float],
        alphaGrad: UnsafeMutablePointer<Float>, alphaRaw: UnsafePointer<Float>, acts: NGPTActivations
    ) {
        let n = acts.n, d = config.dim
        acts.gAlpha.update(repeating: 0, count: d)
        alpha.withUnsafeBufferPointer { al in
            RowNorm.residualUpdateBackward(
                g, plus: pending, out: out, invOut: invRho, a: a, b: b, invB: invB,
                alpha: al.baseAddress.unsafelyUnwrapped,
                ga: acts.gA, gb: acts.gB, galpha: acts.gAlpha, rows: n, cols: d)
        }
        accumulateAlphaGradient(
            alphaGrad, raw: alphaRaw, effectiveGrad: acts.gAlpha,
            factor: ScaleVector.alpha(config).factor)
    }

    /// Given G, the gradient of diag(factor·s)·W: dW[r] += factor·s[r]·G[r] and ds_raw[r] += rawFactor·⟨G[r], W[r]⟩
    /// (s = raw·c for s_z, so rawFactor carries c as well as any constant factor).
    private func unfoldScaleGradient(
        _ gScaled: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        weightGrad: UnsafeMutablePointer<Float>, scale: [Float], factor: Float,
        scaleGrad: UnsafeMutablePointer<Float>, rawFactor: Float, rows: Int
    ) {
        let d = config.dim
        scale.withUnsafeBufferPointer {
            Columns.scaleRows(
                gScaled, by: $0.baseAddress.unsafelyUnwrapped, factor: factor, weightGrad, rows: rows, cols: d,
                accumulate: true)
        }
        Columns.rowDotAccumulate(gScaled, weight, factor: rawFactor, into: scaleGrad, rows: rows, cols: d)
    }

    /// α_eff = |c·raw|: g_raw += c · sign(c·raw) · g_eff (sign(0) = 0, as torch's abs).
    private func accumulateAlphaGradient(
        _ g: UnsafeMutablePointer<Float>, raw: UnsafePointer<Float>,
        effectiveGrad: UnsafePointer<Float>, factor c: Float
    ) {
        for j in 0..<config.dim {
            let x = c * raw[j]
            let sign: Float = x > 0 ? 1 : (x < 0 ? -1 : 0)
            g[j] += c * sign * effectiveGrad[j]
        }
    }
}
