import Cluster
import Common
import Dispatch
import Foundation
import NGPT
import Runs
import Tokenizer

/// One finished optimiser step, as the observers see it.
public struct StepReport {
    public var step: Int, steps: Int
    public var loss: Double, lr: Double, gradNorm: Double
    public var tokens: Int
    /// Training time so far and the mean of the recent steps' times (what rates and the ETA use).
    public var trainSeconds: Double, recentSecondsPerStep: Double
    public var tokensPerSecond: Double
    /// A step whose line and metrics record are kept (every `--log-every` steps, the first and the last).
    public var logged: Bool
}

/// One evaluation (the training clock is stopped while it runs).
public struct EvalReport {
    public var step: Int, tokens: Int
    public var valLoss: Double, bestValLoss: Double, improved: Bool
    /// The validation loss in bits per UTF-8 byte of the text predicted (independent of the tokenizer).
    public var valBitsPerByte: Double
    /// The standard error of `valLoss` as an estimate over windows (`Evaluation.estimate`).
    public var valLossStandardError: Double
    public var lr: Double, trainSeconds: Double, evalSeconds: Double
    /// The greedy sample (empty when disabled).
    public var sample: String
}

/// Watches a run: the progress line and the metrics log are two of these.
public protocol TrainingObserver: AnyObject {
    func stepFinished(_ r: StepReport)
    func evaluated(_ r: EvalReport)
}

/// The progress line (live on a terminal, periodic otherwise) and the evaluation lines.
final class ProgressLine: TrainingObserver {
    let printer: ProgressPrinter
    let flopsPerToken: Double

    init(printer: ProgressPrinter, flopsPerToken: Double) { self.printer = printer; self.flopsPerToken = flopsPerToken }

    func stepFinished(_ r: StepReport) {
        let eta = r.recentSecondsPerStep * Double(r.steps - r.step)
        printer.progress(
            String(
                format:
                    "step %\(String(r.steps).count)d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f ms | %.0f tok/s | "
                    + "%.1f GFLOP/s | ETA %@",
                r.step, r.steps, r.loss, r.lr, r.gradNorm, r.recentSecondsPerStep * 1000, r.tokensPerSecond,
                r.tokensPerSecond * flopsPerToken / 1e9, formatDuration(eta)),
            periodic: r.logged)
    }

    func evaluated(_ r: EvalReport) {
        printer.line(
            String(
                format: "step %d: val loss %.4f, %.4f bits/byte%@ (eval %.1fs)", r.step, r.valLoss, r.valBitsPerByte,
                r.improved ? " (best)" : "", r.evalSeconds))
        if !r.sample.isEmpty { printer.line("  sample: " + r.sample.replacingOccurrences(of: "\n", with: " ↵ ")) }
    }
}

/// `metrics.jsonl`: a record per logged step (with the model's own metrics) and per evaluation.
final class MetricsRecorder: TrainingObserver {
    let directory: RunDirectory
    let model: LanguageModel

    init(directory: RunDirectory, model: LanguageModel) { self.directory = directory; self.model = model }

    func stepFinished(_ r: StepReport) {
        guard r.logged else { return }
        var record: [String: Any] = [
            "type": "train", "step": r.step, "tokens": r.tokens, "train_loss": r.loss, "lr": r.lr,
            "grad_norm": r.gradNorm, "tokens_per_s": r.tokensPerSecond, "wall_s": r.trainSeconds,
        ]
        for (name, metric) in model.trainingMetrics() {
            switch metric {
            case .value(let v): record[name] = v
            case .perLayer(let v): record[name] = v
            }
        }
        directory.appendMetrics(record)
    }

    func evaluated(_ r: EvalReport) {
        var record: [String: Any] = [
            "type": "eval", "step": r.step, "tokens": r.tokens, "val_loss": r.valLoss, "val_bpb": r.valBitsPerByte,
            "best_val_loss": r.bestValLoss, "lr": r.lr, "wall_s": r.trainSeconds, "eval_s": r.evalSeconds,
        ]
        if r.valLossStandardError.isFinite { record["val_loss_se"] = r.valLossStandardError }
        directory.appendMetrics(record)
    }
}

/// The run's own charts, `curves/*.svg`, redrawn from metrics.jsonl after every evaluation (so a run can be looked at
/// while it trains), and as PNG too when the run ends. A chart that cannot be written never stops training.
final class CurvesWriter: TrainingObserver {
    let directory: String

    init(directory: String) { self.directory = directory }

    func stepFinished(_ r: StepReport) {}
    func evaluated(_ r: EvalReport) { draw(png: false) }

    func draw(png: Bool) {
        guard let metrics = try? RunMetrics.read(directory: directory) else { return }
        _ = try? RunCurves.write([metrics], to: directory + "/curves", png: png)
    }
}

/// Where data-parallel training makes every process's gradients those of the global batch: after the backward
/// passes of a step, before clipping and the update. `loss` comes in as this process's mean and leaves as the
/// global batch's.
public protocol GradientSync {
    func synchronize(gradients: FlatTensors, loss: inout Double)
}

/// One process: its gradients are already the global batch's.
public struct LocalGradients: GradientSync {
    public init() {}
    public func synchronize(gradients: FlatTensors, loss: inout Double) {}
}

/// The processes of a data-parallel job: each holds its share's gradients, already scaled by 1/(global
/// micro-batches), so one in-place sum of the flat buffer gives every process the global batch's mean gradient
/// (bitwise the same on all: MPI's sum is computed once and distributed). Times itself.
public final class ProcessGradients: GradientSync {
    let world: World
    public private(set) var totalSeconds = 0.0, calls = 0
    public var meanSeconds: Double { calls == 0 ? 0 : totalSeconds / Double(calls) }

    public init(world: World) { self.world = world }

    public func synchronize(gradients: FlatTensors, loss: inout Double) {
        let started = DispatchTime.now().uptimeNanoseconds
        world.sum(gradients.pointer, count: gradients.count)
        loss = world.sum([loss])[0] / Double(world.size)
        totalSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        calls += 1
    }
}
