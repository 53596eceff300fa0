import Dispatch
import Foundation
import Kernels

/// Where the data comes from and how it is tokenised.
public struct DataOptions: Codable, Equatable, Sendable {
    /// A UTF-8 text file or a directory of .txt files; nil means the default Shakespeare corpus.
    public var corpus: String?
    /// Where corpora are fetched to and token caches are kept.
    public var dataRoot: String
    /// Used when no existing tokenizer model is given.
    public var tokenizer: TokenizerTrainingOptions
    /// An existing SentencePiece .model to use instead of training one.
    public var tokenizerModel: String?
    public var validationFraction: Double

    public init(corpus: String? = nil, dataRoot: String = "corpora", tokenizer: TokenizerTrainingOptions = .init(),
                tokenizerModel: String? = nil, validationFraction: Double = 0.05) {
        self.corpus = corpus; self.dataRoot = dataRoot; self.tokenizer = tokenizer
        self.tokenizerModel = tokenizerModel; self.validationFraction = validationFraction
    }
}

/// What `prepare` measured.
public struct PrepareStats: Sendable {
    public var trainDocuments = 0, validationDocuments = 0
    public var trainCharacters = 0, validationCharacters = 0
    public var trainBytes = 0, validationBytes = 0
    public var trainTokens = 0, validationTokens = 0
    public var vocabSize = 0
    public var tokenizerTrained = false, tokensRebuilt = false
    public var seconds = 0.0
    /// UTF-8 bytes per token over both splits (BOS markers excluded from neither count).
    public var bytesPerToken: Double { Double(trainBytes + validationBytes) / Double(max(1, trainTokens + validationTokens)) }
}

/// Tokenised, cached, memory-mapped data, ready for the batch sampler.
public struct PreparedData: Sendable {
    public let tokenizer: SentencePieceModel
    public let tokenizerPath: String
    public let corpusPath: String
    public let cacheDirectory: String
    public let train: MappedTokens
    public let validation: MappedTokens
    public let stats: PrepareStats
}

public enum DataPreparation {
    /// Fetches or loads the corpus, splits it by document, trains or loads the tokenizer and builds (or reuses)
    /// the token caches. Caches are keyed by a hash of the tokenizer model and the split's text: they are reused
    /// while both are unchanged and rebuilt when either changes. `context` is checked against both splits.
    public static func prepare(_ options: DataOptions, context: Int, log: (String) -> Void = { _ in }) throws -> PreparedData {
        let started = DispatchTime.now().uptimeNanoseconds
        let fm = FileManager.default
        let corpusPath = try options.corpus ?? ShakespeareCorpus.ensure(root: options.dataRoot, log: log)
        let documents = try Corpus.load(path: corpusPath)
        let split = try Corpus.split(documents, validationFraction: options.validationFraction)
        guard !split.train.isEmpty, !split.validation.isEmpty else {
            throw UserError("corpus \(corpusPath) cannot be split into training and validation text; add more text")
        }

        // Cache directory: beside the default corpus, or under <root>/cache for a user corpus.
        let tokenizerTag: String
        var externalModel: SentencePieceModel?
        if let modelPath = options.tokenizerModel {
            let model = try SentencePieceModel(path: modelPath)
            externalModel = model
            tokenizerTag = "model-" + String(SHA256.hex(SHA256.hash(model.modelBytes)).prefix(12))
        } else {
            tokenizerTag = "\(options.tokenizer.modelType.rawValue)-\(options.tokenizer.vocabSize)"
        }
        let cacheDirectory: String
        if options.corpus == nil {
            cacheDirectory = options.dataRoot + "/shakespeare/data/" + tokenizerTag
        } else {
            let absolute = URL(fileURLWithPath: corpusPath).standardizedFileURL.path
            let base = URL(fileURLWithPath: absolute).lastPathComponent.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
            cacheDirectory = options.dataRoot + "/cache/\(base.prefix(40))-\(SHA256.hex(SHA256.hash(Array(absolute.utf8))).prefix(10))/" + tokenizerTag
        }
        try Directories.create(cacheDirectory, fix: "pass a writable --data-dir")

        var stats = PrepareStats()
        stats.trainDocuments = split.train.count
        stats.validationDocuments = split.validation.count
        stats.trainCharacters = split.train.reduce(0) { $0 + $1.text.count }
        stats.validationCharacters = split.validation.reduce(0) { $0 + $1.text.count }
        stats.trainBytes = split.train.reduce(0) { $0 + $1.text.utf8.count }
        stats.validationBytes = split.validation.reduce(0) { $0 + $1.text.utf8.count }
        let trainHash = contentHash(split.train), validationHash = contentHash(split.validation)

        // Tokenizer: the given model, or one trained on the training split only (validation text stays unseen).
        let tokenizerPath: String
        let tokenizer: SentencePieceModel
        if let model = externalModel, let path = options.tokenizerModel {
            tokenizer = model
            tokenizerPath = path
        } else {
            tokenizerPath = cacheDirectory + "/tokenizer.model"
            let stampPath = cacheDirectory + "/tokenizer.trained-on"
            let stamp = SHA256.hex(trainHash) + " " + String(describing: options.tokenizer) + "\n"   // no thread count in it
            // a cached model that is unreadable (a damaged cache) is trained again, like a stale one
            if fm.fileExists(atPath: tokenizerPath), (try? String(contentsOfFile: stampPath, encoding: .utf8)) == stamp,
               let cached = try? SentencePieceModel(path: tokenizerPath) {
                tokenizer = cached
            } else {
                log("training a \(options.tokenizer.modelType.rawValue) tokenizer, vocab \(options.tokenizer.vocabSize), on the training split…")
                tokenizer = try trainTokenizer(on: split.train, options: options.tokenizer, into: tokenizerPath)
                try AtomicFile.write(stamp, to: stampPath)
                stats.tokenizerTrained = true
            }
        }
        stats.vocabSize = tokenizer.vocabSize
        let modelHash = SHA256.hash(tokenizer.modelBytes)

        // Token caches.
        func tokens(_ docs: [Document], contentHash: [UInt8], file: String) throws -> MappedTokens {
            let path = cacheDirectory + "/" + file
            let source = SHA256.hash(modelHash + contentHash)
            if fm.fileExists(atPath: path) {
                let mapped = try MappedTokens(path: path)
                if mapped.header.sourceHash == source {
                    guard mapped.vocabSize == tokenizer.vocabSize else {
                        throw UserError("token file \(path) has vocab \(mapped.vocabSize) but the tokenizer has \(tokenizer.vocabSize); delete \(path) to rebuild it")
                    }
                    return mapped
                }
            }
            log("encoding \(docs.count) documents into \(path)…")
            let ids = try encode(docs, with: tokenizer)
            try TokenFile.write(ids, vocabSize: tokenizer.vocabSize, sourceHash: source, to: path)
            stats.tokensRebuilt = true
            return try MappedTokens(path: path)
        }
        let train = try tokens(split.train, contentHash: trainHash, file: "train.bin")
        let validation = try tokens(split.validation, contentHash: validationHash, file: "val.bin")
        stats.trainTokens = train.count
        stats.validationTokens = validation.count
        guard train.count >= context + 1 else {
            throw UserError("the training split has \(train.count) tokens, fewer than one window of \(context + 1); use a larger corpus or a smaller --context")
        }
        guard validation.count >= context + 1 else {
            throw UserError("the validation split has \(validation.count) tokens, fewer than one window of \(context + 1); use a larger corpus or a smaller --context")
        }
        stats.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return PreparedData(tokenizer: tokenizer, tokenizerPath: tokenizerPath, corpusPath: corpusPath,
                            cacheDirectory: cacheDirectory, train: train, validation: validation, stats: stats)
    }

