import Common
import DataPipeline
import Foundation
import Kernels
import NGPT
import Tokenizer

/// Everything a training run is: architecture, data, schedule, evaluation and output. Each field is one entry of
/// `TrainingKey.all`, which gives its flag, JSON key, help and default; keys are kebab-case flag names
/// (`--mlp-hidden`, `"mlp-hidden"`) in `--config FILE.json`, in a run's `config.json` and in checkpoint metadata.
public struct TrainConfig: Equatable, Sendable {
    // architecture (fixed for a run: must match on resume)
    /// The architecture, held once: every key of the architecture role is a field of it.
    public var model = ModelConfig()
    // data
    public var corpus: String? = nil
    public var dataDir = "corpora"
    public var tokenizer: String? = nil
    public var textField = "text"
    public var valTokens: Int? = nil
    public var tokenizerSampleMB = TokenizerTrainingOptions.defaultSampleBytes / 1_000_000
    /// A base run (directory or .safetensors) whose weights, architecture and tokenizer a fine-tuning run starts from.
    public var initFrom: String? = nil
    // schedule (nil = the model's recipe)
    public var batchSize = 16, gradAccum = 1, steps = 600
    public var lr: Double? = nil
    public var minLr: Double = 0
    public var warmup: Int? = nil
    public var weightDecay: Double? = nil
    public var gradClip: Double = 1.0
    public var seed = 1337
    /// Matrix-product inputs; nil = the machine's preference (`GEMM.preferredPrecision`), fixed when a run starts.
    public var precision: GEMM.Precision? = nil
    // evaluation and output
    public var evalEvery = 100, evalWindows = 64, sampleTokens = 48, logEvery = 10
    public var out: String? = nil
    public var threads = 0
    /// Processes training data-parallel (the MPI launcher's world size; not a flag). Each computes `gradAccum`
    /// micro-batches of `batchSize` per step, so a step sees processes × grad-accum × batch-size sequences.
    public var processes = 1

    public init() {}

    // MARK: resolved values

    public var peakLR: Double { lr ?? model.kind.recipe.learningRate(dim: model.dim) }
    public var warmupSteps: Int { warmup ?? model.kind.recipe.warmupSteps(totalSteps: steps) }
    public var decay: Double { weightDecay ?? model.kind.recipe.weightDecay }
    public var tokensPerStep: Int { processes * batchSize * gradAccum * model.context }
    /// Micro-batches per step over all processes: what a resume on another number of processes keeps.
    public var globalMicroBatches: Int { processes * gradAccum }
    public var gemmPrecision: GEMM.Precision { precision ?? GEMM.preferredPrecision }
    public var dataOptions: DataOptions {
        DataOptions(
            corpus: corpus, dataRoot: dataDir,
            tokenizer: TokenizerTrainingOptions(vocabSize: model.vocabSize, sampleBytes: tokenizerSampleMB * 1_000_000),
            tokenizerModel: tokenizer, textField: textField, validationTokens: valTokens)
    }

    /// The largest step count, evaluation period or log period (a bound, so that no count overflows).
    static let countLimit = 1 << 40

    /// Checks every value; the message names the flag.
    public func validate() throws {
        try model.validate()
        func positive(_ key: String, _ v: Int, atMost limit: Int = Self.countLimit) throws {
            if v <= 0 { throw UserError("--\(key) must be positive, got \(v)") }
            if v > limit { throw UserError("--\(key) \(v) is too large (at most \(limit))") }
        }
        try positive("batch-size", batchSize, atMost: 1 << 20); try positive("grad-accum", gradAccum, atMost: 1 << 20)
        try positive("steps", steps); try positive("eval-every", evalEvery)
        try positive("eval-windows", evalWindows, atMost: 1 << 20)
        try positive("log-every", logEvery)
        guard processes >= 1, processes <= 1 << 16 else {
            throw UserError("the number of processes must be in 1...65536, got \(processes)")
        }
        // Every count below is then an exact Int: tokens per step, tokens over the run, the memory estimate.
        guard
            Double(processes) * Double(gradAccum) * Double(batchSize) * Double(model.context) * Double(steps)
                <= Double(1 << 60),
            model.floatBound(batch: batchSize) <= ModelConfig.maxFloats
        else {
            throw UserError(
                "--steps \(steps) × --batch-size \(batchSize) × --grad-accum \(gradAccum) × --context "
                    + "\(model.context) is "
                    + "too large; lower one of them"
            )
        }
        guard peakLR > 0, peakLR.isFinite, peakLR < 1 else { throw UserError("--lr must be in (0, 1), got \(peakLR)") }
        guard minLr >= 0, minLr <= peakLR else { throw UserError("--min-lr must be in [0, --lr], got \(minLr)") }
        guard warmupSteps >= 0, warmupSteps <= steps else {
            throw UserError("--warmup must be in 0...--steps, got \(warmupSteps)")
        }
        guard decay >= 0, decay < 1 else { throw UserError("--weight-decay must be in [0, 1), got \(decay)") }
        guard gradClip >= 0 else { throw UserError("--grad-clip must be ≥ 0 (0 disables), got \(gradClip)") }
        guard seed >= 0 else { throw UserError("--seed must be ≥ 0, got \(seed)") }
        guard sampleTokens >= 0, sampleTokens <= model.context else {
            throw UserError("--sample-tokens must be in 0...--context, got \(sampleTokens)")
        }
        guard threads >= 0, threads <= 1 << 16 else {
            throw UserError("--threads must be in 0...65536 (0 = all cores), got \(threads)")
        }
        if let v = valTokens, v <= 0 { throw UserError("--val-tokens must be positive, got \(v)") }
        guard tokenizerSampleMB > 0, tokenizerSampleMB <= 1 << 20 else {
            throw UserError("--tokenizer-sample-mb must be in 1...1048576, got \(tokenizerSampleMB)")
        }
        guard !textField.isEmpty else { throw UserError("--text-field must not be empty") }
    }

