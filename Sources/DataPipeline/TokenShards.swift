import Common
import Foundation
import Kernels

/// What a token cache holds, written as `manifest.json` beside its shards once a preparation completes (and, while
/// one runs, as `progress.json` with the position to continue from). Shards are token files (`TokenFile`) of at most
/// about `shardTokens` ids; each split is the concatenation of its shards in order.
public struct TokenManifest: Codable, Equatable, Sendable {
    public struct Shard: Codable, Equatable, Sendable {
        public var file: String
        public var tokens: Int
        /// SHA-256 of the shard's id bytes (also in its header).
        public var sha256: String
        public init(file: String, tokens: Int, sha256: String) {
            self.file = file; self.tokens = tokens; self.sha256 = sha256
        }
    }

    /// What the ids depend on besides the tokenizer and the sources: a change re-encodes everything.
    public struct Settings: Codable, Equatable, Sendable {
        public var textField: String
        /// Requested validation tokens (nil: 5 % of the corpus, at most `defaultValidationCap`).
        public var validationTokens: Int?
        public var chunkBytes: Int
        public var shardTokens: Int

        /// Whether a cache built with these settings holds the ids these would give (the shard size only cuts files).
        func sameTokens(as other: Settings) -> Bool {
            textField == other.textField && validationTokens == other.validationTokens && chunkBytes == other.chunkBytes
        }
    }

    /// Where encoding continues: a source (index into `sources`), a byte offset in its text, the line there.
    public struct Position: Codable, Equatable, Sendable {
        public var source: Int, offset: Int, line: Int
    }

    public static let currentFormat = 1
    public var format = TokenManifest.currentFormat
    public var tokenizerSHA256: String
    public var vocabSize: Int
    public var settings: Settings
    /// The sources in encoding order: all encoded in a manifest; in progress, those planned.
    public var sources: [CorpusSource]
    /// The validation split's size in tokens, fixed by the first chunk of the first preparation.
    public var validationTarget = 0
    public var validation: [Shard] = [], train: [Shard] = []
    /// UTF-8 bytes of text encoded, documents begun, lines or records skipped as invalid UTF-8 (first one named).
    public var textBytes = 0, documents = 0, skipped = 0
    public var firstSkipped: String?
    /// Only while a preparation runs.
    public var position: Position?
    /// Names this preparation's shard files, so they never overwrite those of the last complete manifest.
    public var build: String

    public var trainTokens: Int { train.reduce(0) { $0 + $1.tokens } }
    public var validationTokens: Int { validation.reduce(0) { $0 + $1.tokens } }

    public static func read(_ path: String) -> TokenManifest? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(TokenManifest.self, from: data)
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(self)), to: path)
    }
}

/// A token file being written: ids appended in order (converted to little-endian 16- or 32-bit and hashed on the
/// way), then `finish` writes the header, syncs and renames it into place. Until then it is a `.partial` file that
/// no reader opens; `discard` removes it.
final class ShardWriter {
    let path: String
    private let partial: String
    private let vocabSize: Int, width: Int
    private var fd: Int32
    private var hasher = SHA256()
    private var buffer: [UInt8] = []
    private(set) var count = 0