    /// SHA-256 over the documents' names and texts, in order.
    static func contentHash(_ docs: [Document]) -> [UInt8] {
        var h = SHA256()
        for d in docs {
            h.update(d.name); h.update([0])
            h.update(d.text); h.update([0])
        }
        return h.finalize()
    }

    /// Trains on the documents' non-empty lines (SentencePiece's sentences) and writes the model to `path`.
    static func trainTokenizer(on docs: [Document], options: TokenizerTrainingOptions, into path: String) throws -> SentencePieceModel {
        let lines = docs.lazy.flatMap { $0.text.split(separator: "\n") }
        let model = try SentencePieceModel.train(sentences: lines, options: options)
        try AtomicFile.write(model.modelBytes, to: path)
        return model
    }

    /// Each document becomes [BOS] + its ids. Lines are encoded one by one (faster than whole documents, and
    /// identical for models trained here: no piece spans a newline), one document per task on GCD's concurrent queue.
    public static func encode(_ docs: [Document], with tokenizer: SentencePieceModel) throws -> [Int32] {
        let newline = try tokenizer.encode("\n")
        var perDocument = [[Int32]](repeating: [], count: docs.count)
        var errors = [UserError?](repeating: nil, count: docs.count)
        perDocument.withUnsafeMutableBufferPointer { out in
            errors.withUnsafeMutableBufferPointer { errs in
                nonisolated(unsafe) let results = out, failures = errs
                DispatchQueue.concurrentPerform(iterations: docs.count) { i in
                    do {
                        var ids: [Int32] = tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
                        let lines = docs[i].text.split(separator: "\n", omittingEmptySubsequences: false)
                        for (n, line) in lines.enumerated() {
                            if !line.isEmpty { ids += try tokenizer.encode(String(line)) }
                            if n < lines.count - 1 { ids += newline }
                        }
                        results[i] = ids
                    } catch {
                        failures[i] = (error as? UserError) ?? UserError("encoding \(docs[i].name) failed: \(error)")
                    }
                }
            }
        }
        if let failure = errors.compactMap({ $0 }).first { throw failure }
        return perDocument.flatMap { $0 }
    }
}
