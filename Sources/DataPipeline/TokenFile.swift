import Common
import Foundation
import Kernels

/// A binary file of token ids with a 64-byte little-endian header:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `NGPTTOKS` |
/// | 8 | 4 | format version (1) |
/// | 12 | 4 | element width in bytes: 2 (UInt16 ids, vocab ≤ 65536) or 4 (UInt32) |
/// | 16 | 4 | vocab size |
/// | 20 | 4 | reserved (0) |
/// | 24 | 8 | token count |
/// | 32 | 32 | SHA-256 of what the tokens were made from (tokenizer model and corpus text) |
/// | 64 | count × width | the ids |
public enum TokenFile {
    public static let magic: [UInt8] = Array("NGPTTOKS".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64

    public struct Header: Equatable, Sendable {
        public var width: Int, vocabSize: Int, count: Int, sourceHash: [UInt8]
    }

    /// Bytes per id: 2 when the vocabulary fits in 16 bits, else 4.
    public static func width(vocabSize: Int) -> Int { vocabSize <= 65536 ? 2 : 4 }

    /// The 64-byte header.
    public static func header(vocabSize: Int, count: Int, sourceHash: [UInt8]) -> [UInt8] {
        precondition(sourceHash.count == 32)
        var out = [UInt8](repeating: 0, count: headerSize)
        out.replaceSubrange(0..<8, with: magic)
        func put<T: FixedWidthInteger>(_ v: T, at offset: Int) {
            withUnsafeBytes(of: v.littleEndian) {
                out.replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: $0)
            }
        }
        put(version, at: 8)
        put(UInt32(width(vocabSize: vocabSize)), at: 12)
        put(UInt32(vocabSize), at: 16)
        put(UInt64(count), at: 24)
        out.replaceSubrange(32..<64, with: sourceHash)
        return out
    }

    /// Writes ids atomically; 16-bit elements when the vocab fits, 32-bit otherwise.
    public static func write(_ ids: [Int32], vocabSize: Int, sourceHash: [UInt8], to path: String) throws {
        let width = width(vocabSize: vocabSize)
        var out = header(vocabSize: vocabSize, count: ids.count, sourceHash: sourceHash)
        out += repeatElement(0, count: ids.count * width)
        out.withUnsafeMutableBytes { raw in
            let body = raw.baseAddress.unsafelyUnwrapped + headerSize
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && Int(id) < vocabSize, "token id \(id) outside the vocab")
                if width == 2 {
                    body.storeBytes(of: UInt16(id).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                } else {
                    body.storeBytes(of: UInt32(id).littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            }
        }
        try AtomicFile.write(out, to: path)
    }

    /// Parses and checks a header against the file's length.
    public static func readHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Header {
        let hint = "delete it and run `ngpt-train prepare` again to rebuild it"
        guard bytes.count >= headerSize else {
            throw UserError("token file \(path) is truncated (\(bytes.count) bytes, no full header); \(hint)")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw UserError("\(path) is not an ngpt token file (bad magic); \(hint)")
        }
        func get<T: FixedWidthInteger>(_ type: T.Type, _ offset: Int) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let v = get(UInt32.self, 8)
        guard v == version else {
            throw UserError("token file \(path) has format version \(v), this ngpt reads \(version); \(hint)")
        }
        let width = Int(get(UInt32.self, 12)), vocab = Int(get(UInt32.self, 16)), count = Int(get(UInt64.self, 24))
        guard width == 2 || width == 4, vocab > 0, width == 4 || vocab <= 65536 else {
            throw UserError("token file \(path) has a corrupt header (width \(width), vocab \(vocab)); \(hint)")
        }
        guard count >= 0, count <= (bytes.count - headerSize) / width, bytes.count == headerSize + count * width else {
            throw UserError(
                "token file \(path) is truncated or corrupt (header says \(count) tokens, file has \(bytes.count) "
                    + "bytes); \(hint)"
            )
        }
        return Header(width: width, vocabSize: vocab, count: count, sourceHash: Array(bytes[32..<64]))
    }
}

/// Token ids read through a memory map (pages load on first touch). Every id is checked once at open.
public final class MappedTokens: @unchecked Sendable {
    public let header: TokenFile.Header
    private let file: MappedFile
    private let body: UnsafeRawPointer?

    public var count: Int { header.count }
    public var vocabSize: Int { header.vocabSize }

    public init(path: String) throws {
        file = try MappedFile(path: path)
        header = try TokenFile.readHeader(file.bytes, path: path)
        body = file.bytes.baseAddress.map { $0 + TokenFile.headerSize }
        let maxId = header.width == 2 && header.vocabSize == 65536 ? 0 : largestId()
        guard maxId < header.vocabSize else {
            throw UserError(
                "token file \(path) holds id \(maxId) ≥ its vocab size \(header.vocabSize) (corrupt); delete it to "
                    + "rebuild"
            )
        }
    }

    /// The largest id in the file: one vectorised pass (about a tenth of a second per 100M 16-bit ids) in blocks
    /// whose pages are handed back after reading, so that checking a large cache does not fill the process's memory.
    private func largestId() -> Int {
        guard let b = body, header.count > 0 else { return 0 }
        let n = header.count, block = 1 << 24
        var m = 0
        for start in stride(from: 0, to: n, by: block) {
            let end = min(n, start + block)
            var i = start
            if header.width == 2 {
                var lanes = SIMD32<UInt16>(repeating: 0)
                while i + 32 <= end {
                    lanes = pointwiseMax(lanes, b.loadUnaligned(fromByteOffset: 2 * i, as: SIMD32<UInt16>.self))
                    i += 32
                }
                m = max(m, Int(lanes.max()))
            } else {
                var lanes = SIMD16<UInt32>(repeating: 0)
                while i + 16 <= end {
                    lanes = pointwiseMax(lanes, b.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self))
                    i += 16
                }
                m = max(m, Int(lanes.max()))
            }
            while i < end { m = max(m, Int(UInt32(bitPattern: self[i]))); i += 1 }
            file.dropPages((TokenFile.headerSize + start * header.width)..<(TokenFile.headerSize + end * header.width))
        }
        return m
    }

    @inline(__always) public subscript(i: Int) -> Int32 {
        guard let b = body else { return 0 }
        return header.width == 2
            ? Int32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            : Int32(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
    }

    /// Copies ids[start ..< start+count] into `out`.
    @inline(__always) public func copy(from start: Int, count n: Int, into out: UnsafeMutablePointer<Int32>) {
        for j in 0..<n { out[j] = self[start + j] }
    }
}
