import Dispatch
import Foundation
import Kernels

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

    public init(corpus: String? = nil, dataRoot: String = "corpora", tokenizer: TokenizerTrainingOptions = .init(),
                tokenizerModel: String? = nil, textField: String = "text", validationTokens: Int? = nil,
                shardTokens: Int = DataPreparation.shardTokens) {
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
    public init(line: @escaping @Sendable (String) -> Void, progress: @escaping @Sendable (String) -> Void = { _ in },
                stopRequested: @escaping @Sendable () -> String? = { nil }) {
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
    public let tokenizer: SentencePieceModel
    public let tokenizerPath: String
    public let corpusPath: String
    public let cacheDirectory: String
    public let manifest: TokenManifest
    public let train: TokenShards
    public let validation: TokenShards
    public let stats: PrepareStats
}

/// Corpus → tokenizer → token shards, in memory bounded by the chunk size, never by the corpus:
///
/// 1. The corpus's files are listed (text, JSON Lines, gzip of either) and the cache directory chosen from the
///    corpus path and the tokenizer.
/// 2. The tokenizer is given, cached, or trained on a sample: `sampleBytes` of lines read at evenly spaced offsets
///    of the corpus after its head (where validation comes from).
/// 3. The files are read in ~1 MiB chunks cut at line breaks; the thread budget's workers encode chunks
///    concurrently; one writer appends their ids in corpus order to the validation split until it holds its target
///    (cut at a line or record end), then to training shards of about `shardTokens`.
/// 4. Progress is saved whenever no shard is half-written (`progress.json`): a stopped preparation continues there.
///    On completion `manifest.json` replaces the previous one atomically; files added to a corpus later are encoded
///    alone and appended as new training shards.
public enum DataPreparation {
    public static let chunkBytes = 1 << 20
    public static let shardTokens = 100_000_000
    /// Validation tokens by default: 5 % of the corpus, at most this.
    public static let defaultValidationCap = 1_000_000
    public static let defaultValidationFraction = 0.05

    public static func prepare(_ options: DataOptions, context: Int, log: PrepareLog = .silent) throws -> PreparedData {
        try prepare(options, context: context, log: log, afterSave: nil)
    }

    /// `afterSave` sees each saved progress state (tests stop a preparation there).
    static func prepare(_ options: DataOptions, context: Int, log: PrepareLog,
                        afterSave: ((TokenManifest) throws -> Void)?, repairing: Bool = false) throws -> PreparedData {
        signal(SIGXFSZ, SIG_IGN)   // a file-size limit fails the write (EFBIG, reported) instead of killing the process
        let started = DispatchTime.now().uptimeNanoseconds
        guard options.shardTokens > 0 else { throw UserError("--shard-tokens must be positive, got \(options.shardTokens)") }
        if let v = options.validationTokens, v < 1 { throw UserError("--val-tokens must be positive, got \(v)") }
        let corpusPath = try options.corpus ?? ShakespeareCorpus.ensure(root: options.dataRoot, log: log.line)
        let (root, listed) = try CorpusFiles.list(corpusPath)
        let settings = TokenManifest.Settings(textField: options.textField, validationTokens: options.validationTokens,
                                              chunkBytes: chunkBytes, shardTokens: options.shardTokens)
        let cache = try CacheDirectory(options: options, corpusPath: corpusPath)
        try Directories.create(cache.path, fix: "pass a writable --data-dir")
        let lock = try DirectoryLock(cache.path, log: log)
        defer { lock.release() }

        var stats = PrepareStats()
        let previous = TokenManifest.read(cache.manifest)
        let known = (previous?.sources ?? []) + (TokenManifest.read(cache.progress)?.sources ?? [])
        let sources = try CorpusFiles.measuringGzip(listed, root: root, known: known, log: log)
        stats.sources = sources.count
        if previous == nil, FileManager.default.fileExists(atPath: cache.path + "/train.bin") {
            log.line("the token cache in \(cache.path) was built by an earlier ngpt (train.bin, val.bin); rebuilding it as shards with a manifest")
        }
        let (tokenizer, tokenizerPath) = try chooseTokenizer(cache: cache, previous: previous, sources: sources, root: root, settings: settings,
                                                             options: options, stats: &stats, log: log)
        stats.vocabSize = tokenizer.vocabSize

        var state = plan(cache: cache, previous: previous, sources: sources, tokenizer: tokenizer, settings: settings, log: log)
        if state.position != nil {
            let encodeStarted = DispatchTime.now().uptimeNanoseconds
            let writer = SplitWriter(state: state, directory: cache.path, progressPath: cache.progress, shardTokens: options.shardTokens,
                                     estimatedTextBytes: sources.reduce(0) { $0 + $1.estimatedTextBytes }, afterSave: afterSave)
            let encoded = try encode(root: root, writer: writer, tokenizer: tokenizer, textField: options.textField, log: log)
            state = writer.state
            stats.sourcesEncoded = encoded.sources
            stats.bytesEncoded = encoded.bytes
            stats.encodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - encodeStarted) / 1e9
            guard state.trainTokens + state.validationTokens > 0 else {
                throw UserError("corpus \(corpusPath) holds no text to train on (its files are empty, or every line was invalid UTF-8)")
            }
            guard state.trainTokens > 0 else {
                throw UserError("the validation split took the whole corpus (\(state.validationTokens) tokens); use a smaller --val-tokens or add text")
            }
            state.position = nil
            try state.write(to: cache.manifest)
            unlink(cache.progress)
            removeUnlisted(in: cache.path, keeping: state)
        } else if FileManager.default.fileExists(atPath: cache.progress) {
            unlink(cache.progress)   // a stopped preparation of other settings: its shards go too
            removeUnlisted(in: cache.path, keeping: state)
        }

        let train: TokenShards, validation: TokenShards
        do {
            train = try TokenShards(directory: cache.path, records: state.train, vocabSize: tokenizer.vocabSize)
            validation = try TokenShards(directory: cache.path, records: state.validation, vocabSize: tokenizer.vocabSize)
        } catch let error as UserError where stats.sourcesEncoded == 0 && !repairing {
            // a damaged cache (a shard deleted, truncated, overwritten): encode again rather than send the user to delete it
            log.line("the token cache in \(cache.path) is damaged (\(error.message)); encoding the corpus again")
            unlink(cache.manifest)
            lock.release()
            return try prepare(options, context: context, log: log, afterSave: afterSave, repairing: true)
        }
        guard train.shards.contains(where: { $0.count >= context + 1 }) else {
            throw UserError("the training split has \(train.count) tokens, fewer than one window of \(context + 1); use a larger corpus or a smaller --context")
        }
        guard validation.shards.contains(where: { $0.count >= context + 1 }) else {
            throw UserError("the validation split has \(validation.count) tokens, fewer than one window of \(context + 1); use a larger corpus, a larger --val-tokens or a smaller --context")
        }
        stats.documents = state.documents
        stats.textBytes = state.textBytes
        stats.trainTokens = train.count
        stats.validationTokens = validation.count
        stats.trainShards = train.shards.count
        stats.validationShards = validation.shards.count
        stats.skipped = state.skipped
        stats.firstSkipped = state.firstSkipped
        stats.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return PreparedData(tokenizer: tokenizer, tokenizerPath: tokenizerPath, corpusPath: corpusPath, cacheDirectory: cache.path,
                            manifest: state, train: train, validation: validation, stats: stats)
    }

    /// Where a corpus's cache lives and which tokenizer it is for: `<base>/<type>-<vocab>` for a tokenizer trained
    /// here, `<base>/model-<hash>` for a given one — unless the given one is the trained one (a resumed run's copy,
    /// rank 0's model handed to the other processes of a job), which then shares its cache.
    struct CacheDirectory {
        let path: String
        /// The tokenizer given with --tokenizer (or by the trainer), if any.
        let given: SentencePieceModel?
        /// Whether the directory keeps its own tokenizer.model (trained here, or the given one when it is that).
        let ownsTokenizer: Bool
        var manifest: String { path + "/manifest.json" }
        var progress: String { path + "/progress.json" }
        var tokenizer: String { path + "/tokenizer.model" }
        var tokenizerStamp: String { path + "/tokenizer.trained-on" }

        init(options: DataOptions, corpusPath: String) throws {
            let base: String
            if options.corpus == nil {
                base = options.dataRoot + "/shakespeare/data"
            } else {
                let absolute = URL(fileURLWithPath: corpusPath).standardizedFileURL.path
                let name = URL(fileURLWithPath: absolute).lastPathComponent.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
                base = options.dataRoot + "/cache/\(name.prefix(40))-\(SHA256.hex(SHA256.hash(Array(absolute.utf8))).prefix(10))"
            }
            let trained = base + "/\(options.tokenizer.modelType.rawValue)-\(options.tokenizer.vocabSize)"
            guard let modelPath = options.tokenizerModel else {
                path = trained; given = nil; ownsTokenizer = true
                return
            }
            let model = try SentencePieceModel(path: modelPath)
            given = model
            if FileManager.default.contents(atPath: trained + "/tokenizer.model").map({ [UInt8]($0) }) == model.modelBytes {
                path = trained; ownsTokenizer = true
            } else {
                path = base + "/model-" + String(SHA256.hex(SHA256.hash(model.modelBytes)).prefix(12)); ownsTokenizer = false
            }
        }
    }

    /// The tokenizer: the given one; else the cache's own while its corpus and options are unchanged (or only grew);
    /// else one trained now on a sample (or the given one, recorded as this cache's).
    static func chooseTokenizer(cache: CacheDirectory, previous: TokenManifest?, sources: [CorpusSource], root: String,
                                settings: TokenManifest.Settings, options: DataOptions, stats: inout PrepareStats,
                                log: PrepareLog) throws -> (SentencePieceModel, String) {
        if let given = cache.given, !cache.ownsTokenizer { return (given, options.tokenizerModel ?? cache.tokenizer) }
        let cached = try? SentencePieceModel(path: cache.tokenizer)
        let stamp = tokenizerStamp(sources, options: options)
        if let cached, let previous, previous.tokenizerSHA256 == SHA256.hex(SHA256.hash(cached.modelBytes)),
           previous.settings.sameTokens(as: settings), unchangedPrefix(previous.sources, of: sources) {
            return (cached, cache.tokenizer)   // new files since the cache was built are encoded with it
        }
        if let cached, (try? String(contentsOfFile: cache.tokenizerStamp, encoding: .utf8)) == stamp { return (cached, cache.tokenizer) }
        let model: SentencePieceModel
        if let given = cache.given {
            model = given
        } else {
            let (trained, sampleBytes) = try trainTokenizer(root: root, sources: sources, options: options, log: log)
            model = trained
            stats.tokenizerTrained = true
            stats.tokenizerSampleBytes = sampleBytes
        }
        try AtomicFile.write(model.modelBytes, to: cache.tokenizer)
        try AtomicFile.write(stamp, to: cache.tokenizerStamp)
        return (model, cache.tokenizer)
    }

    /// What to encode: nothing (the cache is current), the files added since it was built, or everything — and, when a
    /// preparation of the same plan was stopped, the rest of it from where it stopped. A state with a position
    /// has work to do.
    static func plan(cache: CacheDirectory, previous: TokenManifest?, sources: [CorpusSource], tokenizer: SentencePieceModel,
                     settings: TokenManifest.Settings, log: PrepareLog) -> TokenManifest {
        let tokenizerSHA = SHA256.hex(SHA256.hash(tokenizer.modelBytes))
        var state: TokenManifest
        if let previous, previous.tokenizerSHA256 == tokenizerSHA, previous.settings.sameTokens(as: settings),
           unchangedPrefix(previous.sources, of: sources) {
            state = previous
            let added = sources.filter { s in !previous.sources.contains { $0.name == s.name } }
            if added.isEmpty { return state }
            log.line("\(added.count) file\(added.count == 1 ? "" : "s") added to the corpus since the cache was built: encoding \(added.count == 1 ? "it" : "them") alone")
            state.sources += added
            state.position = TokenManifest.Position(source: previous.sources.count, offset: 0, line: 1)
            state.build = newBuildName()
        } else {
            if previous != nil { log.line("the corpus, tokenizer or settings changed since the cache in \(cache.path) was built; encoding it again") }
            state = TokenManifest(tokenizerSHA256: tokenizerSHA, vocabSize: tokenizer.vocabSize, settings: settings, sources: sources,
                                  position: .init(source: 0, offset: 0, line: 1), build: newBuildName())
        }
        if let saved = TokenManifest.read(cache.progress), let position = saved.position, saved.tokenizerSHA256 == tokenizerSHA,
           saved.settings.sameTokens(as: settings), saved.sources.count == state.sources.count,
           zip(saved.sources, state.sources).allSatisfy({ $0.sameFile(as: $1) }) {
            let name = position.source < saved.sources.count ? saved.sources[position.source].name : "the end"
            log.line("continuing an interrupted preparation at \(name), byte \(position.offset)")
            return saved
        }
        return state
    }

    /// Whether every source of an earlier preparation is still there, unchanged.
    static func unchangedPrefix(_ old: [CorpusSource], of current: [CorpusSource]) -> Bool {
        old.allSatisfy { o in current.contains { $0.sameFile(as: o) } }
    }

    /// What a trained tokenizer depends on: the files (names, sizes, times) and the options. No path, no thread count.
    static func tokenizerStamp(_ sources: [CorpusSource], options: DataOptions) -> String {
        var h = SHA256()
        for s in sources { h.update("\(s.name)\u{0}\(s.bytes)\u{0}\(s.modified)\u{0}") }
        h.update("\(options.tokenizer)\u{0}\(options.textField)\u{0}\(options.validationTokens ?? -1)")
        return SHA256.hex(h.finalize()) + "\n"
    }

    static func newBuildName() -> String {
        String(UInt32.random(in: 0...UInt32.max), radix: 16).leftPadded(to: 8)
    }

    /// Deletes shard files (and leftovers of stopped runs) that the manifest does not list.
    static func removeUnlisted(in directory: String, keeping manifest: TokenManifest) {
        let keep = Set((manifest.train + manifest.validation).map(\.file))
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for f in files where (f.hasSuffix(".bin") || f.hasSuffix(".partial")) && !keep.contains(f) {
            unlink(directory + "/" + f)
        }
    }

    // MARK: tokenizer

    /// Trains on `sampleBytes` of the corpus's lines: windows of a chunk at evenly spaced offsets after the head that
    /// validation is taken from, so that the tokenizer's cost does not grow with the corpus and it does not see
    /// validation text (unless validation is larger than the skipped head; the summary would not tell).
    static func trainTokenizer(root: String, sources: [CorpusSource], options: DataOptions,
                               log: PrepareLog) throws -> (SentencePieceModel, Int) {
        let total = sources.reduce(0) { $0 + $1.estimatedTextBytes }
        let head = min(total / 2, options.validationTokens.map { $0 * 8 }
                       ?? min(Int(Double(total) * defaultValidationFraction * 1.2), defaultValidationCap * 8))
        let budget = options.tokenizer.sampleBytes
        let started = DispatchTime.now().uptimeNanoseconds
        let sample = try TokenizerSample.read(root: root, sources: sources, from: head, bytes: budget, textField: options.textField) { read in
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            log.progress(String(format: "reading the tokenizer's sample: %@ of %@, %.0f MB/s", formatBytes(read), formatBytes(min(budget, total - head)),
                                Double(read) / 1e6 / max(seconds, 1e-9)))
        }
        guard sample.contains(where: { !$0.isWhitespace }) else {
            throw UserError("corpus \(options.corpus ?? root) holds no text to train a tokenizer on (its files are empty, or every line was invalid UTF-8)")
        }
        log.line("training a \(options.tokenizer.modelType.rawValue) tokenizer, vocab \(options.tokenizer.vocabSize), on \(formatBytes(sample.utf8.count)) sampled from \(formatBytes(total))…")
        let ticker = Ticker(every: 1) { seconds in log.progress("training the tokenizer: \(formatDuration(seconds)) (SentencePiece reports no progress)") }
        defer { ticker.stop() }
        let lines = sample.split(separator: "\n")
        let model = try SentencePieceModel.train(sentences: lines, options: options.tokenizer)
        ticker.stop()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        log.line(String(format: "tokenizer trained in %@ (%d sentences)", formatDuration(seconds), lines.count))
        return (model, sample.utf8.count)
    }

    // MARK: encoding

    /// Encodes the writer's remaining plan: chunks read in order, encoded `inFlight` at a time on the thread
    /// budget's workers (taking the next chunk as each finishes), handed to the writer in order.
    static func encode(root: String, writer: SplitWriter, tokenizer: SentencePieceModel, textField: String,
                       log: PrepareLog) throws -> (sources: Int, bytes: Int) {
        let encoder = try ChunkEncoder(tokenizer: tokenizer, textField: textField)
        let sources = writer.state.sources
        guard let start = writer.state.position else { return (0, 0) }
        let stream = ChunkStream(root: root, sources: sources, from: start, chunkBytes: chunkBytes)
        let totalBytes = sources[start.source...].reduce(0) { $0 + $1.estimatedTextBytes } - start.offset
        let started = DispatchTime.now().uptimeNanoseconds
        var done = 0, tokens = 0
        var lastReport = started
        let inFlight = 4 * Threads.count
        do {
            while true {
                var tasks: [ChunkTask] = []
                while tasks.count < inFlight, let task = try stream.next() { tasks.append(task) }
                if tasks.isEmpty { break }
                if let signal = log.stopRequested() {
                    try writer.saveNow()
                    throw UserError("\(signal): data preparation stopped after \(formatBytes(done)); run the same command again to continue where it stopped")
                }
                let results = encodeConcurrently(tasks) { task in
                    try encoder.encode(task, source: sources[task.source], path: root + "/" + sources[task.source].name)
                }
                for (task, result) in zip(tasks, results) {
                    let chunk = try result.get()
                    try writer.consume(chunk, task: task, next: stream.position(after: task))
                    done += task.bytes.count
                    tokens += chunk.ids.count
                }
                let now = DispatchTime.now().uptimeNanoseconds
                if now - lastReport > 500_000_000 {
                    lastReport = now
                    let seconds = Double(now - started) / 1e9
                    let rate = Double(done) / seconds
                    let eta = rate > 0 ? Double(max(0, totalBytes - done)) / rate : .infinity
                    log.progress(String(format: "encoding: %@ of %@ (%.0f %%), %.1f MB/s, %@ tokens/s, ETA %@", formatBytes(done), formatBytes(totalBytes),
                                        100 * Double(done) / Double(max(totalBytes, 1)), rate / 1e6, formatCount(Double(tokens) / seconds), formatDuration(eta)))
                }
            }
            try writer.finishAll(next: TokenManifest.Position(source: sources.count, offset: 0, line: 1))
        } catch {
            writer.discardOpen()
            throw error
        }
        return (sources.count - start.source, done)
    }

    /// Runs `body` on each task over the thread budget's workers, each taking the next task as it finishes; results in order.
    static func encodeConcurrently(_ tasks: [ChunkTask], _ body: @escaping (ChunkTask) throws -> EncodedChunk) -> [Result<EncodedChunk, Error>] {
        var results = [Result<EncodedChunk, Error>?](repeating: nil, count: tasks.count)
        let lock = NSLock()
        var next = 0
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let slots = out
            Threads.parallelFor(min(Threads.count, tasks.count), workPerItem: Threads.minParallelWork) { _, range in
                for _ in range {
                    while true {
                        lock.lock()
                        let i = next
                        next += 1
                        lock.unlock()
                        guard i < tasks.count else { break }
                        slots[i] = Result { try body(tasks[i]) }
                    }
                }
            }
        }
        return results.map { $0! }
    }
}

