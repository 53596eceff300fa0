import Common
import Foundation
import NGPT
import Runs

/// A comparison's outputs: summary.json, the plots (validation loss against step and training time, the
/// learning-rate sweep; SVG, and PNG where rsvg-convert exists) and report.md, for any number of arms.
struct CompareReport {
    let summary: CompareSummary
    let options: CompareOptions
    let curves: [String: Curve]
    let config: TrainConfig

    /// One color per arm, in order (the baseline first).
    static let palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    func color(_ index: Int) -> String { Self.palette[index % Self.palette.count] }

    func write() throws {
        let dir = options.directory
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write([UInt8](try encoder.encode(summary)), to: dir + "/summary.json")
        var pngs: [String] = []
        for (name, chart) in charts() {
            try AtomicFile.write(chart.svg(), to: dir + "/\(name).svg")
            if let png = renderPNG(svgPath: dir + "/\(name).svg") { pngs.append(png) }
        }
        try AtomicFile.write(report(havePNG: !pngs.isEmpty), to: dir + "/report.md")
    }

    /// Validation loss against step and against training wall-clock (every arm at its learning rate, every seed,
    /// the baseline's mean final loss as the target line), and the learning-rate sweep (one line per arm).
    func charts() -> [(String, LineChart)] {
        let s = summary
        let target = s.arms.first?.finalLoss?.mean ?? .nan
        var byStep = LineChart(
            title: "Validation loss vs step", xLabel: "optimiser step", yLabel: "validation loss (nats/token)")
        var byTime = LineChart(
            title: "Validation loss vs training time", xLabel: "training wall-clock (s)",
            yLabel: "validation loss (nats/token)")
        for (i, seed) in s.seeds.enumerated() {
            for (a, arm) in s.arms.enumerated() {
                guard let c = curves[PlannedRun(arm: arm.name, lr: arm.lr, seed: seed, steps: 0).name] else { continue }
                let label = "\(arm.displayName) seed \(seed)"
                byStep.series.append(
                    .init(label: label, color: color(a), dashed: i > 0, x: c.steps.map(Double.init), y: c.losses))
                byTime.series.append(.init(label: label, color: color(a), dashed: i > 0, x: c.seconds, y: c.losses))
            }
        }
        let baselineName = s.arms.first?.displayName ?? "baseline"
        byStep.reference = (target, "\(baselineName) final (mean)")
        byTime.reference = (target, "\(baselineName) final (mean)")
        var bySweep = LineChart(
            title: "Learning-rate sweep (seed \(s.seeds[0]))", xLabel: "log10(learning rate)",
            yLabel: "final validation loss (nats/token)")
        for (a, arm) in s.arms.enumerated() {
            let points = s.lrSweep.filter { $0.arm == arm.name }.sorted { $0.lr < $1.lr }
            if points.count > 1 {
                bySweep.series.append(
                    .init(
                        label: arm.displayName, color: color(a), x: points.map { log10($0.lr) },
                        y: points.map(\.finalValLoss)))
            }
        }
        var charts = [("loss-vs-step", byStep), ("loss-vs-time", byTime)]
        if !bySweep.series.isEmpty { charts.append(("lr-sweep", bySweep)) }
        return charts
    }

