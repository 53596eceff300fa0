import Dispatch
import Foundation
import Kernels
import Tokenizer

/// Where the data comes from and how it is tokenised.
public struct DataOptions: Equatable, Sendable {
    /// A text or JSON Lines file (gzip or not) or a directory of them; nil means the default Shakespeare corpus.
    public var corpus: String?
    /// Where corpora are fetched to and token caches are kept.
    public var dataRoot: String
    /// Used when no existing tokenizer model is given.
    public var tokenizer: TokenizerTrainingOptions
    /// An existing SentencePiece .model to use instead of training one.
    public var tokenizerModel: String?
    /// The field of a JSON Lines record that holds its text.
    public var textField: String
    /// Tokens held out for validation; nil: 5 % of the corpus, at most `DataPreparation.defaultValidationCap`.
    public var validationTokens: Int?
    /// Tokens per shard file of a new cache (an existing cache is used whatever its shard size).
    public var shardTokens: Int

    public init(
        corpus: String? = nil, dataRoot: String = "corpora", tokenizer: TokenizerTrainingOptions = .init(),
        tokenizerModel: String? = nil, textField: String = "text", validationTokens: Int? = nil,
        shardTokens: Int = DataPreparation.shardTokens
    ) {
        self.corpus = corpus; self.dataRoot = dataRoot; self.tokenizer = tokenizer
        self.tokenizerModel = tokenizerModel; self.textField = textField; self.validationTokens = validationTokens
        self.shardTokens = shardTokens
    }
}

/// Where preparation reports (lines that stay, and a live progress line rewritten in place on a terminal), and how it
/// learns that it should stop (a signal's name, checked between batches of chunks).
public struct PrepareLog: Sendable {
    public let line: @Sendable (String) -> Void
    public let progress: @Sendable (String) -> Void
    public let stopRequested: @Sendable () -> String?
    public init(
        line: @escaping @Sendable (String) -> Void, progress: @escaping @Sendable (String) -> Void = { _ in },
        stopRequested: @escaping @Sendable () -> String? = { nil }
    ) {
        self.line = line; self.progress = progress; self.stopRequested = stopRequested
    }
    public static let silent = PrepareLog(line: { _ in })
}

/// What `prepare` found and did.
public struct PrepareStats: Sendable {
    public var sources = 0, documents = 0
    public var textBytes = 0
    public var trainTokens = 0, validationTokens = 0
    public var trainShards = 0, validationShards = 0
    public var vocabSize = 0
    /// Lines (text) or records (JSON Lines) skipped as invalid UTF-8, and where the first one was.
    public var skipped = 0
    public var firstSkipped: String?
    public var tokenizerTrained = false
    /// Bytes of text the tokenizer was trained on (0 when it was reused or given).
    public var tokenizerSampleBytes = 0
    /// Sources encoded by this call (0: the cache was reused as it was), the text bytes and the encoding time.
    public var sourcesEncoded = 0
    public var bytesEncoded = 0, encodeSeconds = 0.0
    public var seconds = 0.0
    public var tokensRebuilt: Bool { sourcesEncoded > 0 }
    /// UTF-8 bytes per token over both splits (BOS markers counted as tokens).
    public var bytesPerToken: Double { Double(textBytes) / Double(max(1, trainTokens + validationTokens)) }
}

/// Tokenised, cached, memory-mapped data, ready for the batch sampler.
public struct PreparedData: Sendable {
    public let tokenizer: any TextTokenizer
    public let tokenizerPath: String
    public let corpusPath: String
    public let cacheDirectory: String
    public let manifest: TokenManifest
    public let train: TokenShards
    public let validation: TokenShards
    public let stats: PrepareStats
}
