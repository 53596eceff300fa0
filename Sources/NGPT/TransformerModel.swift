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

/// What both models hold the same way: the configuration, the flat parameter layout with its parameter and
/// gradient buffers and typed views of both (`w`, `g`), the RoPE table and the activation sets. Each model adds its
/// forward and backward passes; `Block` is its per-block pointers, `Activations` its saved activations.
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
}
