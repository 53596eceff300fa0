import Common
import Dispatch
import Foundation
import Kernels
import Tokenizer

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

    /// The texts directory of a built-in corpus (none given: Shakespeare; `debian-docs` when no file or folder of
    /// that name exists), fetched and prepared on first use; nil for a path.
    static func builtInCorpus(_ corpus: String?, root: String, log: (String) -> Void) throws -> String? {
        guard let corpus else { return try ShakespeareCorpus.ensure(root: root, log: log) }
        guard corpus == DebianDocsCorpus.name, !FileManager.default.fileExists(atPath: corpus) else { return nil }
        return try DebianDocsCorpus.ensure(root: root, log: log)
    }

    /// `afterSave` sees each saved progress state (tests stop a preparation there).
    static func prepare(
        _ options: DataOptions, context: Int, log: PrepareLog,
        afterSave: ((TokenManifest) throws -> Void)?, repairing: Bool = false
    ) throws -> PreparedData {
        signal(SIGXFSZ, SIG_IGN)  // a file-size limit fails the write (EFBIG, reported) instead of killing the process
        let started = DispatchTime.now().uptimeNanoseconds
        guard options.shardTokens > 0 else {
            throw UserError("--shard-tokens must be positive, got \(options.shardTokens)")
        }
        if let v = options.validationTokens, v < 1 { throw UserError("--val-tokens must be positive, got \(v)") }
        let corpusPath = try builtInCorpus(options.corpus, root: options.dataRoot, log: log.line) ?? options.corpus!
        let (root, listed) = try CorpusFiles.list(corpusPath)
        let settings = TokenManifest.Settings(
            textField: options.textField, validationTokens: options.validationTokens,
            chunkBytes: chunkBytes, shardTokens: options.shardTokens)
        let cache = try CacheDirectory(options: options, corpusPath: corpusPath)
        try Directories.create(cache.path, fix: "pass a writable --data-dir")
        let lock = try DirectoryLock(cache.path) {
            log.line("waiting for another preparation of \(cache.path) to finish…")
        }
        defer { lock.release() }

        var stats = PrepareStats()
        let previous = TokenManifest.read(cache.manifest)
        let known = (previous?.sources ?? []) + (TokenManifest.read(cache.progress)?.sources ?? [])
        let sources = try CorpusFiles.measuringGzip(listed, root: root, known: known, log: log)
        stats.sources = sources.count
        if previous == nil, FileManager.default.fileExists(atPath: cache.path + "/train.bin") {
            log.line(
                "the token cache in \(cache.path) was built by an earlier ngpt (train.bin, val.bin); rebuilding it "
                    + "as shards with a manifest"
            )
        }
        let (tokenizer, tokenizerPath) = try chooseTokenizer(
            cache: cache, previous: previous, sources: sources, root: root, settings: settings,
            options: options, stats: &stats, log: log)
        stats.vocabSize = tokenizer.vocabSize

        var state = plan(
            cache: cache, previous: previous, sources: sources, tokenizer: tokenizer, settings: settings, log: log)
        if state.position != nil {
            let encodeStarted = DispatchTime.now().uptimeNanoseconds
            let writer = SplitWriter(
                state: state, directory: cache.path, progressPath: cache.progress, shardTokens: options.shardTokens,
                estimatedTextBytes: sources.reduce(0) { $0 + $1.estimatedTextBytes }, afterSave: afterSave)
            let encoded = try encode(
                root: root, writer: writer, tokenizer: tokenizer, textField: options.textField, log: log)
            state = writer.state
            stats.sourcesEncoded = encoded.sources
            stats.bytesEncoded = encoded.bytes
            stats.encodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - encodeStarted) / 1e9
            guard state.trainTokens + state.validationTokens > 0 else {
                throw UserError(
                    "corpus \(corpusPath) holds no text to train on (its files are empty, or every line was invalid "
                        + "UTF-8)"
                )
            }
            guard state.trainTokens > 0 else {
                throw UserError(
                    "the validation split took the whole corpus (\(state.validationTokens) tokens); use a smaller "
                        + "--val-tokens or add text"
                )
            }
            state.position = nil
            try state.write(to: cache.manifest)
            unlink(cache.progress)
            removeUnlisted(in: cache.path, keeping: state)
        } else if FileManager.default.fileExists(atPath: cache.progress) {
            unlink(cache.progress)  // a stopped preparation of other settings: its shards go too
            removeUnlisted(in: cache.path, keeping: state)
        }

        let train: TokenShards, validation: TokenShards
        do {
            train = try TokenShards(directory: cache.path, records: state.train, vocabSize: tokenizer.vocabSize)
            validation = try TokenShards(
                directory: cache.path, records: state.validation, vocabSize: tokenizer.vocabSize)
        } catch let error as UserError where stats.sourcesEncoded == 0 && !repairing {
            // a damaged cache (a shard deleted, truncated, overwritten): encode again rather than send the user to
            // delete it
            log.line("the token cache in \(cache.path) is damaged (\(error.message)); encoding the corpus again")
            unlink(cache.manifest)
            lock.release()
            return try prepare(options, context: context, log: log, afterSave: afterSave, repairing: true)
        }
        guard train.shards.contains(where: { $0.count >= context + 1 }) else {
            throw UserError(
                "the training split has \(train.count) tokens, fewer than one window of \(context + 1); use a "
                    + "larger corpus or a smaller --context"
            )
        }
        guard validation.shards.contains(where: { $0.count >= context + 1 }) else {
            throw UserError(
                "the validation split has \(validation.count) tokens, fewer than one window of \(context + 1); use "
                    + "a larger corpus, a larger --val-tokens or a smaller --context"
            )
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
        return PreparedData(
            tokenizer: tokenizer, tokenizerPath: tokenizerPath, corpusPath: corpusPath, cacheDirectory: cache.path,
            manifest: state, train: train, validation: validation, stats: stats)
    }

    /// Where a corpus's cache lives and which tokenizer it is for: `<base>/<type>-<vocab>` for a tokenizer trained
    /// here, `<base>/model-<hash>` for a given one — unless the given one is the trained one (a resumed run's copy,
    /// rank 0's model handed to the other processes of a job), which then shares its cache.
    struct CacheDirectory {
        let path: String
        /// The tokenizer given with --tokenizer (or by the trainer), if any.
        let given: (any TextTokenizer)?
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
                let name = URL(fileURLWithPath: absolute).lastPathComponent.filter {
                    $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_"
                }
                base =
                    options.dataRoot
                    + "/cache/\(name.prefix(40))-\(SHA256.hex(SHA256.hash(Array(absolute.utf8))).prefix(10))"
            }
            let trained = base + "/\(options.tokenizer.modelType.rawValue)-\(options.tokenizer.vocabSize)"
            guard let modelPath = options.tokenizerModel else {
                path = trained; given = nil; ownsTokenizer = true
                return
            }
            let model = try SentencePieceModel(path: modelPath)
            given = model
            if FileManager.default.contents(atPath: trained + "/tokenizer.model").map({ [UInt8]($0) })
                == model.modelBytes
            {
                path = trained; ownsTokenizer = true
            } else {
                path = base + "/model-" + String(SHA256.hex(SHA256.hash(model.modelBytes)).prefix(12))
                ownsTokenizer = false
            }
        }
    }

    /// The tokenizer: the given one; else the cache's own while its corpus and options are unchanged (or only grew);
    /// else one trained now on a sample (or the given one, recorded as this cache's).
    static func chooseTokenizer(
        cache: CacheDirectory, previous: TokenManifest?, sources: [CorpusSource], root: String,
        settings: TokenManifest.Settings, options: DataOptions, stats: inout PrepareStats,
        log: PrepareLog
    ) throws -> (any TextTokenizer, String) {
        if let given = cache.given, !cache.ownsTokenizer { return (given, options.tokenizerModel ?? cache.tokenizer) }
        let cached = try? SentencePieceModel(path: cache.tokenizer)
        let stamp = tokenizerStamp(sources, options: options)
        if let cached, let previous, previous.tokenizerSHA256 == SHA256.hex(SHA256.hash(cached.modelBytes)),
            previous.settings.sameTokens(as: settings), unchangedPrefix(previous.sources, of: sources)
        {
            return (cached, cache.tokenizer)  // new files since the cache was built are encoded with it
        }
        if let cached, (try? String(contentsOfFile: cache.tokenizerStamp, encoding: .utf8)) == stamp {
            return (cached, cache.tokenizer)
        }
        let model: any TextTokenizer
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
    static func plan(
        cache: CacheDirectory, previous: TokenManifest?, sources: [CorpusSource], tokenizer: any TextTokenizer,
        settings: TokenManifest.Settings, log: PrepareLog
    ) -> TokenManifest {
        let tokenizerSHA = SHA256.hex(SHA256.hash(tokenizer.modelBytes))
        var state: TokenManifest
        if let previous, previous.tokenizerSHA256 == tokenizerSHA, previous.settings.sameTokens(as: settings),
            unchangedPrefix(previous.sources, of: sources)
        {
            state = previous
            let added = sources.filter { s in !previous.sources.contains { $0.name == s.name } }
            if added.isEmpty { return state }
            log.line(
                "\(added.count) file\(added.count == 1 ? "" : "s") added to the corpus since the cache was built: "
                    + "encoding \(added.count == 1 ? "it" : "them") alone"
            )
            state.sources += added
            state.position = TokenManifest.Position(source: previous.sources.count, offset: 0, line: 1)
            state.build = newBuildName()
        } else {
            if previous != nil {
                log.line(
                    "the corpus, tokenizer or settings changed since the cache in \(cache.path) was built; encoding "
                        + "it again"
                )
            }
            state = TokenManifest(
                tokenizerSHA256: tokenizerSHA, vocabSize: tokenizer.vocabSize, settings: settings, sources: sources,
                position: .init(source: 0, offset: 0, line: 1), build: newBuildName())
        }
        if let saved = TokenManifest.read(cache.progress), let position = saved.position,
            saved.tokenizerSHA256 == tokenizerSHA,
            saved.settings.sameTokens(as: settings), saved.sources.count == state.sources.count,
            zip(saved.sources, state.sources).allSatisfy({ $0.sameFile(as: $1) })
        {
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
}
