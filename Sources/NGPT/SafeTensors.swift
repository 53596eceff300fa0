import Common
import Foundation
import Kernels

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
/// N bytes of JSON (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {string: string}}`), then the
/// little-endian, row-major tensor bytes. Readers tolerate unaligned data (values are copied out) and reject
/// malformed files: bad JSON, a header over 100 MB, unknown dtypes, sizes that disagree with shapes, and offsets
/// that overlap, leave holes or run past the file.
public struct SafeTensors {
    public struct Entry: Equatable, Sendable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int, end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public static let maxHeaderSize = 100_000_000
    static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "C64": 8,
        "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
    ]

    public let metadata: [String: String]
    public let entries: [String: Entry]
    /// The byte buffer after the header.
    public let data: [UInt8]

    public var names: [String] { entries.keys.sorted() }

    // MARK: Reading

    /// Reads a regular file whole (it is refused when larger than the memory available to hold it).
    public init(path: String) throws {
        let bytes = try InputFile.read(path, what: "checkpoint", limit: AvailableMemory.bytes() ?? Int.max)
        do { try self.init(bytes: bytes) } catch let e as UserError {
            throw UserError("\(path): \(e.message)")
        }
    }

    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw UserError("truncated: \(bytes.count) bytes, no header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(Self.maxHeaderSize) else { throw UserError("header length \(n) exceeds the 100 MB limit") }
        let headerEnd = 8 + Int(n)
        guard headerEnd <= bytes.count else {
            throw UserError("truncated: header needs \(n) bytes, file has \(bytes.count - 8)")
        }
        guard n >= 2, bytes[8] == UInt8(ascii: "{") else { throw UserError("header is not a JSON object") }
        let json: JSONValue
        do { json = try StrictJSON.parse(Array(bytes[8..<headerEnd]), what: "header") } catch let e as UserError {
            throw UserError("\(e.message) (the header is not valid JSON)")
        }
        guard let object = json.object else { throw UserError("header is not a JSON object") }
        var meta: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (key, value) in object {
            if key == "__metadata__" {
                guard let m = value.object else { throw UserError("__metadata__ must be an object") }
                for (k, v) in m {
                    guard let s = v.string else {
                        throw UserError("__metadata__ value for \"\(k)\" is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard let e = value.object, let dtype = e["dtype"]?.string,
                let shape = e["shape"]?.array, let offsets = e["data_offsets"]?.array, offsets.count == 2
            else {
                throw UserError("tensor \"\(key)\" lacks dtype, shape or data_offsets")
            }
            guard let size = Self.dtypeSizes[dtype] else {
                throw UserError("tensor \"\(key)\" has unknown dtype \(dtype)")
            }
            let dims = try shape.map { v -> Int in
                guard let i = Self.nonNegativeInt(v) else { throw UserError("tensor \"\(key)\" has a bad shape") }
                return i
            }
            guard let begin = Self.nonNegativeInt(offsets[0]), let end = Self.nonNegativeInt(offsets[1]), begin <= end
            else {
                throw UserError("tensor \"\(key)\" has bad data_offsets")
            }
            let (numel, overflow) = dims.reduce((1, false)) { acc, x in
                let r = acc.0.multipliedReportingOverflow(by: x); return (r.partialValue, acc.1 || r.overflow)
            }
            let bytes = numel.multipliedReportingOverflow(by: size)
            guard !overflow, !bytes.overflow, end - begin == bytes.partialValue else {
                throw UserError("tensor \"\(key)\": \(end - begin) bytes for shape \(dims) of \(dtype)")
            }
            entries[key] = Entry(dtype: dtype, shape: dims, begin: begin, end: end)
        }
        // The tensors must tile the buffer exactly: no holes, no overlaps, nothing past the end.
        let buffer = bytes.count - headerEnd
        var expected = 0
        for e in entries.values.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard e.begin == expected else {
                throw UserError(
                    e.begin < expected
                        ? "tensor data overlaps at byte \(e.begin)" : "hole in tensor data at byte \(expected)")
            }
            expected = e.end
        }
        guard expected == buffer else {
            throw UserError(
                expected > buffer
                    ? "truncated: tensors need \(expected) data bytes, file has \(buffer)"
                    : "\(buffer - expected) trailing bytes after the last tensor")
        }
        metadata = meta
        self.entries = entries
        data = Array(bytes[headerEnd...])
    }

    private static func nonNegativeInt(_ v: JSONValue) -> Int? {
        guard let i = v.int, i >= 0, i < 1 << 53 else { return nil }
        return i
    }

    /// A tensor's values as Float (from F32, F64, F16 or BF16).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw UserError("no tensor named \"\(name)\"") }
        return try data.withUnsafeBytes { raw -> [Float] in
            let p = raw.baseAddress.unsafelyUnwrapped + e.begin
            switch e.dtype {
            case "F32":
                return (0..<e.count).map {
                    Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
                }
            case "F64":
                return (0..<e.count).map {
                    Float(
                        Double(
                            bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))))
                }
            case "BF16":
                return (0..<e.count).map {
                    Float(
                        bitPattern: UInt32(
                            UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16)
                }
            case "F16":
                return (0..<e.count).map {
                    Float(
                        Float16(
                            bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))))
                }
            default: throw UserError("tensor \"\(name)\" is \(e.dtype), not a floating-point type")
            }
        }
    }

    /// A tensor's values as Double (F64 exactly; F32 widened).
    public func doubles(_ name: String) throws -> [Double] {
        guard let e = entries[name] else { throw UserError("no tensor named \"\(name)\"") }
        if e.dtype == "F64" {
            return data.withUnsafeBytes { raw in
                (0..<e.count).map {
                    Double(
                        bitPattern: UInt64(
                            littleEndian: raw.loadUnaligned(fromByteOffset: e.begin + 8 * $0, as: UInt64.self)))
                }
            }
        }
        return try floats(name).map(Double.init)
    }

    /// A tensor's values as Int64 (from I32 or I64).
    public func integers(_ name: String) throws -> [Int64] {
        guard let e = entries[name] else { throw UserError("no tensor named \"\(name)\"") }
        return try data.withUnsafeBytes { raw -> [Int64] in
            switch e.dtype {
            case "I64":
                return (0..<e.count).map {
                    Int64(littleEndian: raw.loadUnaligned(fromByteOffset: e.begin + 8 * $0, as: Int64.self))
                }
            case "I32":
                return (0..<e.count).map {
                    Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: e.begin + 4 * $0, as: Int32.self)))
                }
            default: throw UserError("tensor \"\(name)\" is \(e.dtype), not an integer type")
            }
        }
    }

    // MARK: Writing

    /// A tensor to write: F32 values or I64 values.
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        public var bytes: [UInt8]

        public init(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
            precondition(shape.reduce(1, *) == floats.count)
            self.name = name; self.shape = shape; dtype = "F32"
            var b = [UInt8](repeating: 0, count: floats.count * 4)
            b.withUnsafeMutableBytes { raw in
                for (i, x) in floats.enumerated() {
                    raw.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            }
            bytes = b
        }

        public init(name: String, shape: [Int], floats: [Float]) {
            self = floats.withUnsafeBufferPointer { Tensor(name: name, shape: shape, floats: $0) }
        }

        public init(name: String, shape: [Int], int64s: [Int64]) {
            precondition(shape.reduce(1, *) == int64s.count)
            self.name = name; self.shape = shape; dtype = "I64"
            bytes = int64s.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        }
    }

    /// The file's bytes, as the reference writer lays them out: `__metadata__` first (omitted when empty), tensors
    /// sorted by name (all our dtypes are then naturally aligned: F32/I64 tensors of whole elements), compact JSON
    /// with keys in the order dtype, shape, data_offsets, and the header padded with spaces to a multiple of 8.
    public static func serialize(_ tensors: [Tensor], metadata: [String: String]) -> [UInt8] {
        let sorted = tensors.sorted { (alignment($0.dtype), $1.name) > (alignment($1.dtype), $0.name) }
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append(
                "\"__metadata__\":{"
                    + metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0] ?? ""))" }
                    .joined(separator: ",") + "}")
        }
        var offset = 0
        for t in sorted {
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append(
                "\(jsonString(t.name)):{\"dtype\":\"\(t.dtype)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out += header
        for t in sorted { out += t.bytes }
        return out
    }

    private static func alignment(_ dtype: String) -> Int { dtypeSizes[dtype] ?? 1 }

    static func jsonString(_ s: String) -> String { JSONValue.string(s).serialized() }
}
