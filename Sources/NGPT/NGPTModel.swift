import Foundation
import Kernels

/// The learnable scale vectors of nGPT (spec §1.2): stored raw, used as raw · (init / scale).
enum ScaleVector {
    /// α_A, α_M: init 0.05, scale 1/√d; used as |raw · 0.05·√d|.
    static func alphaFactor(_ d: Int) -> Float { 0.05 * Float(d).squareRoot() }
    /// s_qk and s_z: init 1, scale 1/√d.
    static func unitFactor(_ d: Int) -> Float { Float(d).squareRoot() }
    static func rawInit(_ d: Int) -> Float { 1 / Float(d).squareRoot() }
}

/// The normalized Transformer (spec §2.1): every hidden state, embedding and matrix row on the unit sphere,
/// each block a learned LERP step towards its normalised output followed by a retraction.
public final class NGPTModel: LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let params: FlatTensors
    public let grads: FlatTensors
    let rope: RoPETable

    /// Activations per batch size (training and evaluation share one; sampling uses batch 1), and the set the
    /// last forward wrote (what `backward` and `logits` read).
    private var activationSets: [Int: Activations] = [:]
    private var acts: Activations?

    /// Scale vectors that act on a matrix product's outputs are folded into copies of the weights at each
    /// forward (diag(s)·W is [rows, d]; scaling the [tokens, rows] product instead costs a pass over it):
    /// E_out·diag(s_z), W_up·diag(s_u), W_gate·diag(√d·s_ν). Their gradients come back through `scaledGrad`.
    private let weightArena = Arena()
    let outputScaled: UnsafeMutablePointer<Float>
    let upScaled: [UnsafeMutablePointer<Float>], gateScaled: [UnsafeMutablePointer<Float>]
    private let scaledGradOut: UnsafeMutablePointer<Float>, scaledGradMLP: UnsafeMutablePointer<Float>

    public init(config: ModelConfig) {
        self.config = config
        layout = ParameterLayout(config: config)
        params = FlatTensors(layout: layout)
        grads = FlatTensors(layout: layout)
        rope = RoPETable(context: config.context, headDim: config.headDim)
        let vd = config.vocabSize * config.dim, fd = config.mlpHidden * config.dim
        outputScaled = weightArena.floats(vd)
        upScaled = (0..<config.layers).map { [weightArena] _ in weightArena.floats(fd) }
        gateScaled = (0..<config.layers).map { [weightArena] _ in weightArena.floats(fd) }
        scaledGradOut = weightArena.floats(vd)
        scaledGradMLP = weightArena.floats(fd)
        initialize(seed: 0)
    }

    /// Matrices N(0, 1/d) (output projections /√(2L)); scale vectors at their raw init; then renormalised
    /// (the initial distribution is irrelevant once rows are projected onto the sphere).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let d = config.dim, std = 1 / Double(d).squareRoot(), outStd = std / Double(2 * config.layers).squareRoot()
        for t in layout.tensors {
            let p = params.pointer + t.offset
            switch t.name {
            case let n where n.hasSuffix("s_u") || n.hasSuffix("s_v"): p.update(repeating: 1, count: t.count)
            case let n where n.hasSuffix("s_qk") || n.hasPrefix("alpha") || n.contains(".alpha") || n == "s_z":
                p.update(repeating: ScaleVector.rawInit(d), count: t.count)
            case let n where n.hasSuffix("wo") || n.hasSuffix("w_down"): fillNormal(p, count: t.count, std: outStd, rng: &rng)
            default: fillNormal(p, count: t.count, std: std, rng: &rng)
            }
        }
        projectWeights()
    }

    @discardableResult
    public func projectWeights() -> Float {
        var worst: Float = 0
        for t in layout.tensors where t.renormalize {
            worst = max(worst, RowNorm.renormalizeRows(params.pointer + t.offset, rows: t.shape[0], cols: t.shape[1]))
        }
        return worst
    }

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

    /// Saved activations for one (batch, context); allocated once and reused.
    final class Activations {
        let arena = Arena()
        let batch: Int, n: Int
        var h: [UnsafeMutablePointer<Float>] = []       // [L+1] block outputs h_l, [N, d] (h_0 = embeddings)
        var layers: [Layer] = []
        let z: UnsafeMutablePointer<Float>   // [N, V] logits
        let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>
        // backward scratch
        let gh: UnsafeMutablePointer<Float>, ghNext: UnsafeMutablePointer<Float>, gA: UnsafeMutablePointer<Float>,
            gB: UnsafeMutablePointer<Float>, grho: UnsafeMutablePointer<Float>, gd1: UnsafeMutablePointer<Float>,
            gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>,
            gu: UnsafeMutablePointer<Float>, gnu: UnsafeMutablePointer<Float>, gx: UnsafeMutablePointer<Float>,
            gz: UnsafeMutablePointer<Float>, attnScratch: UnsafeMutablePointer<Float>, gAlpha: UnsafeMutablePointer<Float>

        struct Layer {
            // attention sub-block
            var a1, invA1, q, k, v, qhat, khat, invQ, invK, qs, ks, probs, y, hA, invHA, hMid, invRho1: UnsafeMutablePointer<Float>
            // MLP sub-block
            var a2, invA2, u, nu, x, hM, invHM, invRho2: UnsafeMutablePointer<Float>
        }

        init(config c: ModelConfig, batch: Int) {
            self.batch = batch
            n = batch * c.context
            let d = c.dim, f = c.mlpHidden, nh = n * c.heads
            let shape = AttentionShape(batch: batch, context: c.context, heads: c.heads, headDim: c.headDim)
            for _ in 0...c.layers { h.append(arena.floats(n * d)) }
            for _ in 0..<c.layers {
                let A = arena
                layers.append(Layer(
                    a1: A.floats(n * d), invA1: A.floats(n), q: A.floats(n * d), k: A.floats(n * d), v: A.floats(n * d),
                    qhat: A.floats(n * d), khat: A.floats(n * d), invQ: A.floats(nh), invK: A.floats(nh),
                    qs: A.floats(n * d), ks: A.floats(n * d), probs: A.floats(shape.probsCount), y: A.floats(n * d),
                    hA: A.floats(n * d), invHA: A.floats(n), hMid: A.floats(n * d), invRho1: A.floats(n),
                    a2: A.floats(n * d), invA2: A.floats(n), u: A.floats(n * f), nu: A.floats(n * f), x: A.floats(n * f), hM: A.floats(n * d), invHM: A.floats(n), invRho2: A.floats(n)))
            }
            z = arena.floats(n * c.vocabSize)
            inputs = .allocate(capacity: n)
            targets = .allocate(capacity: n)
            gh = arena.floats(n * d); ghNext = arena.floats(n * d); gA = arena.floats(n * d); gB = arena.floats(n * d)
            grho = arena.floats(n * d); gd1 = arena.floats(n * d)
            gq = arena.floats(n * d); gk = arena.floats(n * d); gv = arena.floats(n * d)
            gu = arena.floats(n * f); gnu = arena.floats(n * f); gx = arena.floats(n * f)
            gz = arena.floats(n * c.vocabSize)
            attnScratch = arena.floats(shape.backwardScratchCount)
            gAlpha = arena.floats(d)
        }

        deinit {
            inputs.deallocate()
            targets.deallocate()
        }
    }

    /// Means (and for s_z the max) of the effective scale vectors, per layer: what the trainer logs.
    public struct ScaleSummary: Sendable, Codable {
        public var alphaAttn: [Double], alphaMLP: [Double], sqk: [Double], su: [Double], sv: [Double]
        public var szMean: Double, szMax: Double
    }

    /// The effective (used) values of every scale vector: α_A, α_M, s_qk, s_u, s_ν per layer, and s_z.
    public struct EffectiveScales: Sendable {
        public var alphaAttn: [[Float]], alphaMLP: [[Float]], sqk: [[Float]], su: [[Float]], sv: [[Float]], sz: [Float]
    }

    public func effectiveScales() -> EffectiveScales {
        computeEffectiveScales()
        return EffectiveScales(alphaAttn: effective.alphaA, alphaMLP: effective.alphaM, sqk: effective.sqk, su: effective.su,
                               sv: effective.sv, sz: effective.sz)
    }

    public func scaleSummary() -> ScaleSummary {
        computeEffectiveScales()
        func mean(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) } / Double(max(1, v.count)) }
        return ScaleSummary(alphaAttn: effective.alphaA.map(mean), alphaMLP: effective.alphaM.map(mean), sqk: effective.sqk.map(mean),
                            su: effective.su.map(mean), sv: effective.sv.map(mean), szMean: mean(effective.sz),
                            szMax: Double(effective.sz.max() ?? 0))
    }

    /// The largest |‖row‖ − 1| over every renormalised tensor (≈1e-7 right after `projectWeights`).
    public func maxRowNormDeviation() -> Float {
        layout.tensors.filter(\.renormalize).map {
            RowNorm.maxRowNormDeviation(params.pointer + $0.offset, rows: $0.shape[0], cols: $0.shape[1])
        }.max() ?? 0
    }

    /// Effective scale vectors, recomputed from the raw parameters at each forward.
    var effective: (alphaA: [[Float]], alphaM: [[Float]], sqk: [[Float]], su: [[Float]], sv: [[Float]], sz: [Float]) = ([], [], [], [], [], [])

    func computeEffectiveScales() {
        let d = config.dim, L = config.layers, f = config.mlpHidden
        let ca = ScaleVector.alphaFactor(d), cu = ScaleVector.unitFactor(d)
        func vec(_ name: String, _ count: Int, _ map: (Float) -> Float) -> [Float] {
            let p = params[name]
            return (0..<count).map { map(p[$0]) }
        }
        effective.alphaA = (0..<L).map { l in vec("layers.\(l).alpha_attn", d) { abs($0 * ca) } }
        effective.alphaM = (0..<L).map { l in vec("layers.\(l).alpha_mlp", d) { abs($0 * ca) } }
        effective.sqk = (0..<L).map { l in vec("layers.\(l).attn.s_qk", d) { $0 * cu } }
        effective.su = (0..<L).map { l in vec("layers.\(l).mlp.s_u", f) { $0 } }
        effective.sv = (0..<L).map { l in vec("layers.\(l).mlp.s_v", f) { $0 } }
        effective.sz = vec("s_z", config.vocabSize) { $0 * cu }
        let fold = { (w: String, s: [Float], factor: Float, out: UnsafeMutablePointer<Float>, rows: Int) in
            s.withUnsafeBufferPointer {
                Columns.scaleRows(self.params[w], by: $0.baseAddress.unsafelyUnwrapped, factor: factor, out, rows: rows, cols: d)
            }
        }
        fold("output.weight", effective.sz, 1, outputScaled, config.vocabSize)
        for l in 0..<L {
            fold("layers.\(l).mlp.w_up", effective.su[l], 1, upScaled[l], f)
            fold("layers.\(l).mlp.w_gate", effective.sv[l], Float(d).squareRoot(), gateScaled[l], f)
        }
    }

    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Double {
        let a = activationSets[batch] ?? Activations(config: config, batch: batch)
        activationSets[batch] = a
        acts = a
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        a.inputs.update(from: inputs, count: n)
        a.targets.update(from: targets, count: n)
        computeEffectiveScales()
        let shape = AttentionShape(batch: batch, context: c.context, heads: H, headDim: dk)

        // h_0 = E_in[token]  [N, d] (unit rows already; no √d, no positions)
        Embedding.forward(table: params["tok_embeddings.weight"], ids: inputs, count: n, dim: d, vocab: V, a.h[0])
        for l in 0..<c.layers {
            let s = a.layers[l], h = a.h[l], p = "layers.\(l)."
            // --- attention sub-block ---
            // A = Norm(h) [N, d] (equal to h in value; its Jacobian matters, spec B1)
            RowNorm.l2Forward(h, s.a1, invNorm: s.invA1, rows: n, cols: d)
            // q, k, v = h·Wᵀ [N, d]; RoPE on q, k; per-head Norm over d_k; × s_qk
            GEMM.xwT(h, params[p + "attn.wq"], s.q, m: n, k: d, n: d)
            GEMM.xwT(h, params[p + "attn.wk"], s.k, m: n, k: d, n: d)
            GEMM.xwT(h, params[p + "attn.wv"], s.v, m: n, k: d, n: d)
            RoPE.rotate(s.q, ld: d, rows: n, heads: H, context: c.context, table: rope)
            RoPE.rotate(s.k, ld: d, rows: n, heads: H, context: c.context, table: rope)
            RowNorm.l2Forward(s.q, s.qhat, invNorm: s.invQ, rows: n * H, cols: dk)
            RowNorm.l2Forward(s.k, s.khat, invNorm: s.invK, rows: n * H, cols: dk)
            effective.sqk[l].withUnsafeBufferPointer { sq in
                Columns.scale(s.qhat, by: sq.baseAddress.unsafelyUnwrapped, s.qs, rows: n, cols: d)
                Columns.scale(s.khat, by: sq.baseAddress.unsafelyUnwrapped, s.ks, rows: n, cols: d)
            }
            // y = softmax(√d_k · q̃k̃ᵀ + mask)·v   [N, d]
            Attention.forward(q: s.qs, k: s.ks, v: s.v, ld: d, y: s.y, ldy: d, probs: s.probs, shape: shape,
                              scale: Float(dk).squareRoot())
            // h_A = Norm(y·W_o)   [N, d]  (h_att is staged in hA, normalised in place)
            GEMM.xw(s.y, params[p + "attn.wo"], s.hA, m: n, k: d, n: d)
            RowNorm.l2Forward(s.hA, s.hA, invNorm: s.invHA, rows: n, cols: d)
            // h ← Norm(A + α_A ⊙ (h_A − A))   (ρ staged in hMid)
            effective.alphaA[l].withUnsafeBufferPointer { al in
                Columns.lerp(s.a1, s.hA, alpha: al.baseAddress.unsafelyUnwrapped, s.hMid, rows: n, cols: d)
            }
            RowNorm.l2Forward(s.hMid, s.hMid, invNorm: s.invRho1, rows: n, cols: d)

            // --- MLP sub-block ---
            RowNorm.l2Forward(s.hMid, s.a2, invNorm: s.invA2, rows: n, cols: d)
            // u = s_u ⊙ (h·W_upᵀ) = h·(diag(s_u)W_up)ᵀ, ν = √d·s_ν ⊙ (h·W_gateᵀ)   [N, F]
            GEMM.xwT(s.hMid, upScaled[l], s.u, m: n, k: d, n: f)
            GEMM.xwT(s.hMid, gateScaled[l], s.nu, m: n, k: d, n: f)
            SwiGLU.forward(u: s.u, gate: s.nu, s.x, count: n * f)
            // h_M = Norm(x·W_down)   [N, d]
            GEMM.xw(s.x, params[p + "mlp.w_down"], s.hM, m: n, k: f, n: d)
            RowNorm.l2Forward(s.hM, s.hM, invNorm: s.invHM, rows: n, cols: d)
            effective.alphaM[l].withUnsafeBufferPointer { al in
                Columns.lerp(s.a2, s.hM, alpha: al.baseAddress.unsafelyUnwrapped, a.h[l + 1], rows: n, cols: d)
            }
            RowNorm.l2Forward(a.h[l + 1], a.h[l + 1], invNorm: s.invRho2, rows: n, cols: d)
        }
        // z = s_z ⊙ (h_L·E_outᵀ) = h_L·(diag(s_z)E_out)ᵀ   [N, V]; no final norm
        GEMM.xwT(a.h[c.layers], outputScaled, a.z, m: n, k: d, n: V)
        return CrossEntropy.forwardBackward(logits: a.z, targets: targets, rows: n, vocab: V) / Double(n)
    }

    public func backward(lossScale: Float) {
        guard let a = acts else { preconditionFailure("backward before forward") }
        let c = config, n = a.n, d = c.dim, f = c.mlpHidden, V = c.vocabSize, H = c.heads, dk = c.headDim
        let shape = AttentionShape(batch: a.batch, context: c.context, heads: H, headDim: dk)
        let sqrtD = Float(d).squareRoot(), cu = ScaleVector.unitFactor(d)
        let g = grads

        // dz = (softmax − onehot) · lossScale / N
        _ = CrossEntropy.forwardBackward(logits: a.z, targets: a.targets, rows: n, vocab: V, dlogits: a.gz,
                                         gradScale: lossScale / Float(n))
        // G = dzᵀ·h_L is the gradient of E_s = diag(s_z)·E_out   [V, d]:
        //   dE_out[v] += s_z[v]·G[v],  ds_z,raw[v] += √d·⟨G[v], E_out[v]⟩,  dh_L = dz·E_s
        GEMM.xTy(a.gz, a.h[c.layers], scaledGradOut, m: n, k: V, n: d)
        unfoldScaleGradient(scaledGradOut, weight: "output.weight", scale: effective.sz, factor: 1, scaleGrad: "s_z", rawFactor: cu, rows: V)
        GEMM.xw(a.gz, outputScaled, a.gh, m: n, k: V, n: d)

        var gh = a.gh, ghNext = a.ghNext
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let s = a.layers[l], p = "layers.\(l)."
            // --- MLP sub-block (gh = ∂L/∂h_{l+1}) ---
            residualBackward(gh, out: a.h[l + 1], invRho: s.invRho2, a: s.a2, b: s.hM, invB: s.invHM, alpha: effective.alphaM[l],
                             alphaName: p + "alpha_mlp", acts: a)                      // a.gB = d h_mlp
            GEMM.xwT(a.gB, params[p + "mlp.w_down"], a.gx, m: n, k: d, n: f)             // dx = dh_mlp·W_downᵀ
            GEMM.xTy(s.x, a.gB, g[p + "mlp.w_down"], m: n, k: f, n: d, beta: 1)
            SwiGLU.backward(a.gx, u: s.u, gate: s.nu, du: a.gu, dgate: a.gnu, count: n * f)
            // through the folded weights diag(s_u)W_up and diag(√d·s_ν)W_gate (see the head above)
            GEMM.xTy(a.gu, s.hMid, scaledGradMLP, m: n, k: f, n: d)
            unfoldScaleGradient(scaledGradMLP, weight: p + "mlp.w_up", scale: effective.su[l], factor: 1, scaleGrad: p + "mlp.s_u",
                                rawFactor: 1, rows: f)
            GEMM.xTy(a.gnu, s.hMid, scaledGradMLP, m: n, k: f, n: d)
            unfoldScaleGradient(scaledGradMLP, weight: p + "mlp.w_gate", scale: effective.sv[l], factor: sqrtD,
                                scaleGrad: p + "mlp.s_v", rawFactor: sqrtD, rows: f)
            // ∂L/∂h_mid = du·(diag(s_u)W_up) + dν·(diag(√d·s_ν)W_gate) + Norm'(A)ᵀ dA   (into ghNext)
            GEMM.xw(a.gu, upScaled[l], ghNext, m: n, k: f, n: d)
            GEMM.xw(a.gnu, gateScaled[l], ghNext, m: n, k: f, n: d, beta: 1)
            RowNorm.l2Backward(a.gA, y: s.a2, invNorm: s.invA2, ghNext, rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)

            // --- attention sub-block (gh = ∂L/∂h_mid) ---
            residualBackward(gh, out: s.hMid, invRho: s.invRho1, a: s.a1, b: s.hA, invB: s.invHA, alpha: effective.alphaA[l],
                             alphaName: p + "alpha_attn", acts: a)                     // a.gB = d h_att
            GEMM.xwT(a.gB, params[p + "attn.wo"], a.gd1, m: n, k: d, n: d)                // dy = dh_att·W_oᵀ
            GEMM.xTy(s.y, a.gB, g[p + "attn.wo"], m: n, k: d, n: d, beta: 1)
            Attention.backward(dy: a.gd1, ldy: d, q: s.qs, k: s.ks, v: s.v, ld: d, probs: s.probs, dq: a.gq, dk: a.gk,
                               dv: a.gv, ldg: d, scratch: a.attnScratch, shape: shape, scale: Float(dk).squareRoot())
            // s_qk feeds both q and k: g_raw += √d · Σ_t (dq̃ ⊙ q̂ + dk̃ ⊙ k̂)
            Columns.dotAccumulate(a.gq, s.qhat, factor: cu, into: g[p + "attn.s_qk"], rows: n, cols: d)
            Columns.dotAccumulate(a.gk, s.khat, factor: cu, into: g[p + "attn.s_qk"], rows: n, cols: d)
            effective.sqk[l].withUnsafeBufferPointer { sq in
                Columns.scale(a.gq, by: sq.baseAddress.unsafelyUnwrapped, a.gq, rows: n, cols: d)
                Columns.scale(a.gk, by: sq.baseAddress.unsafelyUnwrapped, a.gk, rows: n, cols: d)
            }
            RowNorm.l2Backward(a.gq, y: s.qhat, invNorm: s.invQ, a.gq, rows: n * H, cols: dk)
            RowNorm.l2Backward(a.gk, y: s.khat, invNorm: s.invK, a.gk, rows: n * H, cols: dk)
            RoPE.rotate(a.gq, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            RoPE.rotate(a.gk, ld: d, rows: n, heads: H, context: c.context, table: rope, inverse: true)
            let h = a.h[l]
            GEMM.xTy(a.gq, h, g[p + "attn.wq"], m: n, k: d, n: d, beta: 1)
            GEMM.xTy(a.gk, h, g[p + "attn.wk"], m: n, k: d, n: d, beta: 1)
            GEMM.xTy(a.gv, h, g[p + "attn.wv"], m: n, k: d, n: d, beta: 1)
            GEMM.xw(a.gq, params[p + "attn.wq"], ghNext, m: n, k: d, n: d)
            GEMM.xw(a.gk, params[p + "attn.wk"], ghNext, m: n, k: d, n: d, beta: 1)
            GEMM.xw(a.gv, params[p + "attn.wv"], ghNext, m: n, k: d, n: d, beta: 1)
            RowNorm.l2Backward(a.gA, y: s.a1, invNorm: s.invA1, ghNext, rows: n, cols: d, accumulate: true)
            swap(&gh, &ghNext)
        }
        Embedding.backward(gh, ids: a.inputs, count: n, dim: d, vocab: V, dtable: g["tok_embeddings.weight"])
    }

    /// Backward of one residual update h' = Norm(A + α ⊙ (Norm(o) − A)) (spec B3), given g = ∂L/∂h':
    /// leaves ∂L/∂A in acts.gA and ∂L/∂o (the block's raw output) in acts.gB, and adds α's gradient.
    private func residualBackward(_ g: UnsafePointer<Float>, out: UnsafePointer<Float>, invRho: UnsafePointer<Float>,
                                  a: UnsafePointer<Float>, b: UnsafePointer<Float>, invB: UnsafePointer<Float>, alpha: [Float],
                                  alphaName: String, acts: Activations) {
        let n = acts.n, d = config.dim
        RowNorm.l2Backward(g, y: out, invNorm: invRho, acts.grho, rows: n, cols: d)
        acts.gAlpha.update(repeating: 0, count: d)
        alpha.withUnsafeBufferPointer { al in
            Columns.lerpBackward(acts.grho, a: a, b: b, alpha: al.baseAddress.unsafelyUnwrapped, ga: acts.gA, gb: acts.gB,
                                 galpha: acts.gAlpha, rows: n, cols: d)
        }
        accumulateAlphaGradient(grads[alphaName], raw: params[alphaName], effectiveGrad: acts.gAlpha,
                                factor: ScaleVector.alphaFactor(d))
        RowNorm.l2Backward(acts.gB, y: b, invNorm: invB, acts.gB, rows: n, cols: d)
    }

    /// Given G, the gradient of diag(factor·s)·W: dW[r] += factor·s[r]·G[r] and ds_raw[r] += rawFactor·⟨G[r], W[r]⟩
    /// (s = raw·c for s_z, so rawFactor carries c as well as any constant factor).
    private func unfoldScaleGradient(_ gScaled: UnsafePointer<Float>, weight: String, scale: [Float], factor: Float,
                                     scaleGrad: String, rawFactor: Float, rows: Int) {
        let d = config.dim
        scale.withUnsafeBufferPointer {
            Columns.scaleRows(gScaled, by: $0.baseAddress.unsafelyUnwrapped, factor: factor, grads[weight], rows: rows, cols: d,
                              accumulate: true)
        }
        Columns.rowDotAccumulate(gScaled, params[weight], factor: rawFactor, into: grads[scaleGrad], rows: rows, cols: d)
    }

    /// α_eff = |c·raw|: g_raw += c · sign(c·raw) · g_eff (sign(0) = 0, as torch's abs).
    private func accumulateAlphaGradient(_ g: UnsafeMutablePointer<Float>, raw: UnsafePointer<Float>,
                                         effectiveGrad: UnsafePointer<Float>, factor c: Float) {
        for j in 0..<config.dim {
            let x = c * raw[j]
            let sign: Float = x > 0 ? 1 : (x < 0 ? -1 : 0)
            g[j] += c * sign * effectiveGrad[j]
        }
    }
}
