import CSentencePiece
import Common
import Foundation

/// How to train a SentencePiece model. The defaults make decode(encode(text)) == text for any UTF-8 text:
/// identity normalisation, whitespace kept as it is, byte fallback so nothing is ever <unk>, no dummy
/// prefix (so encoding line by line equals encoding the whole text).
public struct TokenizerTrainingOptions: Sendable, Equatable, Codable {
    public enum ModelType: String, Sendable, Codable, CaseIterable { case bpe, unigram }
    public var vocabSize: Int
    public var modelType: ModelType
    public var byteFallback: Bool
    public var splitDigits: Bool
    /// Bytes of text the tokenizer is trained on: lines sampled evenly from the corpus (all of a smaller corpus).
    public var sampleBytes: Int

    /// SentencePiece's worker threads, fixed (its own default) and not the run's thread budget: the trained
    /// model records them, and a tokenizer must be a function of its text and these options only.
    static let trainerThreads = 16

    public static let defaultSampleBytes = 64_000_000

    public init(
        vocabSize: Int = 4096, modelType: ModelType = .bpe, byteFallback: Bool = true, splitDigits: Bool = true,
        sampleBytes: Int = defaultSampleBytes
    ) {
        self.vocabSize = vocabSize; self.modelType = modelType; self.byteFallback = byteFallback
        self.splitDigits = splitDigits; self.sampleBytes = sampleBytes
    }

    var flags: [(String, String)] {
        [
            ("vocab_size", "\(vocabSize)"), ("model_type", modelType.rawValue), ("byte_fallback", "\(byteFallback)"),
            ("split_digits", "\(splitDigits)"), ("normalization_rule_name", "identity"),
            ("remove_extra_whitespaces", "false"), ("add_dummy_prefix", "false"),
            ("allow_whitespace_only_pieces", "true"),
            ("character_coverage", "1.0"), ("max_sentence_length", "16384"), ("num_threads", "\(Self.trainerThreads)"),
            ("minloglevel", "2"),
        ]
    }
}

/// The training sentences as the C callback sees them: the current one stays alive until the next call.
private final class SentenceSource {
    let next: () -> Substring?
    private var current = UnsafeMutableBufferPointer<CChar>.allocate(capacity: 1)
    init(_ next: @escaping () -> Substring?) { self.next = next }

    /// A copy of `line`'s UTF-8 that lives until the next call.
    func hold(_ line: Substring) -> UnsafeMutableBufferPointer<CChar> {
        current.deallocate()
        let utf8 = Array(line.utf8)
        current = .allocate(capacity: max(1, utf8.count))
        for (i, b) in utf8.enumerated() { current[i] = CChar(bitPattern: b) }
        return UnsafeMutableBufferPointer(rebasing: current[0..<utf8.count])
    }

    deinit { current.deallocate() }
}

/// A loaded SentencePiece model: encode, decode, special ids, piece ↔ id. Every library failure is a
/// `UserError` carrying SentencePiece's own message.
public final class SentencePieceModel: TextTokenizer, @unchecked Sendable {
    private let handle: OpaquePointer
    public let vocabSize: Int
    public let bosId: Int32, eosId: Int32, unkId: Int32
    /// The serialized model, as loaded (hashed into token caches and copied into run directories).
    public let modelBytes: [UInt8]

    /// The largest .model file read (a 1M-piece model is about 20 MB).
    public static let maxModelBytes = 1 << 30

