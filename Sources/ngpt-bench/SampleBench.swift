import ArgumentParser
import Kernels
import NGPT
import Sampling

/// `ngpt-bench sample`: single-stream generation with the KV cache, over the whole context.
struct SampleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Single-stream tokens/s with the KV cache (default: config S), and how it changes from a short to a full context.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Model: ngpt or gpt.") var model: ModelKind = .ngpt
    @Option(help: "Vocabulary size.") var vocabSize: Int = 4096
    @Option(help: "Model width d.") var dim: Int = 256
    @Option(help: "Transformer blocks.") var layers: Int = 4
    @Option(help: "Attention heads.") var heads: Int = 4
    @Option(help: "SwiGLU hidden width.") var mlpHidden: Int = 683
    @Option(help: "Context length.") var context: Int = 256
    @Flag(help: "Run both models.") var both: Bool = false
    @Option(help: "Weight precisions to run: fp32, bf16 or both (comma-separated).") var precisions: String = "fp32,bf16"

    func run() throws {
        Threads.configure(threads: common.threads)
        print(Threads.startupLine)
        let quarters = 4
        var header = ["model", "weights", "overall tokens/s"]
        for q in 0..<quarters { header.append("positions \(q * context / quarters)–\(((q + 1) * context / quarters) - 1)") }
        var table = Table(header: header)
        for kind in both ? [ModelKind.ngpt, .gpt] : [model] { for precision in precisions.split(separator: ",").compactMap({ DecodePrecision(rawValue: String($0)) }) {
            let config = ModelConfig(kind: kind, vocabSize: vocabSize, dim: dim, layers: layers, heads: heads,
                                     mlpHidden: mlpHidden, context: context)
            do { try config.validate() } catch { throw ValidationError("\(error)") }
            let m = try makeModel(config)
            m.initialize(seed: 1)
            let decoder = makeDecoder(for: m, precision: precision)
            var sampler = Sampler(SamplerSettings(temperature: 0.8, seed: 1))
            // Per quarter of the context: median over repetitions of the time to fill it, token by token.
            var perQuarter = [[Double]](repeating: [], count: quarters)
            var overall: [Double] = []
            for _ in 0..<(common.repetitions + 1) { Threads.withSerialBLAS {
                decoder.reset()
                var token: Int32 = 1
                var history: [Int32] = []
                let start = now()
                var quarterStart = start
                for t in 0..<context {
                    let logits = decoder.step(token)
                    token = sampler.next(logits, count: vocabSize, history: history[...])
                    history.append(token)
                    if (t + 1) % (context / quarters) == 0 && (t + 1) / (context / quarters) <= quarters {
                        let q = (t + 1) / (context / quarters) - 1
                        perQuarter[q].append(Double(context / quarters) / (now() - quarterStart) * 1000)
                        quarterStart = now()
                    }
                }
                overall.append(Double(context) / (now() - start) * 1000)
            } }
            // the first pass warms caches: drop it
            table.rows.append([kind.rawValue, precision.rawValue, fmt(median(Array(overall.dropFirst())), 0)]
                              + perQuarter.map { fmt(median(Array($0.dropFirst())), 0) })
        } }
        print(table.render())
        print("tokens/s include sampling (temperature 0.8) and grow the KV cache from 0 to the full context")
    }
}
