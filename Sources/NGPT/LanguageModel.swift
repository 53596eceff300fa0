import Common
import Foundation
import Kernels

/// Which architecture: the one registration of every model type. Adding a model is its own files (a type that
/// conforms to `LanguageModel`, with its decoder) plus a case here and its line in `modelType`; the compiler
/// points at anything else that is missing.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    /// The normalized Transformer (design §4.1).
    case ngpt
    /// The baseline: pre-norm RMSNorm, RoPE, SwiGLU, untied head (design §4.2).
    case gpt

    public var modelType: any LanguageModel.Type {
        switch self {
        case .ngpt: NGPTModel.self
        case .gpt: GPTModel.self
        }
    }

    /// The recipe a run of this architecture uses unless told otherwise.
    public var recipe: Recipe { modelType.recipe }
    /// How reports name it ("nGPT", "GPT").
    public var displayName: String { modelType.displayName }
}

/// A model's training recipe defaults (design §6); a run may override each.
public struct Recipe: Sendable, Equatable {
    /// Peak learning rate of the cosine schedule at width `referenceDim` and `baseSteps` steps (measured:
    /// docs/lr-transfer/).
    public var learningRate: Double
    /// The default learning rate's rule, fitted to the optima of docs/lr-transfer/ (a given --lr is taken as it
    /// is): learningRate × (referenceDim / d)^widthExponent × (steps / baseSteps)^defaultHorizonExponent.
    public var referenceDim = 256
    public var widthExponent = 0.0
    public var baseSteps = 600
    public var defaultHorizonExponent = 0.0
    /// A run-length factor that is part of the parameterization, (steps / baseSteps)^horizonExponent: unlike the
    /// rule above it applies to a given --lr as well (νGPT: --lr is the rate at the base run length).
    public var horizonExponent = 0.0
    /// Per-group learning-rate multipliers (d / referenceDim)^exponent, on top of the global rate (νGPT); a group
    /// not listed has multiplier 1.
    public var groupWidthExponents: [ParameterGroup: Double] = [:]
    /// AdamW weight decay on the tensors whose spec says `decay`.
    public var weightDecay: Double
    /// Linear warmup over this percentage of the steps (at least one step when not 0).
    public var warmupPercent: Int
    /// The end of the cosine decay as a fraction of the peak (the default --min-lr).
    public var minLRFraction = 0.0

    /// The default peak learning rate of a model of width `dim` trained `steps` steps (before `horizonFactor`).
    public func defaultLearningRate(dim: Int, steps: Int) -> Double {
        learningRate * pow(Double(referenceDim) / Double(dim), widthExponent)
            * pow(Double(steps) / Double(baseSteps), defaultHorizonExponent)
    }

    /// The factor the run length puts on every learning rate, a given --lr included.
    public func horizonFactor(steps: Int) -> Double {
        horizonExponent == 0 ? 1 : pow(Double(steps) / Double(baseSteps), horizonExponent)
    }

    /// Each tensor's learning-rate multiplier (1 unless the recipe gives its group a width exponent).
    public func multipliers(_ layout: ParameterLayout, dim: Int) -> [Float] {
        layout.tensors.map { t in
            Float(groupWidthExponents[t.group].map { pow(Double(dim) / Double(referenceDim), $0) } ?? 1)
        }
    }

    /// The rule as help shows it: "0.0012 × (256/dim)^0.74 × (steps/600)^-0.05", "0.008 × 256/dim".
    public var learningRateRule: String {
        var rule =
            switch widthExponent {
            case 0: "\(learningRate)"
            case 1: "\(learningRate) × \(referenceDim)/dim"
            default: "\(learningRate) × (\(referenceDim)/dim)^\(widthExponent)"
            }
        let horizon = defaultHorizonExponent + horizonExponent
        if horizon != 0 { rule += String(format: " × (steps/%d)^%.3g", baseSteps, horizon) }
        return rule
    }

    public func warmupSteps(totalSteps: Int) -> Int {
        warmupPercent == 0 ? 0 : max(1, totalSteps * warmupPercent / 100)
    }
}

/// A per-step training metric beyond the loss (written to metrics.jsonl under the model's own key).
public enum Metric: Sendable, Equatable {
    case value(Double)
    /// One value per layer.
    case perLayer([Double])
}

/// What every model type provides: the trainer, the sampler and the diagnostics use nothing else. nGPT and GPT
/// are separate types over the same kernels (no flag tested inside every operation).
public protocol LanguageModel: AnyObject {
    static var displayName: String { get }
    static var recipe: Recipe { get }
    /// Every parameter tensor with its shape and initialisation (the checkpoint format).
    static func parameterLayout(_ config: ModelConfig) -> ParameterLayout