/// The writer's side of encoding: the validation split first, then training shards; progress saved whenever no
/// shard is open with ids in it.
final class SplitWriter {
    private(set) var state: TokenManifest
    let directory: String, progressPath: String
    let shardTokens: Int
    let estimatedTextBytes: Int
    private var validation: ShardWriter?, train: ShardWriter?
    let afterSave: ((TokenManifest) throws -> Void)?

    init(state: TokenManifest, directory: String, progressPath: String, shardTokens: Int, estimatedTextBytes: Int,
         afterSave: ((TokenManifest) throws -> Void)? = nil) {
        self.state = state; self.directory = directory; self.progressPath = progressPath
        self.shardTokens = shardTokens; self.estimatedTextBytes = estimatedTextBytes; self.afterSave = afterSave
    }

    func consume(_ chunk: EncodedChunk, task: ChunkTask, next: TokenManifest.Position) throws {
        if state.validationTarget == 0 && !chunk.ids.isEmpty {
            // 5 % of the corpus's tokens, estimated from its size and this first chunk's bytes per token
            let estimate = Double(estimatedTextBytes) * Double(chunk.ids.count) / Double(max(1, chunk.textBytes))
            state.validationTarget = state.settings.validationTokens
                ?? max(1, min(DataPreparation.defaultValidationCap, Int(estimate * DataPreparation.defaultValidationFraction)))
        }
        var ids = chunk.ids[...]
        let held = state.validationTokens + (validation?.count ?? 0)
        if held < state.validationTarget && !ids.isEmpty {
            let need = state.validationTarget - held
            let cut = ids.count <= need ? ids.count : (chunk.cuts.first { $0 >= need } ?? ids.count)
            if validation == nil { validation = try open("val", index: state.validation.count) }
            try validation!.append(ids[..<cut])
            ids = ids[cut...]
            if held + cut >= state.validationTarget || validation!.count >= shardTokens {
                state.validation.append(try validation!.finish())
                validation = nil
            }
        }
        if !ids.isEmpty {
            if train == nil { train = try open("train", index: state.train.count) }
            try train!.append(ids)
            if train!.count >= shardTokens {
                state.train.append(try train!.finish())
                train = nil
            }
        }
        state.textBytes += chunk.textBytes
        state.documents += chunk.documents
        state.skipped += chunk.skipped
        if state.firstSkipped == nil { state.firstSkipped = chunk.firstSkipped }
        state.position = next
        if validation == nil && train == nil {
            try state.write(to: progressPath)
            try afterSave?(state)
        }
    }

