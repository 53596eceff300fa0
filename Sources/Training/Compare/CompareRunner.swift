import Common
import DataPipeline
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// Trains a comparison's runs in the order of its plan (`ComparePlan`), reusing finished runs and resuming
/// interrupted ones, then hands the curves to the analysis (`CompareSummary.analyse`) and the report
/// (`CompareReport`).
public final class CompareRunner {
    public let options: CompareOptions
    /// The settings every run shares, as a configuration (data, context, budget, evaluation windows).
    public let shared: TrainConfig
    let printer: ProgressPrinter
    let stop: StopRequest?
    var finishedRunSeconds: [Double] = []

    public init(options: CompareOptions, printer: ProgressPrinter = ProgressPrinter(), stop: StopRequest? = nil) throws
    {
        try options.validate()
        self.options = options
        self.printer = printer
        self.stop = stop
        var shared = TrainConfig()
        try shared.apply(options.training, source: "training flags")
        self.shared = shared
        for arm in options.arms {
            var probe = shared
            try probe.apply(Settings(["model": arm.kind.json]).merging(arm.overrides), source: "--arm \(arm.name)")
            try probe.validate()
        }
        try Directories.create(options.directory + "/runs", fix: "choose a writable --dir")
    }

    var budget: Int { shared.schedule.steps }

    func arm(named name: String) -> CompareArm { options.arms.first { $0.name == name } ?? options.baseline }

    /// Trains (or reuses, or resumes) one run and returns its curve.
    func train(_ p: PlannedRun, index: Int, total: Int, remainingRuns: Int) throws -> (Curve, CompareSummary.Run) {
        let dir = options.directory + "/runs/" + p.name
        let spec = self.arm(named: p.arm)
        var settings = options.training.merging(spec.overrides)
        settings["model"] = spec.kind.json
        settings["lr"] = p.lr.json
        settings["seed"] = p.seed.json
        settings["out"] = dir.json
        if p.steps > 0 { settings["steps"] = p.steps.json }
        let steps = settings["steps"]?.int ?? budget
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
                            arm: p.arm, lr: p.lr, seed: p.seed, steps: meta.step,
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
            fileSettings: nil, flagSettings: resume == nil ? settings : ["steps": steps.json], resume: resume,
            force: force,
            printer: printer, stop: stop)
        trainer.quiet = true
        printer.prefix = "  [\(index)/\(total)] \(p.arm) lr \(p.lr) seed \(p.seed): "
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
                arm: p.arm, lr: p.lr, seed: p.seed, steps: summary.steps, finalValLoss: curve.finalLoss,
                secondsPerStep: summary.trainSeconds / Double(max(1, summary.steps)), directory: dir)
        )
    }

    public func run() throws -> CompareSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        let n = budget
        let c = shared
        // The data every run trains on (prepared here first: the runs then reuse the cache) and its bits per nat.
        let data = try DataPreparation.prepare(
            c.dataOptions, context: c.model.context, log: PrepareLog(line: { [printer] in printer.line($0) }))
        let windows = try ValidationWindows(
            tokens: data.validation, context: c.model.context, maxWindows: c.output.evalWindows)
        let bitsPerNat = try EvaluationRound.bitsPerNat(windows, tokenizer: data.tokenizer)
        let first = options.seeds[0]
        let sweep = ComparePlan.learningRateSweep(options)
        let total = sweep.count + ComparePlan.laterRuns(options, best: [:], budget: n).count
        var curves: [String: Curve] = [:], runs: [String: CompareSummary.Run] = [:]
        var index = 0
        func trainAll(_ plan: [PlannedRun]) throws {
            for p in plan {
                index += 1
                (curves[p.name], runs[p.name]) = try train(
                    p, index: index, total: total, remainingRuns: total - index + 1)
            }
        }
        try trainAll(sweep)
        var best: [String: Double] = [:]
        for arm in options.arms {
            best[arm.name] = arm.learningRates.min {
                (runs[PlannedRun(arm: arm.name, lr: $0, seed: first, steps: 0).name]?.finalValLoss ?? .infinity)
                    < (runs[PlannedRun(arm: arm.name, lr: $1, seed: first, steps: 0).name]?.finalValLoss ?? .infinity)
            }
        }
        if options.arms.contains(where: { $0.learningRates.count > 1 }) {
            let chosen = options.arms.map { "\($0.displayName) \(best[$0.name] ?? 0)" }.joined(separator: ", ")
            printer.line("learning rates by final validation loss on seed \(first): \(chosen)")
        }
        try trainAll(ComparePlan.laterRuns(options, best: best, budget: n))

        let (arms, lrSweep) = CompareSummary.analyse(
            options: options, curves: curves, runs: runs, best: best, budget: n, bitsPerNat: bitsPerNat,
            tokensPerStep: c.tokensPerStep)
        // The noise of one evaluation: the median standard error of the runs' final evaluations.
        let errors = curves.values.compactMap(\.standardErrors.last).filter(\.isFinite).sorted()
        let summary = CompareSummary(
            bitsPerNat: bitsPerNat, evaluationTokens: windows.count * windows.context,
            evaluationStandardError: errors.isEmpty ? .nan : errors[errors.count / 2], budgetSteps: n,
            tokensPerStep: c.tokensPerStep, tokensSeen: n * c.tokensPerStep,
            seeds: options.seeds, baseline: options.baseline.name, arms: arms, lrSweep: lrSweep,
            secondsTotal: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9,
            machine: "\(ProcessInfo.processInfo.activeProcessorCount) cores; "
                + "\(GEMM.withPrecision(c.gemmPrecision) { Threads.startupLine })",
            date: ISO8601DateFormatter().string(from: Date()), command: options.command)
        try CompareReport(summary: summary, options: options, curves: curves, config: c).write()
        return summary
    }
}
