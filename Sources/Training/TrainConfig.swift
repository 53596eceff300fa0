import Common
import DataPipeline
import Foundation
import Kernels
import NGPT
import Tokenizer

/// Everything a training run is, in typed parts: the architecture (`ModelConfig`), the data (`DataOptions`), the
/// schedule and optimiser, and evaluation and output. Each field is one entry of `TrainingKey.all`, which gives
/// its flag, JSON key, help, default and range; keys are kebab-case flag names (`--mlp-hidden`, `"mlp-hidden"`) in
/// `--config FILE.json`, in a run's `config.json` and in checkpoint metadata.
public struct TrainConfig: Equatable, Sendable {
    /// The architecture, held once: every key of the architecture role is a field of it (fixed for a run).
    public var model = ModelConfig()
    /// The corpus and its tokenisation. The vocabulary of a tokenizer trained here is the model's (`dataOptions`
    /// sets it); `data.tokenizer.vocabSize` itself is not read.
    public var data = DataOptions()
    /// A base run (directory or .safetensors) whose weights, architecture and tokenizer a fine-tuning run starts from.
    public var initFrom: String? = nil
    public var schedule = Schedule()
    public var output = Output()
    /// Processes training data-parallel (the MPI launcher's world size; not a flag). Each computes `gradAccum`
    /// micro-batches of `batchSize` per step, so a step sees processes × grad-accum × batch-size sequences.
    public var processes = 1

    /// The batch, the step budget and the optimiser (nil = the model's recipe decides).
    public struct Schedule: Equatable, Sendable {
        public var batchSize = 16, gradAccum = 1, steps = 600
        public var lr: Double? = nil
        public var minLr: Double? = nil
        public var warmup: Int? = nil
        public var weightDecay: Double? = nil
        public var gradClip: Double = 1.0
        public var seed = 1337
        /// Matrix-product inputs; nil = the machine's preference (`GEMM.preferredPrecision`), fixed when a run starts.
        public var precision: GEMM.Precision? = nil
    }

    /// Evaluation, logging, where the run is written and the thread budget.
    public struct Output: Equatable, Sendable {
        public var evalEvery = 100, evalWindows = 64, sampleTokens = 48, logEvery = 10
        /// The run directory; nil until `resolve` names one after the model and the time.
        public var directory: String? = nil
        public var threads = 0
    }

    public init() {}

    // MARK: resolved values

    /// The global peak learning rate: --lr (or the recipe's rule in width) times the recipe's run-length factor.
    public var peakLR: Double {
        (schedule.lr ?? model.recipe.defaultLearningRate(dim: model.dim, steps: schedule.steps))
            * model.recipe.horizonFactor(steps: schedule.steps)
    }
    public var minLR: Double { schedule.minLr ?? peakLR * model.recipe.minLRFraction }
    public var warmupSteps: Int { schedule.warmup ?? model.recipe.warmupSteps(totalSteps: schedule.steps) }
    public var decay: Double { schedule.weightDecay ?? model.recipe.weightDecay }
    public var tokensPerStep: Int { processes * schedule.batchSize * schedule.gradAccum * model.context }
    /// Micro-batches per step over all processes: what a resume on another number of processes keeps.
    public var globalMicroBatches: Int { processes * schedule.gradAccum }
    public var gemmPrecision: GEMM.Precision { schedule.precision ?? GEMM.preferredPrecision }
    /// The data options with the model's vocabulary for a tokenizer trained here.
    public var dataOptions: DataOptions {
        var options = data
        options.tokenizer.vocabSize = model.vocabSize
        return options
    }

