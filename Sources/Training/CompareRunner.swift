import Common
import DataPipeline
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// What `ngpt-compare` runs: both arms on identical data, tokenizer, batch, context, budget and validation windows,
/// each with its own recipe and learning rate.
public struct CompareOptions {
    public var directory: String
    public var seeds: [Int]
    public var gptLRs: [Double]
    public var ngptLRs: [Double]
    /// Fractions of the step budget at which nGPT is also trained with its own full schedule (budget ladder).
    public var ladder: [Double]
    /// Training settings shared by every run (the keys of ngpt-train's flags).
    public var training: [String: Any]
    public var command: String

    public init(
        directory: String, seeds: [Int], gptLRs: [Double], ngptLRs: [Double], ladder: [Double], training: [String: Any],
        command: String
    ) {
        self.directory = directory; self.seeds = seeds; self.gptLRs = gptLRs; self.ngptLRs = ngptLRs;
        self.ladder = ladder
        self.training = training; self.command = command
    }
}

/// The machine-readable result (summary.json).
public struct CompareSummary: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var arm: String, lr: Double, seed: Int, steps: Int, finalValLoss: Double, secondsPerStep: Double,
            directory: String
        /// The final validation loss in bits per byte (`finalValLoss × bitsPerNat`).
        public var finalValBitsPerByte: Double = .nan
    }
    /// Bits per byte for one nat per token on the comparison's validation windows (the same for every run).
    public var bitsPerNat: Double
    public var budgetSteps: Int
    public var tokensPerStep: Int
    public var tokensSeen: Int
    public var seeds: [Int]
    public var gptLR: Double, ngptLR: Double
    public var lrSweep: [Run]
    public var runs: [Run]
    public var perSeed: [SeedResult]
    public var speedup: Spread?
    public var wallClockSpeedup: Spread?
    public var gptFinal: Spread?, ngptFinal: Spread?
    public var verdict: String
    public var ladder: [Run]
    public var ladderSpeedup: Double?
    public var secondsTotal: Double
    public var machine: String
    public var date: String
    public var command: String
}

public final class CompareRunner {
    public let options: CompareOptions
    let printer: ProgressPrinter
    let stop: StopRequest?
    var finishedRunSeconds: [Double] = []

    public init(options: CompareOptions, printer: ProgressPrinter = ProgressPrinter(), stop: StopRequest? = nil) throws
    {
        guard !options.seeds.isEmpty else { throw UserError("--seeds needs at least one seed") }
        guard !options.gptLRs.isEmpty, !options.ngptLRs.isEmpty else {
            throw UserError("--gpt-lr and --ngpt-lr need at least one value")
        }
        for k in ["model", "lr", "seed", "out", "warmup", "weight-decay"] where options.training[k] != nil {
            throw UserError("--\(k) is chosen per arm by ngpt-compare; leave it out")
        }
        self.options = options
        self.printer = printer
        self.stop = stop
        var probe = TrainConfig()
        try probe.apply(options.training, source: "training flags")
        try probe.validate()
        try Directories.create(options.directory + "/runs", fix: "choose a writable --dir")
    }

    var budget: Int {
        var c = TrainConfig()
        try? c.apply(options.training, source: "")
        return c.steps
    }

    struct Planned {
        let arm: ModelKind; let lr: Double; let seed: Int; let steps: Int
        var name: String { "\(arm.rawValue)-lr\(lr)-seed\(seed)" + (steps == 0 ? "" : "-steps\(steps)") }
    }

