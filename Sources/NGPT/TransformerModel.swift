import Kernels

/// A model's parameters by name, llm.c's ParameterTensors: offsets into the flat layout (P = Int), or pointers into
/// the parameter or gradient buffer (P = UnsafeMutablePointer<Float>), computed once. `Block` holds one block's
/// tensors (`GPTBlock<P>`, `NGPTBlock<P>`); `head` is the tensor between the last block and the output matrix:
/// the GPT's final RMSNorm gain [d], nGPT's logit scale s_z [V].
public struct ModelTensors<P, Block> {
    var tokEmbeddings: P  // [V, d]
    var blocks: [Block]
    var head: P
    var output: P  // [V, d]

    func map<Q, B>(_ f: (P) -> Q, block: (Block) -> B) -> ModelTensors<Q, B> {
        .init(tokEmbeddings: f(tokEmbeddings), blocks: blocks.map(block), head: f(head), output: f(output))
    }
}

/// Where one model's output head reads and writes: its input x [n, d] and matrix W [V, d] as the products use
/// them, where dx goes, and W's gradient (with beta 0 it is overwritten, with 1 added to).
struct HeadOperands {
    var x: UnsafePointer<Float>, weight: UnsafePointer<Float>
    var dx: UnsafeMutablePointer<Float>, weightGrad: UnsafeMutablePointer<Float>, beta: Float
}

/// What both models hold the same way: the configuration, the flat parameter layout with its parameter and
/// gradient buffers and typed views of both (`w`, `g`), the RoPE table and the activation sets, and the order of a
/// pass: blocks, output head, blocks' backward (`forward`, `backward`, `forwardBackward`). Each model overrides the
/// parts: `forwardBlocks`, `head`, `finishHeadBackward`, `backwardBlocks`. `Block` is its per-block pointers,
/// `Activations` its saved activations.
public class TransformerModel<Block, Activations: StreamActivations> {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let params: FlatTensors
    public let grads: FlatTensors
    /// Typed views of `params` and `grads`.
    let w: ModelTensors<UnsafeMutablePointer<Float>, Block>, g: ModelTensors<UnsafeMutablePointer<Float>, Block>
    let rope: RoPETable
    let activations = ActivationSets<Activations>()

    /// `views` gives the typed view of a buffer of `layout` (the model's offsets added to its base pointer).
    init(
        config: ModelConfig, layout: ParameterLayout,
        views: (FlatTensors) -> ModelTensors<UnsafeMutablePointer<Float>, Block>
    ) {
        self.config = config
        self.layout = layout
        params = FlatTensors(layout: layout)
        grads = FlatTensors(layout: layout)
        w = views(params)
        g = views(grads)
        rope = RoPETable(context: config.context, headDim: config.headDim)
    }

    /// The residual stream after every block of the last forward, [batch × context, d] each (unit rows in nGPT).
    public var blockOutputs: [UnsafePointer<Float>] { activations.blockOutputs }

    public var logits: UnsafeMutablePointer<Float> { activations.logits }

    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Double {
        let a = forwardBlocks(inputs: inputs, targets: targets, batch: batch)
        let head = head(a), n = a.n, V = config.vocabSize
        // z = x·Wᵀ   [N, V]
        GEMM.xwT(head.x, head.weight, a.z, m: n, k: config.dim, n: V)
        return CrossEntropy.forwardBackward(logits: a.z, targets: targets, rows: n, vocab: V) / Double(n)
    }

    public func backward(lossScale: Float) {
        guard let a = activations.current else { preconditionFailure("backward before forward") }
        _ = headLossAndGradient(a, logits: a.z, lossScale: lossScale)
        backwardBlocks(a)
    }

    public func forwardBackward(
        inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int, lossScale: Float
    ) -> Double {
        let a = forwardBlocks(inputs: inputs, targets: targets, batch: batch)
        let loss = headLossAndGradient(a, logits: nil, lossScale: lossScale)
        backwardBlocks(a)
        return loss / Double(a.n)
    }

    /// The head's loss (summed over rows) and backward, from the forward's logits or chunk by chunk (`OutputHead`):
    /// dz = (softmax − onehot) · lossScale / N, then the model's own rest (`finishHeadBackward`).
    private func headLossAndGradient(_ a: Activations, logits: UnsafePointer<Float>?, lossScale: Float) -> Double {
        let head = head(a), n = a.n
        let loss = OutputHead.lossAndGradient(
            x: head.x, weight: head.weight, rows: n, dim: config.dim, vocab: config.vocabSize, targets: a.targets,
            logits: logits, chunk: a.headChunk, gradScale: lossScale / Float(n), dx: head.dx,
            weightGrad: head.weightGrad, beta: head.beta)
        finishHeadBackward(a)
        return loss
    }

    // The parts each model overrides.

    /// Embeddings and blocks: everything before the output matrix (saving what the backward reads).
    func forwardBlocks(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Activations {
        preconditionFailure("\(Self.self) overrides forwardBlocks")
    }

    /// The output head's operands in `a`.
    func head(_ a: Activations) -> HeadOperands { preconditionFailure("\(Self.self) overrides head") }

    /// After the head's products: what stands between them and dh_L in a.gh, and the head's other gradients.
    func finishHeadBackward(_ a: Activations) { preconditionFailure("\(Self.self) overrides finishHeadBackward") }

    /// The blocks' backward, from dh_L in a.gh down to the embeddings.
    func backwardBlocks(_ a: Activations) { preconditionFailure("\(Self.self) overrides backwardBlocks") }
}
