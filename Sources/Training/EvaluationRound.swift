import Cluster
import Common
import DataPipeline
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// An evaluation: the mean loss on the fixed validation windows, a greedy sample, and the checkpoint(s).
final class EvaluationRound {
    let model: LanguageModel
    let tokenizer: any TextTokenizer
    let windows: ValidationWindows
    let config: TrainConfig
    /// Whether to decode the greedy sample (only where it is printed).
    let samples: Bool

    /// Bits per byte for one nat per token on these windows: their token count over ln 2 × their text's bytes.
    let bitsPerNat: Double

    init(model: LanguageModel, data: PreparedData, config: TrainConfig, samples: Bool = true) throws {
        self.model = model
        self.samples = samples
        tokenizer = data.tokenizer
        windows = try ValidationWindows(
            tokens: data.validation, context: config.model.context, maxWindows: config.output.evalWindows)
        bitsPerNat = try Self.bitsPerNat(windows, tokenizer: data.tokenizer)
        self.config = config
    }

    /// The factor from nats per token to bits per byte on a set of validation windows.
    static func bitsPerNat(_ windows: ValidationWindows, tokenizer: any TextTokenizer) throws -> Double {
        let bytes = windows.targetBytes(byteLengths: try tokenizer.byteLengths())
        return Double(windows.count * windows.context) / (log(2) * Double(max(1, bytes)))
    }

    /// Evaluates, updates the best loss and checkpoints (latest, and best when improved).
    func run(state: inout CheckpointState, lr: Double, save: (CheckpointState, _ best: Bool) throws -> Void) throws
        -> EvalReport
    {
        let started = DispatchTime.now().uptimeNanoseconds
        let windows = self.windows
        let estimate = Evaluation.estimate(
            model: model, windows: windows.count, context: config.model.context, batch: config.schedule.batchSize
        ) {
            windows.fill(window: $0, inputs: $1, targets: $2)
        }
        state.valLoss = estimate.mean
        let improved = state.valLoss < state.bestValLoss
        if improved { state.bestValLoss = state.valLoss }
        let sample =
            config.output.sampleTokens > 0 && samples
            ? ((try? greedySample(model: model, tokenizer: tokenizer, tokens: config.output.sampleTokens)) ?? "") : ""
        try save(state, improved)
        return EvalReport(
            step: state.step, tokens: state.tokens, valLoss: state.valLoss, bestValLoss: state.bestValLoss,
            improved: improved,
            valBitsPerByte: state.valLoss * bitsPerNat, valLossStandardError: estimate.standardError,
            lr: lr, trainSeconds: state.wallSeconds,
            evalSeconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9,
            sample: sample)
    }
}