    /// Closes the open shards where they are (a stop: the shards then end there rather than at the shard size) and
    /// saves the progress, so that the next run continues exactly after the last chunk written.
    func saveNow() throws {
        if let v = validation { if v.count > 0 { state.validation.append(try v.finish()) } else { v.discard() } }
        if let t = train { if t.count > 0 { state.train.append(try t.finish()) } else { t.discard() } }
        validation = nil; train = nil
        try state.write(to: progressPath)
    }

    func finishAll(next: TokenManifest.Position) throws {
        if let v = validation, v.count > 0 { state.validation.append(try v.finish()) }
        if let t = train, t.count > 0 { state.train.append(try t.finish()) }
        validation = nil; train = nil
        state.position = next
    }

    func discardOpen() {
        validation?.discard(); train?.discard()
        validation = nil; train = nil
    }

    private func open(_ split: String, index: Int) throws -> ShardWriter {
        try ShardWriter(path: directory + "/\(split)-\(state.build)-\(String(index).leftPadded(to: 5, with: "0")).bin", vocabSize: state.vocabSize)
    }
}

/// The chunks of a list of sources in order, from a position.
final class ChunkStream {
    let root: String
    let sources: [CorpusSource]
    let chunkBytes: Int
    private var index: Int, line: Int
    /// Bytes of the first source already encoded (a continued preparation).
    private var skip: Int
    private var chunker: LineChunker?