    /// Trains (or reuses, or resumes) one run and returns its curve.
    func train(_ p: Planned, index: Int, total: Int, remainingRuns: Int) throws -> (Curve, CompareSummary.Run) {
        let dir = options.directory + "/runs/" + p.name
        var settings = options.training
        settings["model"] = p.arm.rawValue
        settings["lr"] = p.lr
        settings["seed"] = p.seed
        settings["out"] = dir
        if p.steps > 0 { settings["steps"] = p.steps }
        let steps = (settings["steps"] as? Int) ?? budget
        let ckpt = dir + "/latest.safetensors", metrics = dir + "/metrics.jsonl"
        var resume: String?, force = false
        if FileManager.default.fileExists(atPath: ckpt) {
            if let meta = try? Checkpoint.read(try SafeTensors(path: ckpt), path: ckpt) {
                if meta.step < steps {
                    resume = dir
                } else if let curve = try? Curve.read(metrics: metrics), curve.isComplete(through: meta.step) {
                    printer.line(
                        "[\(index)/\(total)] \(p.name): finished earlier, reused (val loss "
                            + "\(String(format: "%.4f", curve.finalLoss)))"
                    )
                    return (
                        curve,
                        .init(
                            arm: p.arm.rawValue, lr: p.lr, seed: p.seed, steps: meta.step,
                            finalValLoss: curve.finalLoss,
                            secondsPerStep: meta.wallSeconds / Double(max(1, meta.step)), directory: dir)
                    )
                } else {
                    printer.line(
                        "[\(index)/\(total)] \(p.name): its metrics.jsonl is missing or damaged; training it again")
                    force = true
                }
            } else {
                printer.line("[\(index)/\(total)] \(p.name): its checkpoint is unreadable; training it again")
                force = true
            }
        } else if FileManager.default.fileExists(atPath: dir) {
            force = true  // a run stopped before its first checkpoint
        }
        let meanRunSeconds = finishedRunSeconds.reduce(0, +) / Double(max(1, finishedRunSeconds.count))
        let eta =
            finishedRunSeconds.isEmpty
            ? "" : " (about \(formatDuration(meanRunSeconds * Double(remainingRuns))) left overall)"
        printer.line("[\(index)/\(total)] \(p.name): \(resume == nil ? "training" : "resuming") \(steps) steps\(eta)")
        let started = DispatchTime.now().uptimeNanoseconds
        let trainer = try Trainer(
            fileSettings: nil, flagSettings: resume == nil ? settings : ["steps": steps], resume: resume, force: force,
            printer: printer, stop: stop)
        trainer.quiet = true
        printer.prefix = "  [\(index)/\(total)] \(p.arm.rawValue) lr \(p.lr) seed \(p.seed): "
        defer { printer.prefix = "" }
        let summary = try trainer.run()
        if let signal = summary.interrupted {
            throw UserError(
                "\(signal): stopped in \(p.name); run the same ngpt-compare command again to continue (finished "
                    + "runs are reused)"
            )
        }
        finishedRunSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        let curve = try Curve.read(metrics: metrics)
        guard curve.isComplete(through: summary.steps) else {
            throw UserError(
                "\(metrics) lacks the evaluations of the run just trained; delete \(dir) and run the comparison again")
        }
        return (
            curve,
            .init(
                arm: p.arm.rawValue, lr: p.lr, seed: p.seed, steps: summary.steps, finalValLoss: curve.finalLoss,
                secondsPerStep: summary.trainSeconds / Double(max(1, summary.steps)), directory: dir)
        )
    }

    public func run() throws -> CompareSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        let N = budget
        var c = TrainConfig()
        try c.apply(options.training, source: "")
        // The data every run trains on (prepared here first: the runs then reuse the cache) and its bits per nat.
        let data = try DataPreparation.prepare(
            c.dataOptions, context: c.context, log: PrepareLog(line: { [printer] in printer.line($0) }))
        let windows = try ValidationWindows(tokens: data.validation, context: c.context, maxWindows: c.evalWindows)
        let bitsPerNat = try EvaluationRound.bitsPerNat(windows, tokenizer: data.tokenizer)
        let first = options.seeds[0]
        // 1. learning rates on the first seed, per arm; 2. the other seeds at each arm's best; 3. the nGPT ladder.
        var plan: [Planned] =
            options.gptLRs.map { Planned(arm: .gpt, lr: $0, seed: first, steps: 0) }
            + options.ngptLRs.map { Planned(arm: .ngpt, lr: $0, seed: first, steps: 0) }
        let laterRuns = (options.seeds.count - 1) * 2 + options.ladder.count * options.seeds.count
        let total = plan.count + laterRuns
        var curves: [String: Curve] = [:], runs: [String: CompareSummary.Run] = [:]
        var index = 0
        for p in plan {
            index += 1
            (curves[p.name], runs[p.name]) = try train(p, index: index, total: total, remainingRuns: total - index + 1)
        }
        func best(_ arm: ModelKind, _ lrs: [Double]) -> Double {
            lrs.min {
                (runs[Planned(arm: arm, lr: $0, seed: first, steps: 0).name]?.finalValLoss ?? .infinity)
                    < (runs[Planned(arm: arm, lr: $1, seed: first, steps: 0).name]?.finalValLoss ?? .infinity)
            } ?? lrs[0]
        }
        let gptLR = best(.gpt, options.gptLRs), ngptLR = best(.ngpt, options.ngptLRs)
        if options.gptLRs.count > 1 || options.ngptLRs.count > 1 {
            printer.line("learning rates by final validation loss on seed \(first): GPT \(gptLR), nGPT \(ngptLR)")
        }
        plan = options.seeds.dropFirst().flatMap {
            [Planned(arm: .gpt, lr: gptLR, seed: $0, steps: 0), Planned(arm: .ngpt, lr: ngptLR, seed: $0, steps: 0)]
        }
        plan += options.seeds.flatMap { seed in
            options.ladder.map {
                Planned(arm: .ngpt, lr: ngptLR, seed: seed, steps: max(1, Int((Double(N) * $0).rounded())))
            }
        }
        for p in plan {
            index += 1
            (curves[p.name], runs[p.name]) = try train(p, index: index, total: total, remainingRuns: total - index + 1)
        }

