import Foundation
import NGPT
import Tokenizer

/// A configuration problem: one line naming the key and what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything a training run is: architecture, data, schedule, I/O. Keys are the command-line flags' names
/// (kebab-case) in `--config FILE.json`, in `config.json` of a run directory and in checkpoint metadata.
public struct TrainConfig: Codable, Equatable, Sendable {
    // architecture (fixed for a run: must match on resume)
    public var model: ModelKind = .ngpt
    public var layers = 4, dim = 256, heads = 4, mlpHidden = 683, context = 256, vocabSize = 4096
    // data
    public var corpus: String? = nil
    public var dataDir = "corpora"
    public var tokenizer: String? = nil
    // schedule
    public var batchSize = 16, gradAccum = 1, steps = 600
    /// Peak learning rate; nil = the model's default (nGPT 4e-3, GPT 3e-3).
    public var lr: Double? = nil
    public var minLr: Double = 0
    /// Linear warmup steps; nil = the recipe's default (GPT 5 % of the run, nGPT none).
    public var warmup: Int? = nil
    /// AdamW weight decay on matrices and embeddings; nil = the recipe's default (GPT 0.1, nGPT 0).
    public var weightDecay: Double? = nil
    public var gradClip: Double = 1.0
    public var seed = 1337
    // evaluation and output
    public var evalEvery = 100, evalWindows = 64, sampleTokens = 48, logEvery = 10
    public var out: String? = nil
    public var threads = 0

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, layers, dim, heads, mlpHidden = "mlp-hidden", context, vocabSize = "vocab-size", corpus, dataDir = "data-dir",
             tokenizer, batchSize = "batch-size", gradAccum = "grad-accum", steps, lr, minLr = "min-lr", warmup,
             weightDecay = "weight-decay", gradClip = "grad-clip", seed, evalEvery = "eval-every", evalWindows = "eval-windows",
             sampleTokens = "sample-tokens", logEvery = "log-every", out, threads
    }

    /// The keys that fix the parameter shapes and the forward pass.
    public static let architectureKeys: Set<String> = ["model", "layers", "dim", "heads", "mlp-hidden", "context", "vocab-size"]
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    // MARK: resolved values

    public var modelConfig: ModelConfig {
        ModelConfig(kind: model, vocabSize: vocabSize, dim: dim, layers: layers, heads: heads, mlpHidden: mlpHidden, context: context)
    }
    public var peakLR: Double { lr ?? (model == .ngpt ? 4e-3 : 3e-3) }
    public var warmupSteps: Int { warmup ?? (model == .gpt ? max(1, steps / 20) : 0) }
    public var decay: Double { weightDecay ?? (model == .gpt ? 0.1 : 0) }
    public var tokensPerStep: Int { batchSize * gradAccum * context }
    public var dataOptions: DataOptions {
        DataOptions(corpus: corpus, dataRoot: dataDir,
                    tokenizer: TokenizerTrainingOptions(vocabSize: vocabSize, threads: max(1, threads == 0 ? 2 : threads)),
                    tokenizerModel: tokenizer)
    }

    /// Checks every value; the message names the flag.
    public func validate() throws {
        do { try modelConfig.validate() } catch let e as ModelConfigError { throw ConfigError(e.message) }
        func positive(_ key: String, _ v: Int) throws { if v <= 0 { throw ConfigError("--\(key) must be positive, got \(v)") } }
        try positive("batch-size", batchSize); try positive("grad-accum", gradAccum); try positive("steps", steps)
        try positive("eval-every", evalEvery); try positive("eval-windows", evalWindows); try positive("log-every", logEvery)
        guard peakLR > 0, peakLR.isFinite, peakLR < 1 else { throw ConfigError("--lr must be in (0, 1), got \(peakLR)") }
        guard minLr >= 0, minLr <= peakLR else { throw ConfigError("--min-lr must be in [0, --lr], got \(minLr)") }
        guard warmupSteps >= 0, warmupSteps <= steps else { throw ConfigError("--warmup must be in 0...--steps, got \(warmupSteps)") }
        guard decay >= 0, decay < 1 else { throw ConfigError("--weight-decay must be in [0, 1), got \(decay)") }
        guard gradClip >= 0 else { throw ConfigError("--grad-clip must be ≥ 0 (0 disables), got \(gradClip)") }
        guard seed >= 0 else { throw ConfigError("--seed must be ≥ 0, got \(seed)") }
        guard sampleTokens >= 0, sampleTokens <= context else { throw ConfigError("--sample-tokens must be in 0...--context, got \(sampleTokens)") }
        guard threads >= 0 else { throw ConfigError("--threads must be ≥ 0 (0 = all cores), got \(threads)") }
        guard vocabSize <= 1 << 20 else { throw ConfigError("--vocab-size must be at most 1048576, got \(vocabSize)") }
    }

    // MARK: layering: defaults < config file < flags

    /// Applies a JSON object of settings (from `--config FILE.json` or from flags). Unknown keys and values of
    /// the wrong type are rejected, naming the key.
    public mutating func apply(_ settings: [String: Any], source: String) throws {
        let known = Set(Self.keys)
        for key in settings.keys.sorted() where !known.contains(key) {
            let close = Self.keys.min { editDistance($0, key) < editDistance($1, key) } ?? ""
            throw ConfigError("\(source): unknown key \"\(key)\"" + (editDistance(close, key) <= 3 ? " (did you mean \"\(close)\"?)" : ""))
        }
        func int(_ k: String) throws -> Int? {
            guard let v = settings[k] else { return nil }
            if let n = v as? NSNumber, !(v is Bool), let i = Int(exactly: n.doubleValue) { return i }
            if let i = v as? Int { return i }
            throw ConfigError("\(source): \"\(k)\" must be an integer, got \(v)")
        }
        func double(_ k: String) throws -> Double? {
            guard let v = settings[k] else { return nil }
            if let n = v as? NSNumber, !(v is Bool) { return n.doubleValue }
            if let d = v as? Double { return d }
            throw ConfigError("\(source): \"\(k)\" must be a number, got \(v)")
        }
        func string(_ k: String) throws -> String? {
            guard let v = settings[k] else { return nil }
            if let s = v as? String { return s }
            throw ConfigError("\(source): \"\(k)\" must be a string, got \(v)")
        }
        if let s = try string("model") {
            guard let kind = ModelKind(rawValue: s) else { throw ConfigError("\(source): \"model\" must be ngpt or gpt, got \(s)") }
            model = kind
        }
        if let v = try int("layers") { layers = v }
        if let v = try int("dim") { dim = v }
        if let v = try int("heads") { heads = v }
        if let v = try int("mlp-hidden") { mlpHidden = v }
        if let v = try int("context") { context = v }
        if let v = try int("vocab-size") { vocabSize = v }
        if let v = try string("corpus") { corpus = v }
        if let v = try string("data-dir") { dataDir = v }
        if let v = try string("tokenizer") { tokenizer = v }
        if let v = try int("batch-size") { batchSize = v }
        if let v = try int("grad-accum") { gradAccum = v }
        if let v = try int("steps") { steps = v }
        if let v = try double("lr") { lr = v }
        if let v = try double("min-lr") { minLr = v }
        if let v = try int("warmup") { warmup = v }
        if let v = try double("weight-decay") { weightDecay = v }
        if let v = try double("grad-clip") { gradClip = v }
        if let v = try int("seed") { seed = v }
        if let v = try int("eval-every") { evalEvery = v }
        if let v = try int("eval-windows") { evalWindows = v }
        if let v = try int("sample-tokens") { sampleTokens = v }
        if let v = try int("log-every") { logEvery = v }
        if let v = try string("out") { out = v }
        if let v = try int("threads") { threads = v }
    }

    /// Reads `--config FILE.json`.
    public static func settings(fromFile path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("cannot read config file \(path)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw ConfigError("config file \(path) is not a JSON object of settings (e.g. {\"steps\": 1000, \"lr\": 0.003})")
        }
        return dict
    }

    /// Stable JSON (sorted keys) for config.json and checkpoint metadata.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    public static func fromJSON(_ text: String) throws -> TrainConfig {
        do { return try JSONDecoder().decode(TrainConfig.self, from: Data(text.utf8)) } catch {
            throw ConfigError("stored config is unreadable (\(error))")
        }
    }

    /// The resolved configuration as rows for the start-up table.
    public var tableRows: [(String, String)] {
        let m = modelConfig
        return [
            ("model", model.rawValue), ("layers", "\(layers)"), ("dim", "\(dim)"), ("heads", "\(heads) (head size \(m.headDim))"),
            ("mlp-hidden", "\(mlpHidden)"), ("context", "\(context)"), ("vocab-size", "\(vocabSize)"),
            ("parameters", "\(m.parameterCount)"), ("corpus", corpus ?? "(default: Shakespeare)"),
            ("tokenizer", tokenizer ?? "(trained: bpe \(vocabSize))"), ("batch-size × grad-accum", "\(batchSize) × \(gradAccum) = \(tokensPerStep) tokens/step"),
            ("steps", "\(steps)"), ("lr", "\(peakLR) → \(minLr) (cosine)"), ("warmup", "\(warmupSteps) steps"),
            ("weight-decay", "\(decay)"), ("grad-clip", "\(gradClip)"), ("seed", "\(seed)"),
            ("eval", "every \(evalEvery) steps on \(evalWindows) windows; sample \(sampleTokens) tokens"),
            ("out", out ?? "-"), ("threads", threads == 0 ? "all cores" : "\(threads)"),
        ]
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var prev = row[0]
        row[0] = i
        for j in 1...max(1, b.count) where !b.isEmpty {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return a.isEmpty ? b.count : (b.isEmpty ? a.count : row[b.count])
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