    /// Floats a model of this configuration allocates beyond its parameters and gradients when it trains at
    /// `batch`: activations and their gradients, scratch, working copies of weights.
    static func workingFloats(_ config: ModelConfig, batch: Int) -> Int

    init(config: ModelConfig)
    var config: ModelConfig { get }
    var layout: ParameterLayout { get }
    var params: FlatTensors { get }
    var grads: FlatTensors { get }

    /// Forward pass over `batch` sequences of `config.context` tokens; saves what backward needs.
    /// Returns the mean cross-entropy over the batch × context targets (reduced in Double).
    func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Double

    /// Backward of `lossScale` × the mean loss of the last forward; *adds* into `grads` (so micro-batches
    /// accumulate; zero `grads` before the first).
    func backward(lossScale: Float)

    /// A training micro-step: `forward` and `backward(lossScale:)` in one pass, the same gradients up to rounding
    /// order (the head's weight gradient is summed chunk by chunk). Returns the mean loss. The output head runs in
    /// row chunks whose logits become their gradient while still in cache (`OutputHead`), so `logits` keeps
    /// nothing of this batch; call `forward` to see them.
    func forwardBackward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int, lossScale: Float)
        -> Double

    /// nGPT: renormalise every matrix and embedding row (before step 1 and after every optimiser step).
    /// GPT: nothing. Returns the largest |‖row‖ − 1| seen before the projection (0 for GPT).
    @discardableResult func projectWeights() -> Float

    /// Logits of the last forward: [batch × context, vocab].
    var logits: UnsafeMutablePointer<Float> { get }

    /// The hidden state after each block of the last forward ([batch × context, d] each).
    var blockOutputs: [UnsafePointer<Float>] { get }

    /// The single-token KV-cache forward of this architecture.
    func makeDecoder(precision: DecodePrecision) -> TokenDecoder

    /// The KV-cache forward over `slots` streams at once, up to `maxRows` tokens per step.
    func makeBatchDecoder(precision: DecodePrecision, slots: Int, maxRows: Int) -> BatchDecoder

    /// Metrics the trainer logs beside the loss (nGPT: its scale vectors and row norms; GPT: none).
    func trainingMetrics() -> [String: Metric]

    /// The matrices by role, for diagnostics.
    var matrices: TransformerMatrices { get }

    /// The effective learned scale vectors (nGPT), nil for a model without them.
    func learnedScales() -> LearnedScales?
}

extension LanguageModel {
    /// Draws fresh weights from the layout's initialisation (one generator, in layout order), then projects them
    /// (nGPT: onto the sphere).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for t in layout.tensors {
            let p = params.pointer + t.offset
            switch t.initialization {
            case .constant(let value): p.update(repeating: value, count: t.count)
            case .normal(let std): for i in 0..<t.count { p[i] = Float(rng.normal(std: std)) }
            }
        }
        projectWeights()
    }

    public func makeDecoder() -> TokenDecoder { makeDecoder(precision: .fp32) }
}

/// A model of `config`, initialised with seed 0. Validates the configuration and checks that the model fits in
/// the memory available before anything is allocated (training checks its larger estimate before this).
public func makeModel(_ config: ModelConfig) throws -> LanguageModel {
    try config.validate()
    try AvailableMemory.check(
        needed: config.modelBytes, what: "a \(config.kind.displayName) of this size",
        parts: "\(config.parameterCount) parameters with their gradients, activations and caches",
        fix: "it cannot be loaded on this machine")
    let model = config.kind.modelType.init(config: config)
    model.initialize(seed: 0)
    return model
}

extension ModelConfig {
    /// Bytes a model of this configuration allocates to evaluate and sample (no optimiser): parameters and their
    /// gradient buffer, the working buffers at batch 1, the decoder's caches and the RoPE table.
    public var modelBytes: Int {
        4
            * (2 * parameterCount + kind.modelType.workingFloats(self, batch: 1) + 2 * layers * context * dim + context
                * headDim)
    }
}

/// The matrices every Transformer here has, by role ([rows, d] each, rows as in `ParameterLayout`).
public struct TransformerMatrices {
    public struct Block {
        public var wq, wk, wv, wo: UnsafePointer<Float>  // [d, d]
        public var up, gate, down: UnsafePointer<Float>  // [F, d]
    }
    public var embeddingIn: UnsafePointer<Float>, embeddingOut: UnsafePointer<Float>  // [V, d]
    public var blocks: [Block]
}

/// Effective (used) values of nGPT's scale vectors: α_A, α_M, s_qk [d], s_u, s_ν [F] per layer, and s_z [V].
public struct LearnedScales: Sendable {
    public var alphaAttn: [[Float]], alphaMLP: [[Float]], sqk: [[Float]], su: [[Float]], sv: [[Float]], sz: [Float]
}