    func report(havePNG: Bool) -> String {
        let s = summary, c = config
        func f(_ x: Double?, _ d: Int = 4) -> String {
            x.map { $0.isFinite ? String(format: "%.\(d)f", $0) : "-" } ?? "-"
        }
        func spread(_ x: Spread?, _ d: Int = 2) -> String {
            x.map { "\(f($0.mean, d)) (range \(f($0.min, d))–\(f($0.max, d)), sd \(f($0.std, d)), n = \($0.count))" }
                ?? "-"
        }
        guard let base = s.arms.first else { return "# Comparison\n\nNo arms.\n" }
        let names = s.arms.map(\.displayName)
        var r = "# \(names.dropFirst().joined(separator: ", ")) vs \(base.displayName): step-count comparison\n\n"
        for arm in s.contenders { r += "**Verdict (\(arm.displayName)):** \(arm.verdict ?? "-").\n\n" }
        r +=
            "- Step budget N = \(s.budgetSteps) (\(s.tokensPerStep) tokens/step, \(s.tokensSeen) tokens per run); "
            + "seeds \(s.seeds.map(String.init).joined(separator: ", ")).\n"
        r +=
            "- Model: d \(c.model.dim), \(c.model.layers) layers, \(c.model.heads) heads (head size "
            + "\(c.model.headDim)), SwiGLU "
            + "\(c.model.mlpHidden), context \(c.model.context), vocab \(c.model.vocabSize).\n"
        r +=
            "- Arms (the first is the baseline): "
            + s.arms.map { arm in
                let overrides = options.arms.first { $0.name == arm.name }?.overrides ?? [:]
                let extra = overrides.names.map { "\($0) \(overrides[$0]!)" }.joined(separator: ", ")
                return "\(arm.displayName) (\(arm.kind)\(extra.isEmpty ? "" : "; " + extra))"
            }.joined(separator: ", ") + ".\n"
        r +=
            "- Learning rates (best final validation loss on seed \(s.seeds[0])): "
            + s.arms.map { "\($0.displayName) \($0.lr)" }.joined(separator: ", ") + ".\n"
        for arm in s.arms { if let edge = arm.gridEdge { r += "- **Not bracketed:** \(edge).\n" } }
        for arm in s.contenders {
            r +=
                "- \(arm.displayName): speedup N/s* (steps it needs to reach the \(base.displayName)'s final "
                + "validation loss) \(spread(arm.speedup)); wall-clock speedup (step speedup × "
                + "\(base.displayName) s/step ÷ \(arm.displayName) s/step) \(spread(arm.wallClockSpeedup)); "
                + "N/s_stay, from the step after which it stays at or below that loss (one lucky evaluation below it "
                + "does not count) \(spread(arm.stableSpeedup))"
            if !arm.ladder.isEmpty {
                let rungs = Set(arm.ladder.map(\.steps)).sorted().map(String.init).joined(separator: ", ")
                r +=
                    "; budget-ladder speedup (at \(rungs) "
                    + "steps, own schedules; log-budget interpolation) \(f(arm.ladderSpeedup, 2))"
            }
            r += ".\n"
        }
        r +=
            "- Final validation loss (nats/token): "
            + s.arms.map { "\($0.displayName) \(spread($0.finalLoss, 4))" }.joined(separator: "; ") + ".\n"
        r +=
            "- In bits per byte of the validation text (× \(f(s.bitsPerNat)), vocabulary-independent): "
            + s.arms.map { "\($0.displayName) \(f(($0.finalLoss?.mean ?? .nan) * s.bitsPerNat))" }
            .joined(separator: "; ") + " (means).\n\n"
        for arm in s.contenders {
            let (b, a) = (base.displayName, arm.displayName)
            r +=
                "| seed | \(b) final | \(a) final | \(b) bits/byte | \(a) bits/byte | \(a) steps to \(b) final "
                + "| speedup N/s* | s_stay | N/s_stay | reverse (\(b) steps to \(a) final)/N | \(b) s/step "
                + "| \(a) s/step | wall-clock speedup |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            for p in arm.perSeed {
                r +=
                    "| \(p.seed) | \(f(p.baselineFinal)) | \(f(p.armFinal)) | \(f(p.baselineFinal * s.bitsPerNat)) | "
                    + "\(f(p.armFinal * s.bitsPerNat)) | \(f(p.armStepsToTarget, 0)) | \(f(p.speedup, 2)) | "
                    + "\(f(p.armStepsToStay, 0)) | \(f(p.stableSpeedup, 2)) | "
                    + "\(f(p.reverseRatio, 2)) | \(f(p.baselineSecondsPerStep, 3)) | \(f(p.armSecondsPerStep, 3)) | "
                    + "\(f(p.wallClockSpeedup, 2)) |\n"
            }
            r += "\n"
        }
        if s.lrSweep.count > s.arms.count {
            r +=
                "**Learning-rate sweep** (seed \(s.seeds[0]), final validation loss):\n\n| arm | lr | final val "
                + "loss | bits/byte |\n|---|---|---|---|\n"
            for run in s.lrSweep {
                r += "| \(run.arm) | \(run.lr) | \(f(run.finalValLoss)) | \(f(run.finalValBitsPerByte)) |\n"
            }
            r += "\n![learning-rate sweep](lr-sweep.\(havePNG ? "png" : "svg"))\n\n"
        }
        for arm in s.contenders where !arm.ladder.isEmpty {
            r +=
                "**Budget ladder** (\(arm.displayName), lr \(arm.lr)):\n\n| seed | steps | final val loss |\n"
                + "|---|---|---|\n"
            for run in arm.ladder { r += "| \(run.seed) | \(run.steps) | \(f(run.finalValLoss)) |\n" }
            r += "\n"
        }
        let ext = havePNG ? "png" : "svg"
        r += "![validation loss vs step](loss-vs-step.\(ext))\n\n![validation loss vs time](loss-vs-time.\(ext))\n\n"
        var trained: [String: Double] = [:]  // every run once: its steps × seconds per step
        for run in s.lrSweep + s.arms.flatMap({ $0.runs + $0.ladder }) {
            trained[run.directory] = Double(run.steps) * run.secondsPerStep
        }
        let clip = c.schedule.gradClip == 0 ? "∞ (off)" : "\(c.schedule.gradClip)"
        r += "## How it was run\n\n```\n\(s.command)\n```\n\n- Machine: \(s.machine)\n- Date: \(s.date)\n"
        r +=
            "- Training time of the \(trained.count) runs (evaluations excluded): "
            + "\(formatDuration(trained.values.reduce(0, +))); this invocation: \(formatDuration(s.secondsTotal)) "
            + "(finished runs are reused)\n"
        r +=
            "- Method: every arm sees the same data order (same seed), tokenizer, batch, context, budget and "
            + "validation windows, with its model's recipe (GPT: AdamW with weight decay "
            + "\(ModelKind.gpt.recipe.weightDecay) and \(ModelKind.gpt.recipe.warmupPercent) % warmup; nGPT: Adam "
            + "without decay or warmup, with renormalisation) and its own overrides; all decay by a cosine to "
            + "their recipe's floor (0; 10 % of the peak for νGPT) and clip the gradient norm at \(clip). s* is the "
            + "first step at which an arm's validation curve, linearly interpolated between evaluations, reaches "
            + "the baseline's final loss of the same seed; s_stay the step after which it stays at or below it.\n"
        let gaps = s.contenders.flatMap(\.perSeed).map { abs($0.armFinal - $0.baselineFinal) }.filter(\.isFinite)
        r +=
            "- Evaluation noise: each evaluation predicts \(s.evaluationTokens) tokens (fixed windows); the standard "
            + "error of its mean loss, from the spread of its batches, is \(f(s.evaluationStandardError, 4)) nats "
            + "(median over the runs' final evaluations; a bound on how much another draw of windows would move one "
            + "loss: every run is scored on the same windows, so the differences between runs vary less)"
            + (gaps.isEmpty
                ? ".\n"
                : String(
                    format: "; the final-loss gaps measured here are %.4f–%.4f nats, %.0f–%.0f× that noise.\n",
                    gaps.min()!, gaps.max()!, gaps.min()! / s.evaluationStandardError,
                    gaps.max()! / s.evaluationStandardError))
        return r
    }
}