    init(path: String, vocabSize: Int) throws {
        self.path = path
        partial = path + ".partial"
        self.vocabSize = vocabSize
        width = TokenFile.width(vocabSize: vocabSize)
        fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw UserError(
                "cannot write \(partial): \(String(cString: strerror(errno))) (check that --data-dir is writable)")
        }
        try write([UInt8](repeating: 0, count: TokenFile.headerSize))
    }

    deinit { discard() }

    func append(_ ids: ArraySlice<Int32>) throws {
        guard !ids.isEmpty else { return }
        let (low, high) = ids.reduce((Int32.max, Int32.min)) { (min($0.0, $1), max($0.1, $1)) }
        precondition(low >= 0 && Int(high) < vocabSize, "token id outside the vocab")
        let width = width
        buffer = [UInt8](unsafeUninitializedCapacity: ids.count * width) { raw, initialized in
            let out = UnsafeMutableRawPointer(raw.baseAddress!)
            var i = 0
            for id in ids {
                if width == 2 {
                    out.storeBytes(
                        of: UInt16(truncatingIfNeeded: id).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                } else {
                    out.storeBytes(of: UInt32(bitPattern: id).littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
                i += 1
            }
            initialized = ids.count * width
        }
        hasher.update(buffer)
        try write(buffer)
        count += ids.count
    }

    /// Header, fsync, rename: the shard exists complete or not at all.
    func finish() throws -> TokenManifest.Shard {
        let digest = hasher.finalize()
        let header = TokenFile.header(vocabSize: vocabSize, count: count, sourceHash: digest)
        guard header.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == header.count else {
            throw failure()
        }
        guard fsync(fd) == 0 else { throw failure() }
        close(fd)
        fd = -1
        guard rename(partial, path) == 0 else {
            throw UserError("cannot rename \(partial) into \(path): \(String(cString: strerror(errno)))")
        }
        return TokenManifest.Shard(
            file: (path as NSString).lastPathComponent, tokens: count, sha256: SHA256.hex(digest))
    }

    func discard() {
        if fd >= 0 { close(fd); fd = -1; unlink(partial) }
    }

    private func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw failure() }
                offset += n
            }
        }
    }

    private func failure() -> UserError {
        let reason = String(cString: strerror(errno))
        discard()
        let diskFull =
            " (the disk is full: free space or choose another --data-dir; the last complete cache is untouched and "
            + "the preparation continues where it stopped when run again)"
        return UserError("writing \(partial) failed: \(reason)\(errno == ENOSPC ? diskFull : "")")
    }
}

/// Windows over a split made of shards, numbered across all of them: window `w` is window `index` of shard `shard`.
/// Windows never cross a shard boundary. Counts are Int: totals past 2^32 tokens are fine.
public struct ShardLayout: Sendable, Equatable {
    /// The first global window of each shard.
    public let firsts: [Int]
    public let windows: Int

    public init(windowsPerShard: [Int]) {
        var firsts: [Int] = [], total = 0
        for w in windowsPerShard { firsts.append(total); total += max(0, w) }
        self.firsts = firsts
        windows = total
    }

    /// The shard holding global window `window` (0..<windows) and the window's index inside it.
    public func locate(_ window: Int) -> (shard: Int, index: Int) {
        precondition(window >= 0 && window < windows)
        var low = 0, high = firsts.count - 1  // the last shard whose first window is ≤ window
        while low < high {
            let mid = (low + high + 1) / 2
            if firsts[mid] <= window { low = mid } else { high = mid - 1 }
        }
        return (low, window - firsts[low])
    }
}

/// A split's ids: its shards, memory-mapped, in order.
public final class TokenShards: @unchecked Sendable {
    public let shards: [MappedTokens]
    public let count: Int
    public let vocabSize: Int
    /// SHA-256 over the shards' hashes: names the split's exact ids.
    public let sha256: String

    public init(_ shards: [MappedTokens]) {
        self.shards = shards
        count = shards.reduce(0) { $0 + $1.count }
        vocabSize = shards.first?.vocabSize ?? 0
        var h = SHA256()
        for s in shards { h.update(s.header.sourceHash) }
        sha256 = SHA256.hex(h.finalize())
    }

    /// Opens a manifest's shards, checking each against its record.
    public convenience init(directory: String, records: [TokenManifest.Shard], vocabSize: Int) throws {
        let hint = "run `ngpt-train prepare` again to rebuild the cache"
        var opened: [MappedTokens] = []
        for r in records {
            let path = directory + "/" + r.file
            guard FileManager.default.fileExists(atPath: path) else {
                throw UserError("token shard \(path) is missing; \(hint)")
            }
            let shard = try MappedTokens(path: path)
            guard shard.count == r.tokens, SHA256.hex(shard.header.sourceHash) == r.sha256 else {
                throw UserError(
                    "token shard \(path) does not match the manifest (\(shard.count) tokens, expected \(r.tokens)); "
                        + "\(hint)"
                )
            }
            guard shard.vocabSize == vocabSize else {
                throw UserError(
                    "token file \(path) has vocab \(shard.vocabSize) but the tokenizer has \(vocabSize); \(hint)")
            }
            opened.append(shard)
        }
        self.init(opened)
    }

    /// One window's ids: `count` ids from `start` of shard `shard` into `out`.
    @inline(__always) public func copy(shard: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Int32>)
    {
        shards[shard].copy(from: start, count: n, into: out)
    }
}
