import CZlib
import Common
import Foundation
import Kernels

/// One input file of a corpus: UTF-8 text (one document per file) or JSON Lines (one document per record), either
/// possibly gzip-compressed (recognised by its magic bytes, whatever its name).
public struct CorpusSource: Codable, Equatable, Sendable {
    public enum Format: String, Codable, Sendable { case text, jsonl }
    /// Path relative to the corpus directory (the file name for a single-file corpus): how the manifest names it.
    public var name: String
    public var format: Format
    public var gzip: Bool
    /// Size and modification time on disk: a source whose either changed is encoded again.
    public var bytes: Int
    public var modified: Double
    /// Uncompressed size: exact for plain files, from the gzip trailer (modulo 4 GiB, lifted past the file size) for
    /// gzip.
    public var estimatedTextBytes: Int
    /// `estimatedTextBytes` was measured by decompressing (gzip; plain files are always exact).
    public var exactTextBytes: Bool = false

    enum CodingKeys: String, CodingKey { case name, format, gzip, bytes, modified, estimatedTextBytes, exactTextBytes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name); format = try c.decode(Format.self, forKey: .format)
        gzip = try c.decode(Bool.self, forKey: .gzip); bytes = try c.decode(Int.self, forKey: .bytes)
        modified = try c.decode(Double.self, forKey: .modified)
        estimatedTextBytes = try c.decode(Int.self, forKey: .estimatedTextBytes)
        // manifests before it was recorded
        exactTextBytes = try c.decodeIfPresent(Bool.self, forKey: .exactTextBytes) ?? !gzip
    }

    init(name: String, format: Format, gzip: Bool, bytes: Int, modified: Double, estimatedTextBytes: Int) {
        self.name = name; self.format = format; self.gzip = gzip; self.bytes = bytes; self.modified = modified
        self.estimatedTextBytes = estimatedTextBytes; exactTextBytes = !gzip
    }

    /// What identifies the file's content for the caches (not its absolute path: a moved corpus stays cached).
    func sameFile(as other: CorpusSource) -> Bool {
        name == other.name && format == other.format && gzip == other.gzip && bytes == other.bytes
            && modified == other.modified
    }
}

public enum CorpusFiles {
    /// File names read from a corpus directory (each also with `.gz`).
    public static let extensions = [".txt", ".jsonl", ".ndjson"]

    /// The sources of a corpus path: the file itself, or the corpus files under a directory (recursively, sorted by
    /// path; hidden files skipped). Refuses missing paths, empty directories and unreadable files, each in one line.
    public static func list(_ path: String) throws -> (root: String, sources: [CorpusSource]) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UserError(
                "corpus not found: \(path) (pass --corpus with a text or .jsonl file, gzip-compressed or not, or a "
                    + "directory of them)"
            )
        }
        guard isDirectory.boolValue else {
            let root = (path as NSString).deletingLastPathComponent
            return (
                root.isEmpty ? "." : root,
                [try source(root: root.isEmpty ? "." : root, name: (path as NSString).lastPathComponent)]
            )
        }
        guard let walker = FileManager.default.enumerator(atPath: path) else {
            throw UserError("cannot list corpus directory \(path) (check its permissions)")
        }
        var names: [String] = []
        while let entry = walker.nextObject() as? String {
            let file = (entry as NSString).lastPathComponent
            if file.hasPrefix(".") { continue }
            let plain = entry.hasSuffix(".gz") ? String(entry.dropLast(3)) : entry
            if extensions.contains(where: { plain.hasSuffix($0) }) { names.append(entry) }
        }
        guard !names.isEmpty else {
            throw UserError(
                "corpus directory \(path) has no corpus files (\(extensions.joined(separator: ", ")), each "
                    + "optionally .gz)"
            )
        }
        return (path, try names.sorted().map { try source(root: path, name: $0) })
    }

    static func source(root: String, name: String) throws -> CorpusSource {
        let path = root + "/" + name
        // FIFOs, devices and sockets are refused before a read could block or never end.
        let (fd, _) = try InputFile.open(path, what: "corpus file")
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw UserError("cannot read corpus file \(path): \(String(cString: strerror(errno)))")
        }
        var head = [UInt8](repeating: 0, count: 1 << 16)
        let headCount = max(0, pread(fd, &head, head.count, 0))
        let gzip = headCount >= 2 && head[0] == 0x1F && head[1] == 0x8B
        if !gzip, let nul = head[..<headCount].firstIndex(of: 0) { throw binaryFile(path, at: nul) }
        let plainName = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        let format: CorpusSource.Format =
            plainName.hasSuffix(".jsonl") || plainName.hasSuffix(".ndjson") ? .jsonl : .text
        let size = Int(st.st_size)
        var estimate = size
        if gzip, size >= 18 {
            var trailer: UInt32 = 0
            _ = pread(fd, &trailer, 4, off_t(size - 4))
            estimate = Int(UInt32(littleEndian: trailer))
            // the trailer holds the size modulo 4 GiB: text compresses at least 2×, so a smaller figure wrapped around
            if size >= 1 << 20 { while estimate < 2 * size { estimate += 1 << 32 } }
        }
        let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        return CorpusSource(
            name: name, format: format, gzip: gzip, bytes: size, modified: modified, estimatedTextBytes: estimate)
    }
}