    /// Checks every value: each key's range (declared with the key), the model's sizes, then the relations between
    /// keys. The message names the flag.
    public func validate() throws {
        try model.validate()
        for key in TrainingKey.all {
            if let problem = key.check(self) { throw UserError("--\(key.name) " + problem) }
        }
        guard processes >= 1, processes <= 1 << 16 else {
            throw UserError("the number of processes must be in 1...65536, got \(processes)")
        }
        // Every count below is then an exact Int: tokens per step, tokens over the run, the memory estimate.
        let s = schedule
        guard
            Double(processes) * Double(s.gradAccum) * Double(s.batchSize) * Double(model.context) * Double(s.steps)
                <= Double(1 << 60),
            model.floatBound(batch: s.batchSize) <= ModelConfig.maxFloats
        else {
            throw UserError(
                "--steps \(s.steps) × --batch-size \(s.batchSize) × --grad-accum \(s.gradAccum) × --context "
                    + "\(model.context) is too large; lower one of them")
        }
        guard peakLR > 0, peakLR.isFinite, peakLR < 1 else { throw UserError("--lr must be in (0, 1), got \(peakLR)") }
        guard minLR <= peakLR else { throw UserError("--min-lr must be in [0, --lr], got \(minLR)") }
        guard warmupSteps <= s.steps else { throw UserError("--warmup must be in 0...--steps, got \(warmupSteps)") }
        guard output.sampleTokens <= model.context else {
            throw UserError("--sample-tokens must be in 0...--context, got \(output.sampleTokens)")
        }
    }

    // MARK: layering: defaults < config file < flags

    /// Applies settings keyed by `TrainingKey` names (a `--config` file's JSON object, flags, a stored config).
    /// Unknown keys and values of the wrong type are rejected, naming the key; ranges are `validate`'s.
    public mutating func apply(_ settings: Settings, source: String) throws {
        for name in settings.names where TrainingKey.named(name) == nil {
            throw UserError("\(source): unknown key \"\(name)\"" + TrainingKey.suggestion(for: name) { "\"\($0)\"" })
        }
        for key in TrainingKey.all {
            guard let value = settings[key.name] else { continue }
            guard key.set(&self, value) else {
                throw UserError("\(source): \"\(key.name)\" must be \(key.typeDescription), got \(value)")
            }
        }
        // A model chosen without a parameterization takes its own default (νGPT for nGPT, the only one for GPT).
        if settings["model"] != nil && settings["parameterization"] == nil {
            model.parameterization = .defaultFor(model.kind)
        }
    }

    /// The configuration of `settings` (flags of `keys`) over the defaults, with those keys' ranges and the model's
    /// sizes checked: for tools that take some of the training keys (`ngpt-train prepare`, `ngpt-bench`).
    public init(_ settings: Settings, keys: [TrainingKey]) throws {
        try apply(settings, source: "flags")
        try model.validate()
        for key in keys {
            if let problem = key.check(self) { throw UserError("--\(key.name) " + problem) }
        }
    }

    /// The configuration of command-line flags of `keys` (see `Settings.fromFlags`), checked as above.
    public init(flags: [String], keys: [TrainingKey], listing: String) throws {
        try self.init(Settings.fromFlags(flags, keys: keys, listing: listing), keys: keys)
    }

