import ArgumentParser
import Kernels
import NGPT

/// `ngpt-bench train`: full training steps (forward, backward, clip, AdamW, renormalisation) on random tokens.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time full training steps of a model (default: config S nGPT, batch 16).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Model: ngpt or gpt.") var model: ModelKind = .ngpt
    @Option(help: "Vocabulary size.") var vocabSize: Int = 4096
    @Option(help: "Model width d.") var dim: Int = 256
    @Option(help: "Transformer blocks.") var layers: Int = 4
    @Option(help: "Attention heads.") var heads: Int = 4
    @Option(help: "SwiGLU hidden width.") var mlpHidden: Int = 683
    @Option(help: "Context length.") var context: Int = 256
    @Option(help: "Sequences per step.") var batchSize: Int = 16
    @Flag(help: "Run both models with the same sizes (one table).") var both: Bool = false

    func run() throws {
        Threads.configure(threads: common.threads)
        print(Threads.startupLine)
        var table = Table(header: ["model", "params", "median ms/step", "tokens/s", "GFLOP/s", "forward ms", "backward ms", "update ms"])
        for kind in both ? [ModelKind.ngpt, .gpt] : [model] {
            let config = ModelConfig(kind: kind, vocabSize: vocabSize, dim: dim, layers: layers, heads: heads,
                                     mlpHidden: mlpHidden, context: context)
            do { try config.validate() } catch { throw ValidationError("\(error)") }
            let m = try makeModel(config)
            let opt = AdamW(layout: m.layout, settings: .init(weightDecay: kind == .gpt ? 0.1 : 0))
            let n = batchSize * context
            var rng = SplitMix64(seed: 1)
            let inputs = (0..<n).map { _ in Int32(rng.below(vocabSize)) }, targets = (0..<n).map { _ in Int32(rng.below(vocabSize)) }
            var fwd: [Double] = [], bwd: [Double] = [], upd: [Double] = []
            let total = medianMilliseconds(repetitions: common.repetitions) {
                var t = now()
                m.grads.zero()
                _ = m.forward(inputs: inputs, targets: targets, batch: batchSize)
                fwd.append(now() - t); t = now()
                m.backward(lossScale: 1)
                bwd.append(now() - t); t = now()
                opt.update(m, lr: 1e-3)
                upd.append(now() - t)
            }
            let tokensPerSecond = Double(n) / total * 1000
            table.rows.append([kind.rawValue, "\(config.parameterCount)", fmt(total, 1), fmt(tokensPerSecond, 0),
                               fmt(config.trainingFlopsPerToken * tokensPerSecond / 1e9, 1),
                               fmt(median(fwd), 1), fmt(median(bwd), 1), fmt(median(upd), 1)])
        }
        print(table.render())
        print("GFLOP/s counts 6N + 12·L·d·T per token (nanoGPT/PaLM); tokens per step: \(batchSize * context)")
    }
}
