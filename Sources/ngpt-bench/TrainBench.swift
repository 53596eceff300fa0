import ArgumentParser
import Kernels
import NGPT

/// `ngpt-bench train`: full training steps (forward, backward, clip, AdamW, renormalisation) on random tokens.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time full training steps of a model (default: config S nGPT, batch 16).",
        discussion: ModelSizeOptions.help)

    @OptionGroup var common: CommonOptions

    @OptionGroup var sizes: ModelSizeOptions
    @Option(parsing: .unconditional, help: "Sequences per step.") var batchSize: Int = 16
    @Option(
        help: "GEMM input precision: fp32, or bf16 (inputs rounded to bfloat16, fp32 accumulation; needs AVX512_BF16).")
    var precision: GEMM.Precision = .fp32

    func run() throws {
        Threads.configure(threads: common.threads)
        try GEMM.check(precision)
        try GEMM.withPrecision(precision) { try measure() }
    }

    func measure() throws {
        print(Threads.startupLine)
        var table = Table(header: [
            "model", "params", "median ms/step", "tokens/s", "GFLOP/s", "forward+backward ms", "update ms",
        ])
        var shares = Table(header: [
            "model", "GEMM kernels", "packing (of B)", "waits in jobs", "serial (cores idle)", "row kernels and rest",
        ])
        for kind in try sizes.kinds {
            let config = try sizes.config(kind)
            let m = try makeModel(config)
            let opt = AdamW(layout: m.layout, settings: .init(weightDecay: kind == .gpt ? 0.1 : 0))
            let n = batchSize * config.context
            var rng = SplitMix64(seed: 1)
            let inputs = (0..<n).map { _ in Int32(rng.below(config.vocabSize)) },
                targets = (0..<n).map { _ in Int32(rng.below(config.vocabSize)) }
            // The trainer's step: gradients in one pass (the output head fused with its backward), then the update.
            var gradients: [Double] = [], upd: [Double] = []
            let total = medianMilliseconds(repetitions: common.repetitions) {
                var t = now()
                m.grads.zero()
                _ = m.forwardBackward(inputs: inputs, targets: targets, batch: batchSize, lossScale: 1)
                gradients.append(now() - t); t = now()
                opt.update(m, lr: 1e-3)
                upd.append(now() - t)
            }
            // Where the time goes: the same steps again with the counters on (they cost ~1 % when on).
            let profile = WorkProfile.measure {
                for _ in 0..<common.repetitions {
                    m.grads.zero()
                    _ = m.forwardBackward(inputs: inputs, targets: targets, batch: batchSize, lossScale: 1)
                    opt.update(m, lr: 1e-3)
                }
            }
            let percent = { (part: Double) in fmt(profile.percent(part), 1) + " %" }
            shares.rows.append([
                kind.rawValue, percent(profile.gemmKernels),
                percent(profile.packing) + " (" + percent(profile.packingB) + ")", percent(profile.poolWaits),
                percent(profile.serialIdle), percent(profile.rest),
            ])
            let tokensPerSecond = Double(n) / total * 1000
            table.rows.append([
                kind.rawValue, "\(config.parameterCount)", fmt(total, 1), fmt(tokensPerSecond, 0),
                fmt(config.trainingFlopsPerToken * tokensPerSecond / 1e9, 1),
                fmt(median(gradients), 1), fmt(median(upd), 1),
            ])
        }
        print(table.render())
        print(shares.render())
        print(
            "shares of threads × wall time (\(Threads.count) threads): GEMM micro-kernels and operand packing inside "
                + "ngpt's GEMM, attention's products included (0 with OpenBLAS), threads waiting for the others inside "
                + "parallel kernels, cores idle while one thread runs serial code, and the rest (row kernels, "
                + "attention's softmax, loss, optimiser)")
        print(
            "GFLOP/s counts 6N + 12·L·d·T per token (nanoGPT/PaLM); tokens per step: "
                + "\(batchSize * (try sizes.model.context))"
        )
    }
}