    init(root: String, sources: [CorpusSource], from position: TokenManifest.Position, chunkBytes: Int) {
        self.root = root; self.sources = sources; self.chunkBytes = chunkBytes
        index = position.source; line = position.line; skip = position.offset
    }

    func next() throws -> ChunkTask? {
        while index < sources.count {
            if chunker == nil {
                let reader = try SourceReader(path: root + "/" + sources[index].name, gzip: sources[index].gzip)
                try reader.skip(skip)
                skip = 0
                chunker = LineChunker(reader: reader, chunkBytes: chunkBytes)
            }
            let offset = chunker!.offset
            if let bytes = try chunker!.next() {
                let lines = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                defer { line += lines }
                return ChunkTask(source: index, offset: offset, line: line, lines: lines, bytes: bytes, first: offset == 0)
            }
            chunker = nil
            index += 1
            line = 1
        }
        return nil
    }

    /// Where encoding continues once `task` is written: the next chunk of its source.
    func position(after task: ChunkTask) -> TokenManifest.Position {
        TokenManifest.Position(source: task.source, offset: task.offset + task.bytes.count, line: task.line + task.lines)
    }
}

/// The tokenizer's training text: lines from windows at evenly spaced offsets of the corpus.
enum TokenizerSample {
    static func read(root: String, sources: [CorpusSource], from head: Int, bytes budget: Int, textField: String,
                     progress: (Int) -> Void) throws -> String {
        let total = sources.reduce(0) { $0 + $1.estimatedTextBytes }
        let chunk = DataPreparation.chunkBytes
        let span = max(0, total - head)
        // A corpus that fits the budget is read whole (one window); a larger one in chunk-sized windows spread evenly.
        let whole = span <= budget
        let windows = whole ? 1 : max(1, budget / chunk)
        let stride = whole ? span : max(chunk, span / windows)
        var starts: [Int] = []   // cumulative source offsets
        var sum = 0
        for s in sources { starts.append(sum); sum += s.estimatedTextBytes }
        let field = Array(textField.utf8)
        var text: [UInt8] = []
        text.reserveCapacity(min(budget, span) + chunk)
        var reader: SourceReader?, readerSource = -1
        for w in 0..<windows where text.count < budget {
            var at = head + w * stride
            var want = whole ? span : min(chunk, budget - text.count)
            var source = max(0, (starts.lastIndex { $0 <= at }) ?? 0)
            while want > 0 && source < sources.count {
                let local = at - starts[source]
                if readerSource != source || reader == nil || reader!.offset > local {
                    // (a gzip file is decompressed once from its start: windows only move forward)
                    reader = try SourceReader(path: root + "/" + sources[source].name, gzip: sources[source].gzip)
                    readerSource = source
                }
                try reader!.skip(local - reader!.offset)
                let chunker = LineChunker(reader: reader!, chunkBytes: min(want, chunk))
                var partialFirstLine = local > 0
                while want > 0 {
                    let at = chunker.offset
                    guard let bytes = try chunker.next() else { break }
                    var piece = bytes[...]
                    if partialFirstLine, let nl = piece.firstIndex(of: 0x0A) { piece = piece[(nl + 1)...] }
                    partialFirstLine = false
                    let task = ChunkTask(source: source, offset: at + (bytes.count - piece.count), line: 0, lines: 0, bytes: Array(piece), first: at == 0)
                    for p in try ChunkText(task, format: sources[source].format, textField: field, path: root + "/" + sources[source].name).pieces {
                        text += p.text
                        text.append(0x0A)   // a record's last line, ended (the sentences are the non-empty lines)
                    }
                    want -= bytes.count
                }
                source += 1
                at = starts[min(source, sources.count - 1)]
            }
            progress(text.count)
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Serialises preparations of one cache directory (two runs starting at once, processes of a job).
final class DirectoryLock {
    private var fd: Int32
    init(_ directory: String, log: PrepareLog) throws {
        fd = open(directory + "/.lock", O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw UserError("cannot create \(directory)/.lock: \(String(cString: strerror(errno))); pass a writable --data-dir") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            log.line("waiting for another preparation of \(directory) to finish…")
            flock(fd, LOCK_EX)
        }
    }
    func release() { if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 } }
    deinit { release() }
}

/// Calls `body(seconds since start)` every `every` seconds on a background queue until stopped.
final class Ticker: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let lock = NSLock()
    private var stopped = false
    init(every seconds: Double, _ body: @escaping @Sendable (Double) -> Void) {
        let started = DispatchTime.now().uptimeNanoseconds
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + seconds, repeating: seconds)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            self.lock.lock(); defer { self.lock.unlock() }
            if !self.stopped { body(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
        }
        timer.resume()
    }
    func stop() {
        lock.lock(); defer { lock.unlock() }
        if !stopped { stopped = true; timer.cancel() }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
