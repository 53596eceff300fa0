import ArgumentParser
import Kernels
import NGPT
import Sampling

/// `ngpt-bench sample`: single-stream generation with the KV cache, over the whole context.
struct SampleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract:
            "Decoding tokens/s with the KV cache (default: config S): one stream from a short to a full context, "
            + "or --batch N streams together.",
        discussion: ModelSizeOptions.help)

    @OptionGroup var common: CommonOptions
    @OptionGroup var sizes: ModelSizeOptions
    @Option(parsing: .unconditional, help: "Weight precisions to run: fp32, bf16 or both (comma-separated).")
    var precisions: String = "fp32,bf16"
    @Option(
        help: ArgumentHelp(
            "Streams decoded together: N > 1 decodes N independent streams from empty to the full context, one step "
                + "taking one token of every stream (one pass over the weights), and reports aggregate tokens/s.",
            valueName: "n"))
    var batch: Int = 1

    func validate() throws {
        guard batch >= 1 && batch <= 1024 else { throw ValidationError("--batch must be in 1...1024, got \(batch)") }
    }

    func run() throws {
        Threads.configure(threads: common.threads)
        print(Threads.startupLine)
        if batch > 1 { return try runBatch() }
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

    /// `--batch N`: N streams step together through a batch decoder; aggregate tokens/s over the whole context,
    /// and the time of one step (one token for every stream).
    func runBatch() throws {
        var table = Table(header: ["model", "weights", "streams", "aggregate tokens/s", "per stream", "ms per step"])
        for kind in try sizes.kinds {
            for precision in precisions.split(separator: ",").compactMap({ DecodePrecision(rawValue: String($0)) }) {
                let config = try sizes.config(kind)
                let m = try makeModel(config)
                m.initialize(seed: 1)
                let decoder = m.makeBatchDecoder(precision: precision, slots: batch, maxRows: batch)
                var samplers = (0..<batch).map { Sampler(SamplerSettings(temperature: 0.8, seed: UInt64($0 + 1))) }
                var rates: [Double] = [], steps: [Double] = []
                for _ in 0..<(common.repetitions + 1) {
                    for slot in 0..<batch { decoder.reset(slot: slot) }
                    var rows = (0..<batch).map { DecodeRow(slot: $0, token: 1) }
                    var histories = [[Int32]](repeating: [], count: batch)
                    let start = now()
                    for _ in 0..<config.context {
                        let logits = decoder.step(rows)
                        for b in 0..<batch {
                            let next = samplers[b].next(
                                logits + b * config.vocabSize, count: config.vocabSize, history: histories[b][...])
                            histories[b].append(next)
                            rows[b].token = next
                        }
                    }
                    let ms = now() - start
                    rates.append(Double(batch * config.context) / ms * 1000)
                    steps.append(ms / Double(config.context))
                }
                // the first pass warms caches: drop it
                let rate = median(Array(rates.dropFirst()))
                table.rows.append([
                    kind.rawValue, precision.rawValue, "\(batch)", fmt(rate, 0), fmt(rate / Double(batch), 0),
                    fmt(median(Array(steps.dropFirst())), 3),
                ])
            }
        }
        print(table.render())
        print("tokens/s include sampling (temperature 0.8); every stream grows its KV cache from 0 to the full context")
    }
}