extension CorpusFiles {
    /// Text never holds a NUL byte; a file that does (an image, an archive, a model) is not a corpus, and its
    /// few "lines" of valid UTF-8 would leave the tokenizer too little text to train on.
    static func binaryFile(_ path: String, at offset: Int) -> UserError {
        UserError(
            "corpus file \(path) looks binary (a NUL byte at offset \(offset) of its text); a corpus is UTF-8 text: "
                + "remove the file from the corpus"
        )
    }

    /// Gives every gzip source its exact uncompressed size. The gzip trailer holds only the last member's size
    /// (modulo 4 GiB), so a file of concatenated members would otherwise be taken for a smaller text, and the
    /// validation split and the tokenizer's sample, both placed by size, would differ from those of the same text
    /// uncompressed. One decompression pass per file, remembered in the manifest (`known`: same name, size and
    /// modification time) so that it is paid once.
    static func measuringGzip(_ sources: [CorpusSource], root: String, known: [CorpusSource], log: PrepareLog) throws
        -> [CorpusSource]
    {
        var out = sources
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for (i, source) in sources.enumerated() where source.gzip {
            if let same = known.first(where: { $0.sameFile(as: source) && $0.exactTextBytes }) {
                out[i].estimatedTextBytes = same.estimatedTextBytes
                out[i].exactTextBytes = true
                continue
            }
            let reader = try SourceReader(path: root + "/" + source.name, gzip: true)
            var total = 0
            while true {
                let n = try reader.read(into: buffer)
                if n == 0 { break }
                if total == 0, let nul = UnsafeRawBufferPointer(rebasing: buffer[..<min(n, 1 << 16)]).firstIndex(of: 0)
                {
                    throw binaryFile(root + "/" + source.name, at: nul)
                }
                total += n
                if total % (64 << 20) < n {  // every 64 MiB of text: a long file shows progress and can be stopped
                    log.progress("measuring \(source.name): \(formatBytes(total)) of text")
                    if let signal = log.stopRequested() {
                        throw UserError("\(signal): stopped while measuring \(source.name); run the same command again")
                    }
                }
            }
            out[i].estimatedTextBytes = total
            out[i].exactTextBytes = true
        }
        return out
    }
}

/// A sequential reader of a source's (uncompressed) bytes.
final class SourceReader {
    let path: String
    private let fd: Int32
    /// zlib's state points back at its z_stream: it lives on the heap, never copied.
    private var stream: UnsafeMutablePointer<z_stream>?
    private var input: UnsafeMutablePointer<UInt8>?
    private static let inputSize = 1 << 18
    private var finished = false
    /// Uncompressed bytes delivered so far.
    private(set) var offset = 0

    init(path: String, gzip: Bool) throws {
        self.path = path
        fd = try InputFile.open(path, what: "corpus file").fd
        if gzip {
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            guard ngpt_inflate_init_gzip(s) == Z_OK else {
                s.deallocate(); close(fd); throw UserError("zlib could not start reading \(path)")
            }
            stream = s
            input = .allocate(capacity: Self.inputSize)
        }
    }

    deinit {
        if let stream { inflateEnd(stream); stream.deallocate() }
        input?.deallocate()
        close(fd)
    }