    /// The configuration of a run: defaults < `--config` file < flags. On resume, the checkpoint's configuration
    /// replaces the defaults and architecture keys may not change (a resumed run also keeps its directory).
    /// Touches no file: the caller reads the checkpoint and claims the directory.
    ///
    /// A fine-tuning run (`base`, from `--init-from`) takes its architecture and tokenizer from the base run: a
    /// setting that contradicts them is refused, naming both values.
    public static func resolve(
        file: Settings?, flags: Settings, resuming: (directory: String, config: TrainConfig)? = nil,
        base: BaseRun? = nil, processes: Int = 1
    ) throws -> TrainConfig {
        let file = file ?? Settings()
        guard let (dir, stored) = resuming else {
            var config = TrainConfig()
            try config.apply(file, source: "--config")
            try config.apply(flags, source: "flags")
            if let base { try config.adopt(base, explicit: file.merging(flags)) }
            // recorded, so that a resume keeps it
            if config.schedule.precision == nil { config.schedule.precision = GEMM.preferredPrecision }
            if config.output.directory == nil {
                let stamp = ISO8601DateFormatter.string(
                    from: Date(), timeZone: .current, formatOptions: [.withFullDate, .withTime])
                config.output.directory =
                    "checkpoints/\(config.model.kind.rawValue)-\(stamp.replacingOccurrences(of: ":", with: ""))"
            }
            config.processes = processes
            try config.validate()
            return config
        }
        var config = stored
        for (source, settings) in [("--config", file), ("flags", flags)] {
            var probe = config
            try probe.apply(settings, source: source)
            if let c = probe.architectureConflict(with: config, setBy: settings) {
                throw UserError(
                    "\(source) sets \(c.key) to \(c.mine) but the checkpoint in \(dir) has \(c.theirs); architecture "
                        + "keys cannot change on resume")
            }
            if settings["out"] != nil, let out = probe.output.directory,
                URL(fileURLWithPath: out).standardizedFileURL != URL(fileURLWithPath: dir).standardizedFileURL
            {
                throw UserError(
                    "--out \(out) differs from --resume \(dir); a resumed run continues in its own directory")
            }
            config = probe
        }
        // On another number of processes, grad-accum is rescaled so that a step sees the same global batch (and the
        // same sequences: the sampler draws by global micro-batch), unless it was set explicitly.
        if processes != stored.processes && file["grad-accum"] == nil && flags["grad-accum"] == nil {
            let global = stored.globalMicroBatches
            guard global % processes == 0 else {
                throw UserError(
                    "the run in \(dir) takes \(global) micro-batches per step (\(stored.processes) processes × "
                        + "grad-accum \(stored.schedule.gradAccum)), which \(processes) processes cannot share "
                        + "evenly; resume on a number of processes that divides \(global), or set --grad-accum (the "
                        + "global batch then changes)"
                )
            }
            config.schedule.gradAccum = global / processes
        }
        config.processes = processes
        config.output.directory = dir
        try config.validate()
        return config
    }

    /// The first architecture key that `settings` set and on which this configuration differs from `other`.
    func architectureConflict(with other: TrainConfig, setBy settings: Settings) -> (
        key: String, mine: String, theirs: String
    )? {
        for key in TrainingKey.architecture where settings[key.name] != nil {
            let mine = key.text(of: self), theirs = key.text(of: other)
            if mine != theirs { return (key.name, mine, theirs) }
        }
        return nil
    }

    /// Takes the base run's architecture and tokenizer, refusing explicit settings that differ.
    mutating func adopt(_ base: BaseRun, explicit: Settings) throws {
        var inherited = self
        inherited.model = base.model
        if let c = architectureConflict(with: inherited, setBy: explicit) {
            throw UserError(
                "--\(c.key) \(c.mine) conflicts with --init-from \(base.path), whose \(c.key) is \(c.theirs); "
                    + "a fine-tuning run keeps the base run's architecture (leave --\(c.key) out)")
        }
        if let own = data.tokenizerModel, own != base.tokenizerPath {
            let bytes = FileManager.default.contents(atPath: own).map { [UInt8]($0) }
            if bytes != base.tokenizerBytes {
                throw UserError(
                    "--tokenizer \(own) conflicts with --init-from \(base.path), which was trained with "
                        + "\(base.tokenizerPath); a fine-tuning run encodes its corpus with the base run's tokenizer "
                        + "(leave --tokenizer out)"
                )
            }
        }
        inherited.data.tokenizerModel = base.tokenizerPath
        self = inherited
    }

    // MARK: stored form

    /// Every set key by name (unset optional keys left out), and the number of processes.
    public var settings: Settings {
        var out = Settings(["processes": .int(processes)])
        for key in TrainingKey.all { out[key.name] = key.get(self) }
        return out
    }

    /// Stable JSON (sorted keys; unset optional keys left out) for config.json and checkpoint metadata.
    public func json() -> String { JSONValue.object(settings.values).serialized() }