    // MARK: layering: defaults < config file < flags

    /// Applies settings keyed by `TrainingKey` names (a `--config` file's JSON object, flags, a stored config).
    /// Unknown keys and values of the wrong type are rejected, naming the key.
    public mutating func apply(_ settings: [String: Any], source: String) throws {
        for name in settings.keys.sorted() where TrainingKey.named(name) == nil {
            throw UserError("\(source): unknown key \"\(name)\"" + TrainingKey.suggestion(for: name) { "\"\($0)\"" })
        }
        for key in TrainingKey.all {
            guard let raw = settings[key.name] else { continue }
            guard let value = key.type.coerce(raw) else {
                throw UserError("\(source): \"\(key.name)\" must be \(key.type.description), got \(raw)")
            }
            key.set(&self, value)
        }
    }

    /// The configuration of a run: defaults < `--config` file < flags. On resume, the checkpoint's configuration
    /// replaces the defaults and architecture keys may not change (a resumed run also keeps its directory).
    /// Touches no file: the caller reads the checkpoint and claims the directory.
    ///
    /// A fine-tuning run (`base`, from `--init-from`) takes its architecture and tokenizer from the base run: a
    /// setting that contradicts them is refused, naming both values.
    public static func resolve(
        file: [String: Any]?, flags: [String: Any], resuming: (directory: String, config: TrainConfig)? = nil,
        base: BaseRun? = nil, processes: Int = 1
    ) throws -> TrainConfig {
        guard let (dir, stored) = resuming else {
            var config = TrainConfig()
            if let file { try config.apply(file, source: "--config") }
            try config.apply(flags, source: "flags")
            if let base { try config.adopt(base, explicit: (file ?? [:]).merging(flags) { $1 }) }
            if config.precision == nil { config.precision = GEMM.preferredPrecision }  // recorded, so resume keeps it
            if config.out == nil {
                let stamp = ISO8601DateFormatter.string(
                    from: Date(), timeZone: .current, formatOptions: [.withFullDate, .withTime])
                config.out =
                    "checkpoints/\(config.model.kind.rawValue)-\(stamp.replacingOccurrences(of: ":", with: ""))"
            }
            config.processes = processes
            try config.validate()
            return config
        }
        var config = stored
        for (source, settings) in [("--config", file ?? [:]), ("flags", flags)] {
            var probe = config
            try probe.apply(settings, source: source)
            for key in TrainingKey.all where key.role == .architecture && settings[key.name] != nil {
                let new = key.text(of: probe), old = key.text(of: config)
                if new != old {
                    throw UserError(
                        "\(source) sets \(key.name) to \(new) but the checkpoint in \(dir) has \(old); architecture "
                            + "keys cannot change on resume"
                    )
                }
            }
            if let out = settings["out"] as? String,
                URL(fileURLWithPath: out).standardizedFileURL != URL(fileURLWithPath: dir).standardizedFileURL
            {
                throw UserError(
                    "--out \(out) differs from --resume \(dir); a resumed run continues in its own directory")
            }
            config = probe
        }
        // On another number of processes, grad-accum is rescaled so that a step sees the same global batch (and the
        // same sequences: the sampler draws by global micro-batch), unless it was set explicitly.
        if processes != stored.processes && file?["grad-accum"] == nil && flags["grad-accum"] == nil {
            let global = stored.globalMicroBatches
            guard global % processes == 0 else {
                throw UserError(
                    "the run in \(dir) takes \(global) micro-batches per step (\(stored.processes) processes × "
                        + "grad-accum \(stored.gradAccum)), which \(processes) processes cannot share evenly; resume "
                        + "on a number of processes that divides \(global), or set --grad-accum (the global batch "
                        + "then changes)"
                )
            }
            config.gradAccum = global / processes
        }
        config.processes = processes
        config.out = dir
        try config.validate()
        return config
    }

