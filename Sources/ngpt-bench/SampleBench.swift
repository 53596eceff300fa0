import ArgumentParser
import Kernels
import NGPT
import Sampling

/// `ngpt-bench sample`: single-stream generation with the KV cache, over the whole context.
struct SampleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract:
            "Single-stream tokens/s with the KV cache (default: config S), and how it changes from a short to a "
            + "full context.",
        discussion: ModelSizeOptions.help)

    @OptionGroup var common: CommonOptions
    @OptionGroup var sizes: ModelSizeOptions
    @Option(parsing: .unconditional, help: "Weight precisions to run: fp32, bf16 or both (comma-separated).")
    var precisions: String = "fp32,bf16"

    func run() throws {
        Threads.configure(threads: common.threads)
        print(Threads.startupLine)
        let quarters = 4, context = (try sizes.model.context)
        var header = ["model", "weights", "overall tokens/s"]
        for q in 0..<quarters {
            header.append("positions \(q * context / quarters)–\(((q + 1) * context / quarters) - 1)")
        }
        var table = Table(header: header)
        for kind in try sizes.kinds {
            for precision in precisions.split(separator: ",").compactMap({ DecodePrecision(rawValue: String($0)) }) {
                let config = try sizes.config(kind)
                let m = try makeModel(config)
                m.initialize(seed: 1)
                let decoder = m.makeDecoder(precision: precision)
                var sampler = Sampler(SamplerSettings(temperature: 0.8, seed: 1))
                // Per quarter of the context: median over repetitions of the time to fill it, token by token.
                var perQuarter = [[Double]](repeating: [], count: quarters)
                var overall: [Double] = []
                for _ in 0..<(common.repetitions + 1) {
                    Threads.withSerialBLAS {
                        decoder.reset()
                        var token: Int32 = 1
                        var history: [Int32] = []
                        let start = now()
                        var quarterStart = start
                        for t in 0..<context {
                            let logits = decoder.step(token)
                            token = sampler.next(logits, count: config.vocabSize, history: history[...])
                            history.append(token)
                            if (t + 1) % (context / quarters) == 0 && (t + 1) / (context / quarters) <= quarters {
                                let q = (t + 1) / (context / quarters) - 1
                                perQuarter[q].append(Double(context / quarters) / (now() - quarterStart) * 1000)
                                quarterStart = now()
                            }
                        }
                        overall.append(Double(context) / (now() - start) * 1000)
                    }
                }
                // the first pass warms caches: drop it
                table.rows.append(
                    [kind.rawValue, precision.rawValue, fmt(median(Array(overall.dropFirst())), 0)]
                        + perQuarter.map { fmt(median(Array($0.dropFirst())), 0) })
            }
        }
        print(table.render())
        print("tokens/s include sampling (temperature 0.8) and grow the KV cache from 0 to the full context")
    }
}
