import Kernels
/// The architecture: everything that fixes the parameter shapes and the forward pass.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var kind: ModelKind
    public var vocabSize: Int
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var mlpHidden: Int
    public var context: Int

    public init(kind: ModelKind = .ngpt, vocabSize: Int = 4096, dim: Int = 256, layers: Int = 4, heads: Int = 4,
                mlpHidden: Int = 683, context: Int = 256) {
        self.kind = kind; self.vocabSize = vocabSize; self.dim = dim; self.layers = layers; self.heads = heads
        self.mlpHidden = mlpHidden; self.context = context
    }

    /// Config S, the project's reference size.
    public static let s = ModelConfig()

    public var headDim: Int { dim / heads }

    /// Throws a one-line error naming the first invalid field.
    public func validate() throws {
        for (name, value) in [("vocab size", vocabSize), ("dim", dim), ("layers", layers), ("heads", heads),
                              ("MLP hidden", mlpHidden), ("context", context)] where value <= 0 {
            throw UserError("\(name) must be positive, got \(value)")
        }
        guard dim % 2 == 0 else {
            throw UserError("--dim \(dim) is odd, but every head's size dim/heads must be even (RoPE rotates pairs); use --dim \(dim - 1) or \(dim + 1)")
        }
        guard dim % heads == 0 else {
            throw UserError("--heads \(heads) must divide --dim \(dim) into an even head size; e.g. --heads \(Self.headsNear(dim, heads))")
        }
        guard headDim % 2 == 0 else {
            throw UserError("the head size dim/heads = \(headDim) must be even (RoPE rotates pairs); e.g. --heads \(Self.headsNear(dim, heads))")
        }
        guard vocabSize <= Int(Int32.max) else { throw UserError("vocab size \(vocabSize) is too large") }
    }

    /// The head count nearest `k` that divides an even `dim` into an even head size (dim/2 always does).
    static func headsNear(_ dim: Int, _ k: Int) -> Int {
        (1...dim / 2).filter { dim % $0 == 0 && (dim / $0) % 2 == 0 }.min { abs($0 - k) < abs($1 - k) } ?? dim / 2
    }

    /// Parameter count (every tensor in the layout, scale vectors and gains included).
    public var parameterCount: Int { ParameterLayout(config: self).totalCount }

    /// Training FLOPs per token, the nanoGPT/PaLM estimate 6·N + 12·L·d·T:
    /// 6·N counts a multiply-add (2 FLOPs) per weight in the forward pass and twice that in the backward pass,
    /// with N = the weights that take part in matrix products: all matrices and the output embedding, not the
    /// input embedding (a lookup) nor the vectors (gains, scales: elementwise). 12·L·d·T counts attention's
    /// QKᵀ and P·V over the full T×T square (forward 4·L·d·T, backward twice that). Elementwise work (norms,
    /// softmax, RoPE, SwiGLU) is not counted, as in those references.
    public var trainingFlopsPerToken: Double {
        let matrices = layers * (4 * dim * dim + 3 * mlpHidden * dim) + vocabSize * dim
        return 6 * Double(matrices) + 12 * Double(layers * dim * context)
    }
}