    public static func fromJSON(_ text: String) throws -> TrainConfig {
        guard var object = try StrictJSON.parse(Array(text.utf8), what: "the stored configuration").object else {
            throw UserError("the stored configuration is not a JSON object")
        }
        var config = TrainConfig()
        if let p = object.removeValue(forKey: "processes")?.int, p >= 1 { config.processes = p }
        // Runs stored before parameterizations existed have none: theirs is the paper's (as in their checkpoints).
        if object["parameterization"] == nil { object["parameterization"] = .string(Parameterization.paper.rawValue) }
        try config.apply(Settings(object), source: "stored config")
        return config
    }

    /// The learning rates as the start-up table shows them: the schedule, and νGPT's factors.
    var lrText: String {
        let r = model.recipe
        var text = String(format: "%.4g → %.4g (cosine)", peakLR, minLR)
        if r.horizonExponent != 0 {
            text += String(
                format: "; %@ × (%d/%d steps)^%.3g",
                "\(schedule.lr ?? r.defaultLearningRate(dim: model.dim, steps: schedule.steps))", schedule.steps,
                r.baseSteps, r.horizonExponent)
        }
        let groups = ParameterGroup.allCases.compactMap { g in
            r.groupWidthExponents[g].map {
                String(format: "%@ ×%.3g", g.rawValue, pow(Double(model.dim) / Double(r.referenceDim), $0))
            }
        }
        if !groups.isEmpty { text += "; " + groups.joined(separator: ", ") }
        return text
    }

    /// The resolved configuration as rows for the start-up table.
    public var tableRows: [(String, String)] {
        let m = model, s = schedule, o = output
        return [
            ("model", m.kind.rawValue + (m.kind == .ngpt ? " (parameterization \(m.parameterization.rawValue))" : "")),
            ("layers", "\(m.layers)"), ("dim", "\(m.dim)"),
            ("heads", "\(m.heads) (head size \(m.headDim))"),
            ("mlp-hidden", "\(m.mlpHidden)"), ("context", "\(m.context)"), ("vocab-size", "\(m.vocabSize)"),
            ("parameters", "\(m.parameterCount)"), ("memory (estimated)", MemoryEstimate(self).description),
            ("corpus", data.corpus ?? "(default: Shakespeare)"),
            ("tokenizer", data.tokenizerModel ?? "(trained: \(data.tokenizer.modelType.rawValue) \(m.vocabSize))"),
            ("init from", initFrom ?? "none (random initialisation)"),
            processes > 1
                ? (
                    "processes × batch-size × grad-accum",
                    "\(processes) × \(s.batchSize) × \(s.gradAccum) (× context \(m.context)) = \(tokensPerStep) "
                        + "tokens/step"
                )
                : ("batch-size × grad-accum", "\(s.batchSize) × \(s.gradAccum) = \(tokensPerStep) tokens/step"),
            ("steps", "\(s.steps)"), ("lr", lrText), ("warmup", "\(warmupSteps) steps"),
            ("weight-decay", "\(decay)"), ("grad-clip", "\(s.gradClip)"), ("seed", "\(s.seed)"),
            ("precision", gemmPrecision.rawValue),
            ("eval", "every \(o.evalEvery) steps on \(o.evalWindows) windows; sample \(o.sampleTokens) tokens"),
            ("out", o.directory ?? "-"),
            (
                "threads",
                o.threads == 0
                    ? "all cores"
                    : o.threads > Threads.maxWorkers
                        ? "\(Threads.maxWorkers) (--threads \(o.threads) capped to the cores)" : "\(o.threads)"
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
    public init(_ c: TrainConfig) {
        self.init(peak: c.peakLR, minLR: c.minLR, warmup: c.warmupSteps, steps: c.schedule.steps)
    }

    /// The learning rate of step `step` (0-based).
    public func lr(at step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let span = max(1, steps - warmup - 1)
        let progress = min(1, Double(step - warmup) / Double(span))
        return minLR + 0.5 * (peak - minLR) * (1 + cos(Double.pi * progress))
    }
}
