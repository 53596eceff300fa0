import Common
import Kernels

/// How nGPT's scale vectors and learning rates follow the model's size (design §4.5).
public enum Parameterization: String, Codable, Sendable, CaseIterable {
    /// The 2024 paper's: scale vectors stored at 1/√d, one learning rate for every tensor.
    case paper
    /// νGPT (Shigida, Hanin, Gromov 2026): scale vectors stored at a constant 0.03, per-group learning rates that
    /// follow the width, a global one that follows the run length, α's init following the depth.
    case nu

    /// What a model of `kind` takes unless told otherwise: νGPT for nGPT, measured better at every width from d 128
    /// to 384 in this project's learning-rate study (docs/lr-transfer/README.md); a GPT has only `.paper`.
    public static func defaultFor(_ kind: ModelKind) -> Parameterization { kind == .ngpt ? .nu : .paper }
}

/// The architecture: everything that fixes the parameter shapes and the forward pass.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var kind: ModelKind
    public var vocabSize: Int
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var mlpHidden: Int
    public var context: Int
    /// nGPT's (`Parameterization.defaultFor` unless given); `.paper` for a GPT.
    public var parameterization: Parameterization

    public init(
        kind: ModelKind = .ngpt, vocabSize: Int = 4096, dim: Int = 256, layers: Int = 4, heads: Int = 4,
        mlpHidden: Int = 683, context: Int = 256, parameterization: Parameterization? = nil
    ) {
        self.kind = kind; self.vocabSize = vocabSize; self.dim = dim; self.layers = layers; self.heads = heads
        self.mlpHidden = mlpHidden; self.context = context
        self.parameterization = parameterization ?? .defaultFor(kind)
    }

    enum CodingKeys: String, CodingKey {
        case kind, vocabSize, dim, layers, heads, mlpHidden, context, parameterization
    }

    /// Checkpoints written before parameterizations existed have none: theirs is the paper's.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try c.decode(ModelKind.self, forKey: .kind), vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            dim: try c.decode(Int.self, forKey: .dim), layers: try c.decode(Int.self, forKey: .layers),
            heads: try c.decode(Int.self, forKey: .heads), mlpHidden: try c.decode(Int.self, forKey: .mlpHidden),
            context: try c.decode(Int.self, forKey: .context),
            parameterization: try c.decodeIfPresent(Parameterization.self, forKey: .parameterization) ?? .paper)
    }

    /// The same sizes for a model of `kind`, with that kind's default parameterization when the kind changes.
    public func switched(to kind: ModelKind) -> ModelConfig {
        guard kind != self.kind else { return self }
        var c = self
        c.kind = kind
        c.parameterization = .defaultFor(kind)
        return c
    }

    /// The training recipe of this model and parameterization.
    public var recipe: Recipe { kind == .ngpt && parameterization == .nu ? NGPTModel.nuRecipe : kind.modelType.recipe }

    /// Config S, the project's reference size.
    public static let s = ModelConfig()

    public var headDim: Int { dim / heads }

    /// The largest value each size may take: far beyond what trains on a CPU, small enough that no product of
    /// sizes the models compute can overflow (`validate` also bounds the products) and that a layout is cheap to
    /// build. A file or flag past one is refused before anything is allocated.
    public static let limits = (vocabSize: 1 << 20, dim: 1 << 16, layers: 1 << 12, mlpHidden: 1 << 18, context: 1 << 20)

    /// How `validate` names the fields: as flags (`--dim`) for a configuration the user typed, or as keys (`dim`)
    /// for one read from a file, whose reader says which file.
    public enum FieldNames: Sendable { case flags, keys }

    /// Throws a one-line error naming the first invalid field: a size that is not positive or is past its limit,
    /// a head count that does not divide the width into an even head size, or sizes whose products could
    /// overflow (`floatBound`). Cheap for any values, so it runs before anything is built from them.
    public func validate(naming: FieldNames = .flags) throws {
        func name(_ key: String) -> String { naming == .flags ? "--" + key : key }
        let limits = Self.limits
        for (key, value, limit) in [
            ("vocab-size", vocabSize, limits.vocabSize), ("dim", dim, limits.dim), ("layers", layers, limits.layers),
            ("heads", heads, dim), ("mlp-hidden", mlpHidden, limits.mlpHidden), ("context", context, limits.context),
        ] {
            guard value > 0 else { throw UserError("\(name(key)) must be positive, got \(value)") }
            guard value <= max(limit, 1) else {
                throw UserError(
                    "\(name(key)) \(value) is too large (at most \(limit)\(key == "heads" ? ", the width" : ""))")
            }
        }
        guard parameterization == .paper || kind == .ngpt else {
            throw UserError(
                "\(name("parameterization")) \(parameterization.rawValue) applies to nGPT only, but the model is "
                    + "\(kind.rawValue); leave it out")
        }
        guard dim % 2 == 0 else {
            throw UserError(
                "\(name("dim")) \(dim) is odd, but every head's size dim/heads must be even (RoPE rotates pairs); "
                    + "use \(name("dim")) \(dim - 1) or \(dim + 1)"
            )
        }
        guard dim % heads == 0 else {
            throw UserError(
                "\(name("heads")) \(heads) must divide \(name("dim")) \(dim) into an even head size; e.g. "
                    + "\(name("heads")) \(Self.headsNear(dim, heads))"
            )
        }
        guard headDim % 2 == 0 else {
            throw UserError(
                "the head size dim/heads = \(headDim) must be even (RoPE rotates pairs); e.g. \(name("heads")) "
                    + "\(Self.headsNear(dim, heads))"
            )
        }
        guard floatBound(batch: 1) <= Self.maxFloats else {
            throw UserError(
                String(
                    format:
                        "this model is too large to build (about %.1e parameters and activations); lower %@, %@ or %@",
                    floatBound(batch: 1), name("layers"), name("dim"), name("context")))
        }
    }

    /// No buffer count may exceed 2^50 floats (4 PB): past any machine's memory, far below Int's range.
    public static let maxFloats = Double(1 << 50)

    /// An upper bound, in Double (it cannot overflow), of every float count a model of this configuration
    /// allocates or computes when it trains or evaluates `batch` sequences: parameters with gradients and both
    /// moments, every activation of every layer with its gradient (attention's [T, T] scores per head included),
    /// the logits, the decoder's caches, the RoPE table. Each size the models multiply out is one term of it, so a
    /// configuration under `maxFloats` computes no Int product that overflows.
    public func floatBound(batch: Int) -> Double {
        let (v, d, l, h, f, t, b) = (
            Double(vocabSize), Double(dim), Double(layers), Double(heads), Double(mlpHidden),
            Double(context), Double(max(batch, 1))
        )
        let parameters = 2 * v * d + v + (l + 1) * (4 * d * d + 3 * f * d + 4 * d + 2 * f)
        let activations = b * t * ((l + 1) * (32 * d + 16 * f + 4 * h * t) + 4 * v)
        return 8 * parameters + 4 * activations + 4 * (l + 1) * t * d + t * d
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
