import Kernels

/// How a tensor's values are drawn before training.
public enum Initialization: Sendable, Equatable {
    /// N(0, std²) draws, in layout order from the one seeded generator.
    case normal(std: Double)
    /// Every value the same.
    case constant(Float)
}

/// What a tensor is to the optimiser: a parameterization may give each group its own learning-rate multiplier
/// (νGPT, design §4.5).
public enum ParameterGroup: String, Sendable, CaseIterable {
    /// E_in, the input embedding.
    case embedding
    /// The blocks' matrices.
    case matrix
    /// E_out, the output embedding.
    case unembedding
    /// Vectors: nGPT's scale vectors, GPT's RMSNorm gains.
    case vector
}

/// One named tensor in a flat parameter buffer.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    /// Offset (in floats) into the flat buffer.
    public var offset: Int
    public var initialization: Initialization
    public var group: ParameterGroup
    /// AdamW weight decay applies (GPT: matrices and embeddings; never gains or scale vectors).
    public var decay: Bool
    /// nGPT: rows are projected back onto the unit sphere after every optimiser step.
    public var renormalize: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// Names, shapes, offsets and initialisation of every parameter of a model, in one flat buffer (llm.c style):
/// parameters, gradients and the two Adam moments all use this layout. Tensor names are the checkpoint format:
///
/// | name | shape | both models unless noted |
/// |---|---|---|
/// | `tok_embeddings.weight` | [V, d] | E_in |
/// | `output.weight` | [V, d] | E_out (untied): logits = h·E_outᵀ |
/// | `layers.{l}.attn.wq` / `wk` / `wv` | [d, d] | rows are output units: q = h·W_qᵀ |
/// | `layers.{l}.attn.wo` | [d, d] | rows are *input* units: h_att = y·W_o (each row a d-vector) |
/// | `layers.{l}.mlp.w_up` / `w_gate` | [F, d] | u = h·W_upᵀ, ν = h·W_gateᵀ |
/// | `layers.{l}.mlp.w_down` | [F, d] | h_mlp = x·W_down (each row a d-vector) |
/// | `layers.{l}.attn.s_qk`, `layers.{l}.alpha_attn`, `layers.{l}.alpha_mlp` | [d] | nGPT |
/// | `layers.{l}.mlp.s_u`, `layers.{l}.mlp.s_v` | [F] | nGPT |
/// | `s_z` | [V] | nGPT |
/// | `layers.{l}.attn_norm.weight`, `layers.{l}.mlp_norm.weight`, `norm.weight` | [d] | GPT RMSNorm gains |
///
/// Every matrix is stored so that its d-long vectors are rows; in PyTorch's (out, in) Linear layout W_o and
/// W_down are the transposes of what is stored here. nGPT scale vectors are stored raw (see `ScaleVector`).
/// Each model declares its tensors once (`NGPTModel.tensors`, `GPTModel.tensors`), getting back the offsets
/// its typed views are made from.
public struct ParameterLayout: Sendable {
    public let tensors: [TensorSpec]
    public let totalCount: Int
    private let index: [String: Int]

    init(_ tensors: [TensorSpec]) {
        self.tensors = tensors
        totalCount = tensors.last.map { $0.offset + $0.count } ?? 0
        index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    /// The layout of the configured architecture.
    public init(config: ModelConfig) { self = config.kind.modelType.parameterLayout(config) }

    /// Look-up by checkpoint name (for file I/O and tests; the models use their typed views).
    public subscript(name: String) -> TensorSpec? { index[name].map { tensors[$0] } }
}

/// Appends tensors one after another; each `add` returns the offset the typed views are built from.
struct LayoutBuilder {
    private(set) var tensors: [TensorSpec] = []
    private var offset = 0

    mutating func add(
        _ name: String, _ shape: [Int], _ initialization: Initialization, group: ParameterGroup = .vector,
        decay: Bool = false, renormalize: Bool = false
    ) -> Int {
        defer { offset += shape.reduce(1, *) }
        tensors.append(
            TensorSpec(
                name: name, shape: shape, offset: offset, initialization: initialization, group: group, decay: decay,
                renormalize: renormalize))
        return offset
    }

    var layout: ParameterLayout { ParameterLayout(tensors) }
}

/// A flat Float buffer laid out by a `ParameterLayout` (parameters, gradients or an Adam moment).
public final class FlatTensors: @unchecked Sendable {
    public let layout: ParameterLayout
    public let pointer: UnsafeMutablePointer<Float>
    public var count: Int { layout.totalCount }

    public init(layout: ParameterLayout) {
        self.layout = layout
        pointer = allocateFloats(layout.totalCount)
    }

    deinit { deallocateFloats(pointer) }

    /// The tensor of that checkpoint name (file I/O and tests; nil when the layout has none).
    public subscript(name: String) -> UnsafeMutablePointer<Float>? { layout[name].map { pointer + $0.offset } }

    /// Every value 0, split over the thread budget (a pass over every gradient at each step).
    public func zero() {
        let p = pointer
        Threads.parallelFor(count, workPerItem: 4) { _, range in
            (p + range.lowerBound).update(repeating: 0, count: range.count)
        }
    }

    public func copy(from other: FlatTensors) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