/// What both models' saved activations hold besides their layers (each model's `Activations` adds those): the
/// residual stream at every block boundary, the logits, the batch's token ids and the backward scratch both use.
/// Allocated once per (batch, context) from one arena and reused.
public class StreamActivations {
    let arena: Arena
    let batch: Int, n: Int  // n = batch × context rows
    let attention: AttentionShape
    let h: [UnsafeMutablePointer<Float>]  // [L+1] residual stream at the block boundaries, [n, d] (h_0 = embeddings)
    let z: UnsafeMutablePointer<Float>  // [n, V] logits
    let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>  // [n]
    // backward scratch: the stream's gradient ([n, d], two for the block-to-block swap), the q/k/v gradients
    // ([n, d]), the MLP's ([n, F]), one chunk of the output head's logits and their gradient ([chunk rows, V]) and
    // attention's own
    let gh: UnsafeMutablePointer<Float>, ghNext: UnsafeMutablePointer<Float>
    let gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>
    let gu: UnsafeMutablePointer<Float>, gnu: UnsafeMutablePointer<Float>, gx: UnsafeMutablePointer<Float>
    /// The row stride of the MLP's [n, F] activations and gradients (`mlpStride`).
    let ldF: Int

    /// F rounded up to 16 floats, so that every row of the products that write the MLP's [n, F] activations
    /// starts on a cache line (unaligned rows cost the F = 683 products ~7 %: each 16-float store of a tile then
    /// spans two lines). The columns past F stay zeros (the arena's), written by nothing; SwiGLU passes over them
    /// as part of whole rows, and no product reads them.
    static func mlpStride(_ c: ModelConfig) -> Int { (c.mlpHidden + 15) / 16 * 16 }
    let headChunk: UnsafeMutablePointer<Float>, attnScratch: UnsafeMutablePointer<Float>
    /// The products' precision in the forward that filled these activations (set by it): the form of the
    /// activations that only products read (`operand`), in which the backward reads them back.
    var productPrecision = GEMM.Precision.fp32

    /// An activation that only products read (SwiGLU's output and its input gradients), as stored for them.
    func operand(_ floats: UnsafeMutablePointer<Float>) -> GEMM.Operand {
        GEMM.Operand(floats, precision: productPrecision)
    }

    init(config c: ModelConfig, batch: Int, arena: Arena) {
        self.arena = arena
        self.batch = batch
        n = batch * c.context
        ldF = Self.mlpStride(c)
        let nd = n * c.dim, nf = n * ldF
        attention = AttentionShape(batch: batch, context: c.context, heads: c.heads, headDim: c.headDim)
        h = (0...c.layers).map { _ in arena.floats(nd) }
        z = arena.floats(n * c.vocabSize)
        inputs = .allocate(capacity: n)
        targets = .allocate(capacity: n)
        gh = arena.floats(nd); ghNext = arena.floats(nd)
        gq = arena.floats(nd); gk = arena.floats(nd); gv = arena.floats(nd)
        gu = arena.floats(nf); gnu = arena.floats(nf); gx = arena.floats(nf)
        headChunk = arena.floats(OutputHead.chunkRows(rows: n, vocab: c.vocabSize) * c.vocabSize)
        attnScratch = arena.floats(attention.backwardScratchCount)
    }

    deinit {
        inputs.deallocate()
        targets.deallocate()
    }
}

/// A model's activations per batch size (training and evaluation share one; sampling uses batch 1), allocated once
/// each, and the set the last forward wrote (what `backward`, `logits` and `blockOutputs` read).
final class ActivationSets<Activations: StreamActivations> {
    private(set) var sets: [Int: Activations] = [:]
    private(set) var current: Activations?

    /// The set for `batch` (made on first use), now the current one.
    func use(batch: Int, make: () -> Activations) -> Activations {
        let a = sets[batch] ?? make()
        sets[batch] = a
        current = a
        return a
    }

    /// The stream after every block of the last forward, [batch × context, d] each.
    var blockOutputs: [UnsafePointer<Float>] { current.map { $0.h.dropFirst().map { UnsafePointer($0) } } ?? [] }

    var logits: UnsafeMutablePointer<Float> {
        guard let a = current else { preconditionFailure("logits before any forward pass") }
        return a.z
    }
}

/// Buffers allocated together and freed together (activations, gradients of activations). A counting arena
/// allocates nothing: it adds up what the same code would allocate (the memory estimate before a run).
final class Arena {
    private var buffers: [UnsafeMutablePointer<Float>] = []
    private let counting: Bool
    /// Floats handed out so far.
    private(set) var count = 0
    /// What a counting arena hands out: never read or written.
    nonisolated(unsafe) private static let placeholder = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(counting: Bool = false) { self.counting = counting }

    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        self.count += count
        if counting { return Self.placeholder }
        let p = allocateFloats(count)
        buffers.append(p)
        return p
    }

    deinit { buffers.forEach(deallocateFloats) }
}