    /// Takes the base run's architecture and tokenizer, refusing explicit settings that differ.
    mutating func adopt(_ base: BaseRun, explicit: [String: Any]) throws {
        var inherited = self
        inherited.model = base.model
        for key in TrainingKey.all where key.role == .architecture && explicit[key.name] != nil {
            let mine = key.text(of: self), theirs = key.text(of: inherited)
            if mine != theirs {
                throw UserError(
                    "--\(key.name) \(mine) conflicts with --init-from \(base.path), whose \(key.name) is \(theirs); "
                        + "a fine-tuning run keeps the base run's architecture (leave --\(key.name) out)"
                )
            }
        }
        if let own = tokenizer, own != base.tokenizerPath {
            let bytes = FileManager.default.contents(atPath: own).map { [UInt8]($0) }
            if bytes != base.tokenizerBytes {
                throw UserError(
                    "--tokenizer \(own) conflicts with --init-from \(base.path), which was trained with "
                        + "\(base.tokenizerPath); a fine-tuning run encodes its corpus with the base run's tokenizer "
                        + "(leave --tokenizer out)"
                )
            }
        }
        inherited.tokenizer = base.tokenizerPath
        self = inherited
    }

    /// Reads `--config FILE.json`: a JSON object of settings, read strictly (a key given twice, a number out of
    /// range or a file that is not a regular one is refused, naming the file).
    public static func settings(fromFile path: String) throws -> [String: Any] {
        let bytes = try InputFile.read(path, what: "--config file", limit: 1 << 20)
        let object = try StrictJSON.parse(bytes, what: "--config file \(path)")
        guard let dict = object as? [String: Any] else {
            throw UserError(
                "--config file \(path) is not a JSON object of settings (e.g. {\"steps\": 1000, \"lr\": 0.003})")
        }
        return dict
    }

    // MARK: stored form

    /// Stable JSON (sorted keys; unset optional keys left out) for config.json and checkpoint metadata.
    public func json() -> String {
        var object: [String: Any] = ["processes": processes]
        for key in TrainingKey.all { if let v = key.get(self) { object[key.name] = key.type.jsonValue(v) } }
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    public static func fromJSON(_ text: String) throws -> TrainConfig {
        guard var object = try StrictJSON.parse(Array(text.utf8), what: "the stored configuration") as? [String: Any]
        else {
            throw UserError("the stored configuration is not a JSON object")
        }
        var config = TrainConfig()
        if let n = object.removeValue(forKey: "processes") as? NSNumber, let p = Int(exactly: n.doubleValue), p >= 1 {
            config.processes = p
        }
        try config.apply(object, source: "stored config")
        return config
    }

    /// The resolved configuration as rows for the start-up table.
    public var tableRows: [(String, String)] {
        let m = model
        return [
            ("model", m.kind.rawValue), ("layers", "\(m.layers)"), ("dim", "\(m.dim)"),
            ("heads", "\(m.heads) (head size \(m.headDim))"),
            ("mlp-hidden", "\(m.mlpHidden)"), ("context", "\(m.context)"), ("vocab-size", "\(m.vocabSize)"),
            ("parameters", "\(m.parameterCount)"), ("memory (estimated)", MemoryEstimate(self).description),
            ("corpus", corpus ?? "(default: Shakespeare)"),
            ("tokenizer", tokenizer ?? "(trained: bpe \(m.vocabSize))"),
            ("init from", initFrom ?? "none (random initialisation)"),
            processes > 1
                ? (
                    "processes × batch-size × grad-accum",
                    "\(processes) × \(batchSize) × \(gradAccum) (× context \(m.context)) = \(tokensPerStep) tokens/step"
                )
                : ("batch-size × grad-accum", "\(batchSize) × \(gradAccum) = \(tokensPerStep) tokens/step"),
            ("steps", "\(steps)"), ("lr", "\(peakLR) → \(minLr) (cosine)"), ("warmup", "\(warmupSteps) steps"),
            ("weight-decay", "\(decay)"), ("grad-clip", "\(gradClip)"), ("seed", "\(seed)"),
            ("precision", gemmPrecision.rawValue),
            ("eval", "every \(evalEvery) steps on \(evalWindows) windows; sample \(sampleTokens) tokens"),
            ("out", out ?? "-"),
            (
                "threads",
                threads == 0
                    ? "all cores"
                    : threads > Threads.maxWorkers
                        ? "\(Threads.maxWorkers) (--threads \(threads) capped to the cores)" : "\(threads)"
            ),
        ]
    }
}

/// Linear warmup from 0 to the peak over `warmup` steps, then a cosine from the peak to `minLR` at the last step.
public struct LRSchedule: Sendable {
    public let peak: Double, minLR: Double, warmup: Int, steps: Int
    public init(peak: Double, minLR: Double, warmup: Int, steps: Int) {
        self.peak = peak; self.minLR = minLR; self.warmup = warmup; self.steps = steps
    }
    public init(_ c: TrainConfig) { self.init(peak: c.peakLR, minLR: c.minLr, warmup: c.warmupSteps, steps: c.steps) }

    /// The learning rate of step `step` (0-based).
    public func lr(at step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let span = max(1, steps - warmup - 1)
        let progress = min(1, Double(step - warmup) / Double(span))
        return minLR + 0.5 * (peak - minLR) * (1 + cos(Double.pi * progress))
    }
}