    /// Fills `buffer` as far as the data goes; returns the byte count (less than the buffer only at the end).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count && !finished {
            let n =
                stream == nil
                ? try readPlain(buffer.baseAddress! + filled, buffer.count - filled)
                : try inflate(buffer.baseAddress! + filled, buffer.count - filled)
            if n == 0 { finished = true }
            filled += n
        }
        offset += filled
        return filled
    }

    /// Skips `count` bytes (a seek for plain files; decompressing and discarding for gzip).
    func skip(_ count: Int) throws {
        guard count > 0 else { return }
        if stream == nil {
            guard lseek(fd, off_t(count), SEEK_CUR) >= 0 else {
                throw UserError("cannot seek in \(path): \(String(cString: strerror(errno)))")
            }
            offset += count
            return
        }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { scratch.deallocate() }
        var left = count
        while left > 0 {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(left, scratch.count)]))
            if n == 0 { return }
            left -= n
        }
    }

    private func readPlain(_ p: UnsafeMutableRawPointer, _ n: Int) throws -> Int {
        while true {
            let got = Glibc.read(fd, p, n)
            if got >= 0 { return got }
            if errno == EINTR { continue }
            throw UserError("reading \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Inflates into p; 0 only at the end of the last gzip member. A file that ends inside a member is truncated.
    private func inflate(_ p: UnsafeMutableRawPointer, _ n: Int) throws -> Int {
        let z = stream!
        z.pointee.next_out = p.assumingMemoryBound(to: UInt8.self)
        z.pointee.avail_out = UInt32(min(n, Int(UInt32.max)))
        func produced() -> Int { offset + n - Int(z.pointee.avail_out) }
        while z.pointee.avail_out > 0 {
            if z.pointee.avail_in == 0 {
                let got = try readPlain(input!, Self.inputSize)
                if got == 0 {
                    // an empty file: no text
                    if z.pointee.total_out == 0 && z.pointee.total_in == 0 && !memberDone { break }
                    if memberDone { break }
                    throw UserError(
                        "\(path) is truncated: its gzip data ends early after \(produced()) bytes of text "
                            + "(re-download or re-compress it)"
                    )
                }
                z.pointee.next_in = input
                z.pointee.avail_in = UInt32(got)
            }
            if memberDone {
                // another gzip member follows (concatenated .gz files are one stream, as gzip -d reads them)
                inflateReset(z)
                memberDone = false
            }
            let rc = CZlib.inflate(z, Z_NO_FLUSH)
            if rc == Z_STREAM_END { memberDone = true; continue }
            if rc == Z_BUF_ERROR { continue }
            guard rc == Z_OK else {
                let reason = z.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw UserError(
                    "\(path) is not valid gzip data (\(reason) after \(produced()) bytes of text); re-download or "
                        + "re-compress it"
                )
            }
        }
        return n - Int(z.pointee.avail_out)
    }
    private var memberDone = false
}

/// A source cut into chunks of about `chunkBytes` that end at line breaks (or at the end of the file): what the
/// encoders work on. Boundaries depend only on the bytes and the chunk size, so a preparation continued from a
/// chunk's offset cuts the rest exactly as an uninterrupted one.
final class LineChunker {
    let reader: SourceReader
    let chunkBytes: Int
    /// A line longer than this is refused (the file is probably not line-broken text).
    static let maxLineBytes = 64 << 20
    private var pending: [UInt8] = []
    private var atEnd = false
    /// Uncompressed offset of the next chunk's first byte.
    private(set) var offset: Int

    init(reader: SourceReader, chunkBytes: Int) {
        self.reader = reader; self.chunkBytes = chunkBytes; offset = reader.offset
    }

    /// The next chunk (ending with "\n" unless it is the file's last), or nil at the end.
    func next() throws -> [UInt8]? {
        var want = chunkBytes
        while true {
            if pending.count < want && !atEnd {
                let have = pending.count
                pending.append(contentsOf: repeatElement(0, count: want - have))
                let got = try pending.withUnsafeMutableBytes {
                    try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[have...]))
                }
                pending.removeLast(want - have - got)
                if have + got < want { atEnd = true }
            }
            if pending.isEmpty { return nil }
            if atEnd && pending.count <= want { return take(pending.count) }
            if let nl = pending[..<min(want, pending.count)].lastIndex(of: 0x0A) { return take(nl + 1) }
            if atEnd { return take(pending.count) }
            guard want < Self.maxLineBytes else {
                throw UserError(
                    "\(reader.path) has a line longer than \(Self.maxLineBytes >> 20) MiB at byte offset \(offset); "
                        + "a corpus must be text with line breaks"
                )
            }
            want = min(want * 2, Self.maxLineBytes)
        }
    }

    private func take(_ n: Int) -> [UInt8] {
        let chunk = Array(pending[..<n])
        pending.removeFirst(n)
        offset += n
        return chunk
    }
}
