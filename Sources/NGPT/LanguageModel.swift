import Kernels

/// What the trainer and the sampler need from a model. nGPT and GPT are separate types over the same kernels.
public protocol LanguageModel: AnyObject {
    var config: ModelConfig { get }
    var layout: ParameterLayout { get }
    var params: FlatTensors { get }
    var grads: FlatTensors { get }

    /// Draws fresh weights from the model's initialisation (nGPT: then renormalises).
    func initialize(seed: UInt64)

    /// Forward pass over `batch` sequences of `config.context` tokens; saves what backward needs.
    /// Returns the mean cross-entropy over the batch × context targets (reduced in Double).
    func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int) -> Double

    /// Backward of `lossScale` × the mean loss of the last forward; *adds* into `grads` (so micro-batches
    /// accumulate; zero `grads` before the first).
    func backward(lossScale: Float)

    /// nGPT: renormalise every matrix and embedding row (before step 1 and after every optimiser step).
    /// GPT: nothing. Returns the largest |‖row‖ − 1| seen before the projection (0 for GPT).
    @discardableResult func projectWeights() -> Float

    /// Logits of the last forward: [batch × context, vocab].
    var logits: UnsafeMutablePointer<Float> { get }

    /// The hidden state after each block of the last forward ([batch × context, d] each).
    var blockOutputs: [UnsafePointer<Float>] { get }
}

public func makeModel(_ config: ModelConfig) throws -> LanguageModel {
    try config.validate()
    switch config.kind {
    case .ngpt: return NGPTModel(config: config)
    case .gpt: return GPTModel(config: config)
    }
}

/// Buffers allocated together and freed together (activations, gradients of activations).
final class Arena {
    private var buffers: [UnsafeMutablePointer<Float>] = []

    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = allocateFloats(count)
        buffers.append(p)
        return p
    }

    deinit { buffers.forEach(deallocateFloats) }
}

/// Fills a tensor with N(0, std²) draws.
func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, std: Double, rng: inout SplitMix64) {
    for i in 0..<count { p[i] = Float(rng.normal(std: std)) }
}
