import Kernels

/// One named tensor in a flat parameter buffer.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    /// Offset (in floats) into the flat buffer.
    public var offset: Int
    /// AdamW weight decay applies (GPT: matrices and embeddings; never gains or scale vectors).
    public var decay: Bool
    /// nGPT: rows are projected back onto the unit sphere after every optimiser step.
    public var renormalize: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// Names, shapes and offsets of every parameter of a model, in one flat buffer (llm.c style): parameters,
/// gradients and the two Adam moments all use this layout. Tensor names are the checkpoint format:
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
public struct ParameterLayout: Sendable {
    public let tensors: [TensorSpec]
    public let totalCount: Int
    private let index: [String: Int]

    public init(config c: ModelConfig) {
        var specs: [TensorSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], decay: Bool, renorm: Bool) {
            specs.append(TensorSpec(name: name, shape: shape, offset: offset, decay: decay, renormalize: renorm))
            offset += shape.reduce(1, *)
        }
        let ngpt = c.kind == .ngpt
        let d = c.dim, f = c.mlpHidden, v = c.vocabSize
        add("tok_embeddings.weight", [v, d], decay: !ngpt, renorm: ngpt)
        for l in 0..<c.layers {
            let p = "layers.\(l)."
            if !ngpt { add(p + "attn_norm.weight", [d], decay: false, renorm: false) }
            for w in ["wq", "wk", "wv", "wo"] { add(p + "attn." + w, [d, d], decay: !ngpt, renorm: ngpt) }
            if ngpt {
                add(p + "attn.s_qk", [d], decay: false, renorm: false)
                add(p + "alpha_attn", [d], decay: false, renorm: false)
            } else {
                add(p + "mlp_norm.weight", [d], decay: false, renorm: false)
            }
            for w in ["w_up", "w_gate", "w_down"] { add(p + "mlp." + w, [f, d], decay: !ngpt, renorm: ngpt) }
            if ngpt {
                add(p + "mlp.s_u", [f], decay: false, renorm: false)
                add(p + "mlp.s_v", [f], decay: false, renorm: false)
                add(p + "alpha_mlp", [d], decay: false, renorm: false)
            }
        }
        if ngpt { add("s_z", [v], decay: false, renorm: false) } else { add("norm.weight", [d], decay: false, renorm: false) }
        add("output.weight", [v, d], decay: !ngpt, renorm: ngpt)
        tensors = specs
        totalCount = offset
        index = Dictionary(uniqueKeysWithValues: specs.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> TensorSpec? { index[name].map { tensors[$0] } }

    /// Offset of a tensor that the layout is known to hold (names are built by the models themselves).
    func offset(_ name: String) -> Int {
        guard let i = index[name] else { preconditionFailure("no tensor named \(name)") }
        return tensors[i].offset
    }
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

    public subscript(name: String) -> UnsafeMutablePointer<Float> { pointer + layout.offset(name) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: FlatTensors) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