    /// Loads a `.model` file, including ones trained by other tools.
    public convenience init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError(
                "tokenizer model not found: \(path) (train one with `ngpt-train prepare`, or pass the path of an "
                    + "existing SentencePiece .model)"
            )
        }
        let data = try InputFile.read(path, what: "tokenizer model", limit: Self.maxModelBytes)
        do {
            try self.init(bytes: data)
        } catch let error as UserError {
            throw UserError("\(path) is not a valid SentencePiece model (\(error.message)); pass a valid .model")
        }
    }

    /// Loads a serialized model (the bytes of a `.model` file).
    public init(bytes: [UInt8]) throws {
        var h: OpaquePointer?
        var err = [CChar](repeating: 0, count: 1024)
        let rc = bytes.withUnsafeBytes { spm_load_from_bytes($0.baseAddress, bytes.count, &h, &err, err.count) }
        guard rc == SPM_OK, let handle = h else { throw UserError(Self.text(err)) }
        self.handle = handle
        modelBytes = bytes
        vocabSize = Int(spm_vocab_size(handle))
        bosId = spm_bos_id(handle)
        eosId = spm_eos_id(handle)
        unkId = spm_unk_id(handle)
    }

    deinit { spm_free(handle) }

    /// Trains a model on a UTF-8 text file (one sentence per line) and writes `<modelPrefix>.model`
    /// (and SentencePiece's `.vocab` listing beside it).
    public static func train(inputFile: String, modelPrefix: String, options: TokenizerTrainingOptions) throws {
        let flags = [("input", inputFile), ("model_prefix", modelPrefix)] + options.flags
        var err = [CChar](repeating: 0, count: 2048)
        let rc = withFlags(flags) { k, v in spm_train(k, v, flags.count, &err, err.count) }
        guard rc == SPM_OK else { throw trainingError(text(err), options: options) }
    }

    /// Trains a model on the sentences of `lines` (one sentence per element, no newlines) without any file:
    /// the model records no path, so the same text and options give the same bytes.
    public static func train<S: Sequence>(sentences lines: S, options: TokenizerTrainingOptions) throws
        -> SentencePieceModel
    where S.Element == Substring {
        var iterator = lines.makeIterator()
        let source = SentenceSource { iterator.next() }
        let next: spm_sentence_source = { context, data, length in
            let source = Unmanaged<SentenceSource>.fromOpaque(context!).takeUnretainedValue()
            guard let line = source.next() else { return 0 }
            let bytes = source.hold(line)
            data!.pointee = UnsafePointer(bytes.baseAddress!)
            length!.pointee = bytes.count
            return 1
        }
        let flags = options.flags
        var err = [CChar](repeating: 0, count: 2048)
        var model: UnsafeMutableRawPointer?
        var length = 0
        let rc = withExtendedLifetime(source) {
            withFlags(flags) { k, v in
                spm_train_sentences(
                    k, v, flags.count, next, Unmanaged.passUnretained(source).toOpaque(), &model, &length, &err,
                    err.count)
            }
        }
        guard rc == SPM_OK, let model else { throw trainingError(text(err), options: options) }
        defer { spm_free_bytes(model) }
        return try SentencePieceModel(bytes: [UInt8](UnsafeRawBufferPointer(start: model, count: length)))
    }

    private static func withFlags<R>(
        _ flags: [(String, String)],
        _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> R
    ) -> R {
        let keys = flags.map { strdup($0.0) }, values = flags.map { strdup($0.1) }
        defer { keys.forEach { free($0) }; values.forEach { free($0) } }
        return keys.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in body(k.baseAddress, v.baseAddress) }
        }
    }

    /// SentencePiece's training failures in the user's terms.
    static func trainingError(_ message: String, options: TokenizerTrainingOptions) -> UserError {
        // "Vocabulary size is smaller than required_chars. 300 vs 342.": the vocabulary must hold every character.
        if message.contains("smaller than required_chars"),
            let numbers = message.split(separator: ".").last(where: { $0.contains(" vs ") })?.split(separator: " ")
                .compactMap({ Int($0) }),
            let needed = numbers.last
        {
            return UserError(
                "--vocab-size \(options.vocabSize) is too small: the vocabulary must hold every distinct character "
                    + "of the training text and the special pieces, \(needed) here; use --vocab-size \(needed) or more"
            )
        }
        if message.contains("sentences_.empty()") {
            return UserError(
                "the training text has no line SentencePiece can use (it trains on lines of at most 16384 bytes); "
                    + "break the text into lines"
            )
        }
        if message.contains("Vocabulary size too high") {
            return UserError(
                "the training text is too small for a vocabulary of \(options.vocabSize) (SentencePiece: "
                    + "\(message)); choose a smaller --vocab-size or add text"
            )
        }
        return UserError("tokenizer training failed: \(message)")
    }

    /// Token ids of UTF-8 text.
    public func encode(_ text: String) throws -> [Int32] {
        var t = text
        return try t.withUTF8 { try encode(bytes: UnsafeRawBufferPointer($0)) }
    }

    public func encode(bytes: UnsafeRawBufferPointer) throws -> [Int32] {
        var err = [CChar](repeating: 0, count: 512)
        var needed = 0
        var ids = [Int32](repeating: 0, count: bytes.count + 16)
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        var rc = spm_encode(handle, base, bytes.count, &ids, ids.count, &needed, &err, err.count)
        if rc == SPM_TOO_SMALL {
            ids = [Int32](repeating: 0, count: needed)
            rc = spm_encode(handle, base, bytes.count, &ids, ids.count, &needed, &err, err.count)
        }
        guard rc == SPM_OK else { throw UserError("encoding failed: \(Self.text(err))") }
        ids.removeLast(ids.count - needed)
        return ids
    }

    /// Ids of UTF-8 text encoded line by line, `newline` after each "\n" (the same ids as the whole text for a model
    /// trained here: no piece spans a newline), and the id count after each "\n".
    public func encodeLines(_ text: UnsafeRawBufferPointer, newline: [Int32]) throws -> (ids: [Int32], lineEnds: [Int])
    {
        var err = [CChar](repeating: 0, count: 512)
        var ids: UnsafeMutablePointer<Int32>?, ends: UnsafeMutablePointer<Int64>?
        var capacity = 0, count = 0, endCapacity = 0, endCount = 0
        defer { spm_free_bytes(ids); spm_free_bytes(ends) }
        let rc = spm_encode_lines(
            handle, text.baseAddress?.assumingMemoryBound(to: CChar.self), text.count, newline, newline.count,
            &ids, &capacity, &count, &ends, &endCapacity, &endCount, &err, err.count)
        guard rc == SPM_OK else { throw UserError("encoding failed: \(Self.text(err))") }
        let idArray = ids.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
        let endArray = ends.map { UnsafeBufferPointer(start: $0, count: endCount).map { Int($0) } } ?? []
        return (idArray, endArray)
    }

    /// UTF-8 bytes of ids (a prefix of a sequence may end inside a multi-byte character).
    public func decodeBytes<C: Collection>(_ ids: C) throws -> [UInt8] where C.Element == Int32 {
        let arr = Array(ids)
        var err = [CChar](repeating: 0, count: 512)
        var needed = 0
        var out = [CChar](repeating: 0, count: 8 * arr.count + 16)
        var rc = spm_decode(handle, arr, arr.count, &out, out.count, &needed, &err, err.count)
        if rc == SPM_TOO_SMALL {
            out = [CChar](repeating: 0, count: needed)
            rc = spm_decode(handle, arr, arr.count, &out, out.count, &needed, &err, err.count)
        }
        guard rc == SPM_OK else { throw UserError("decoding failed: \(Self.text(err))") }
        return out.prefix(needed).map { UInt8(bitPattern: $0) }
    }

    /// UTF-8 bytes each id stands for in decoded text: 0 for a control piece (BOS, EOS), 1 for a byte-fallback piece
    /// (`<0xE2>`: alone it would decode to U+FFFD), the decoded piece's length otherwise. Summed over a sequence they
    /// give the length of its text: what bits per byte divide by.
    public func byteLengths() throws -> [Int] {
        try (0..<Int32(vocabSize)).map { id in
            var kind: Int32 = 0
            var err = [CChar](repeating: 0, count: 256)
            guard spm_piece_kind(handle, id, &kind, &err, err.count) == SPM_OK else { throw UserError(Self.text(err)) }
            switch kind {
            case 2: return 0
            case 3: return 1
            default: return try decodeBytes([id]).count
            }
        }
    }

    /// The id of a piece (the unk id when the model has no such piece).
    public func id(ofPiece piece: String) -> Int32 {
        var id: Int32 = -1
        var err = [CChar](repeating: 0, count: 256)
        var p = piece
        let rc = p.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) {
                spm_piece_to_id(handle, $0.baseAddress, $0.count, &id, &err, err.count)
            }
        }
        return rc == SPM_OK ? id : unkId
    }

    /// The piece of an id; ids outside 0..<vocabSize are an error, not a crash.
    public func piece(ofId id: Int32) throws -> String {
        var err = [CChar](repeating: 0, count: 256)
        var needed = 0
        var out = [CChar](repeating: 0, count: 256)
        var rc = spm_id_to_piece(handle, id, &out, out.count, &needed, &err, err.count)
        if rc == SPM_TOO_SMALL {
            out = [CChar](repeating: 0, count: needed)
            rc = spm_id_to_piece(handle, id, &out, out.count, &needed, &err, err.count)
        }
        guard rc == SPM_OK else { throw UserError(Self.text(err)) }
        return String(decoding: out.prefix(needed).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func text(_ err: [CChar]) -> String {
        String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