        // Analysis.
        var perSeed: [SeedResult] = []
        for seed in options.seeds {
            guard let g = curves[Planned(arm: .gpt, lr: gptLR, seed: seed, steps: 0).name],
                let n = curves[Planned(arm: .ngpt, lr: ngptLR, seed: seed, steps: 0).name]
            else { continue }
            perSeed.append(SeedResult.analyse(seed: seed, gpt: g, ngpt: n, budget: N))
        }
        var ladderRuns: [CompareSummary.Run] = []
        var ladderValues: [Double] = []
        for seed in options.seeds where !options.ladder.isEmpty {
            let rungs = options.ladder.map {
                Planned(arm: .ngpt, lr: ngptLR, seed: seed, steps: max(1, Int((Double(N) * $0).rounded())))
            }
            let full = Planned(arm: .ngpt, lr: ngptLR, seed: seed, steps: 0)
            let budgets = rungs.map(\.steps) + [N]
            let finals = rungs.map { runs[$0.name]?.finalValLoss ?? .nan } + [runs[full.name]?.finalValLoss ?? .nan]
            ladderRuns += rungs.compactMap { runs[$0.name] }
            if let target = perSeed.first(where: { $0.seed == seed })?.gptFinal,
                let s = ladderSpeedup(budgets: budgets, finals: finals, target: target, fullBudget: N)
            {
                ladderValues.append(s)
            }
        }
        for (key, run) in runs { runs[key]?.finalValBitsPerByte = run.finalValLoss * bitsPerNat }
        let summary = CompareSummary(
            bitsPerNat: bitsPerNat, budgetSteps: N, tokensPerStep: c.tokensPerStep, tokensSeen: N * c.tokensPerStep,
            seeds: options.seeds,
            gptLR: gptLR, ngptLR: ngptLR,
            lrSweep: options.gptLRs.compactMap { runs[Planned(arm: .gpt, lr: $0, seed: first, steps: 0).name] }
                + options.ngptLRs.compactMap { runs[Planned(arm: .ngpt, lr: $0, seed: first, steps: 0).name] },
            runs: options.seeds.flatMap { s in
                [
                    runs[Planned(arm: .gpt, lr: gptLR, seed: s, steps: 0).name],
                    runs[Planned(arm: .ngpt, lr: ngptLR, seed: s, steps: 0).name],
                ].compactMap { $0 }
            },
            perSeed: perSeed, speedup: Spread(perSeed.compactMap(\.speedup)),
            wallClockSpeedup: Spread(perSeed.compactMap(\.wallClockSpeedup)),
            gptFinal: Spread(perSeed.map(\.gptFinal)), ngptFinal: Spread(perSeed.map(\.ngptFinal)),
            verdict: Verdict.text(gptFinals: perSeed.map(\.gptFinal), ngptFinals: perSeed.map(\.ngptFinal)),
            ladder: ladderRuns,
            ladderSpeedup: ladderValues.isEmpty ? nil : ladderValues.reduce(0, +) / Double(ladderValues.count),
            secondsTotal: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9,
            machine:
                "\(ProcessInfo.processInfo.activeProcessorCount) cores; "
                + "\(GEMM.withPrecision(c.gemmPrecision) { Threads.startupLine })",
            date: ISO8601DateFormatter().string(from: Date()), command: options.command)
        try writeOutputs(summary, curves: curves, gptLR: gptLR, ngptLR: ngptLR, config: c)
        return summary
    }

    func writeOutputs(_ s: CompareSummary, curves: [String: Curve], gptLR: Double, ngptLR: Double, config: TrainConfig)
        throws
    {
        let dir = options.directory
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write([UInt8](try encoder.encode(s)), to: dir + "/summary.json")

        // Plots: validation loss vs step and vs training wall-clock, all seeds, with the target line.
        let target = s.gptFinal?.mean ?? .nan
        var byStep = LineChart(
            title: "Validation loss vs step", xLabel: "optimiser step", yLabel: "validation loss (nats/token)")
        var byTime = LineChart(
            title: "Validation loss vs training time", xLabel: "training wall-clock (s)",
            yLabel: "validation loss (nats/token)")
        for (i, seed) in s.seeds.enumerated() {
            for (arm, lr, color) in [(ModelKind.gpt, gptLR, "#d62728"), (.ngpt, ngptLR, "#1f77b4")] {
                guard let c = curves[Planned(arm: arm, lr: lr, seed: seed, steps: 0).name] else { continue }
                let label = "\(arm.displayName) seed \(seed)"
                byStep.series.append(
                    .init(label: label, color: color, dashed: i > 0, x: c.steps.map(Double.init), y: c.losses))
                byTime.series.append(.init(label: label, color: color, dashed: i > 0, x: c.seconds, y: c.losses))
            }
        }
        byStep.reference = (target, "GPT final (mean)")
        byTime.reference = (target, "GPT final (mean)")
        // The learning-rate sweep: final validation loss against log10(lr), one line per arm.
        var bySweep = LineChart(
            title: "Learning-rate sweep (seed \(s.seeds[0]))", xLabel: "log10(learning rate)",
            yLabel: "final validation loss (nats/token)")
        for (arm, color) in [("gpt", "#d62728"), ("ngpt", "#1f77b4")] {
            let points = s.lrSweep.filter { $0.arm == arm }.sorted { $0.lr < $1.lr }
            if points.count > 1 {
                bySweep.series.append(
                    .init(
                        label: ModelKind(rawValue: arm)?.displayName ?? arm, color: color,
                        x: points.map { log10($0.lr) }, y: points.map(\.finalValLoss)))
            }
        }
        var charts = [("loss-vs-step", byStep), ("loss-vs-time", byTime)]
        if !bySweep.series.isEmpty { charts.append(("lr-sweep", bySweep)) }
        var pngs: [String] = []
        for (name, chart) in charts {
            try AtomicFile.write(chart.svg(), to: dir + "/\(name).svg")
            if let png = renderPNG(svgPath: dir + "/\(name).svg") { pngs.append(png) }
        }
        try AtomicFile.write(report(s, config: config, havePNG: !pngs.isEmpty), to: dir + "/report.md")
    }

    func report(_ s: CompareSummary, config c: TrainConfig, havePNG: Bool) -> String {
        func f(_ x: Double?, _ d: Int = 4) -> String {
            x.map { $0.isFinite ? String(format: "%.\(d)f", $0) : "-" } ?? "-"
        }
        func spread(_ x: Spread?, _ d: Int = 2) -> String {
            x.map { "\(f($0.mean, d)) (range \(f($0.min, d))–\(f($0.max, d)), sd \(f($0.std, d)), n = \($0.count))" }
                ?? "-"
        }
        var r = "# nGPT vs GPT: step-count comparison\n\n"
        r += "**Verdict:** \(s.verdict).\n\n"
        r +=
            "- Step budget N = \(s.budgetSteps) (\(s.tokensPerStep) tokens/step, \(s.tokensSeen) tokens per run); "
            + "seeds \(s.seeds.map(String.init).joined(separator: ", ")).\n"
        r +=
            "- Model: d \(c.dim), \(c.layers) layers, \(c.heads) heads (head size \(c.dim / c.heads)), SwiGLU "
            + "\(c.mlpHidden), context \(c.context), vocab \(c.vocabSize).\n"
        r += "- Learning rates (best final validation loss on seed \(s.seeds[0])): GPT \(s.gptLR), nGPT \(s.ngptLR).\n"
        r += "- Speedup N/s* (steps nGPT needs to reach the GPT's final validation loss): \(spread(s.speedup)).\n"
        r += "- Wall-clock speedup (step speedup × GPT s/step ÷ nGPT s/step): \(spread(s.wallClockSpeedup)).\n"
        if !s.ladder.isEmpty {
            r +=
                "- Budget-ladder speedup (nGPT at \(s.ladder.map { String($0.steps) }.joined(separator: ", ")) "
                + "steps, own schedules; log-budget interpolation): \(f(s.ladderSpeedup, 2)).\n"
        }
        r += "- Final validation loss (nats/token): GPT \(spread(s.gptFinal, 4)); nGPT \(spread(s.ngptFinal, 4)).\n"
        r +=
            "- In bits per byte of the validation text (× \(f(s.bitsPerNat)), vocabulary-independent): GPT "
            + "\(f((s.gptFinal?.mean ?? .nan) * s.bitsPerNat)); nGPT "
            + "\(f((s.ngptFinal?.mean ?? .nan) * s.bitsPerNat)) (means).\n\n"
        r +=
            "| seed | GPT final | nGPT final | GPT bits/byte | nGPT bits/byte | nGPT steps to GPT final | speedup "
            + "N/s* | reverse (GPT steps to nGPT final)/N | GPT s/step | nGPT s/step | wall-clock speedup "
            + "|\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        for p in s.perSeed {
            r +=
                "| \(p.seed) | \(f(p.gptFinal)) | \(f(p.ngptFinal)) | \(f(p.gptFinal * s.bitsPerNat)) | "
                + "\(f(p.ngptFinal * s.bitsPerNat)) | \(f(p.ngptStepsToTarget, 0)) | \(f(p.speedup, 2)) | "
                + "\(f(p.reverseRatio, 2)) | \(f(p.gptSecondsPerStep, 3)) | \(f(p.ngptSecondsPerStep, 3)) | "
                + "\(f(p.wallClockSpeedup, 2)) |\n"
        }
        if s.lrSweep.count > 2 {
            r +=
                "\n**Learning-rate sweep** (seed \(s.seeds[0]), final validation loss):\n\n| arm | lr | final val "
                + "loss | bits/byte |\n|---|---|---|---|\n"
            for run in s.lrSweep {
                r += "| \(run.arm) | \(run.lr) | \(f(run.finalValLoss)) | \(f(run.finalValBitsPerByte)) |\n"
            }
            r += "\n![learning-rate sweep](lr-sweep.\(havePNG ? "png" : "svg"))\n"
        }
        if !s.ladder.isEmpty {
            r += "\n**Budget ladder** (nGPT, lr \(s.ngptLR)):\n\n| seed | steps | final val loss |\n|---|---|---|\n"
            for run in s.ladder { r += "| \(run.seed) | \(run.steps) | \(f(run.finalValLoss)) |\n" }
        }
        let ext = havePNG ? "png" : "svg"
        r += "\n![validation loss vs step](loss-vs-step.\(ext))\n\n![validation loss vs time](loss-vs-time.\(ext))\n\n"
        var trained: [String: Double] = [:]  // every run once: its steps × seconds per step
        for run in s.lrSweep + s.runs + s.ladder { trained[run.directory] = Double(run.steps) * run.secondsPerStep }
        r += "## How it was run\n\n```\n\(s.command)\n```\n\n- Machine: \(s.machine)\n- Date: \(s.date)\n"
        r +=
            "- Training time of the \(trained.count) runs (evaluations excluded): "
            + "\(formatDuration(trained.values.reduce(0, +))); this invocation: \(formatDuration(s.secondsTotal)) "
            + "(finished runs are reused)\n"
        r +=
            "- Method: both arms see the same data order (same seed), tokenizer, batch, context, budget and "
            + "validation windows; GPT uses AdamW with weight decay \(ModelKind.gpt.recipe.weightDecay) and "
            + "\(ModelKind.gpt.recipe.warmupPercent) % warmup, nGPT Adam without decay or warmup with "
            + "renormalisation; both decay by a cosine to \(c.minLr) and clip the gradient norm at "
            + "\(c.gradClip == 0 ? "∞ (off)" : "\(c.gradClip)"). s* is the first step at which nGPT's "
            + "validation curve, linearly interpolated between evaluations, reaches the GPT's "
            + "final loss of the same seed.\n"
        return r
    }
}
