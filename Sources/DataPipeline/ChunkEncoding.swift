import Common
import Foundation
import Kernels
import Tokenizer

/// A piece of one source to encode: whole lines of a text file, or whole records of a JSON Lines file.
struct ChunkTask: Sendable {
    var source: Int
    /// Uncompressed byte offset of the chunk in its source, and the line number of its first line (1-based).
    var offset: Int, line: Int
    /// Line breaks in the chunk.
    var lines: Int
    var bytes: [UInt8]
    /// The chunk opens its source (a text file's document starts here).
    var first: Bool
}

/// A chunk's ids and what the writer needs to know about them.
struct EncodedChunk: Sendable {
    var ids: [Int32] = []
    /// Id counts at which the validation split may end: after each line (text) or record (JSONL).
    var cuts: [Int] = []
    /// UTF-8 bytes of the text encoded, documents begun, lines or records skipped as invalid UTF-8.
    var textBytes = 0, documents = 0, skipped = 0
    /// Where the first skipped line or record is, for the summary.
    var firstSkipped: String?
}

/// The documents' text in a chunk: a text file's valid lines (one document, begun by the source's first chunk) or
/// each JSON Lines record's field (one document each). Invalid UTF-8 (or a NUL byte) skips the line or record, counted;
/// a record that is not a JSON object, or lacks the field, is an error naming its line.
struct ChunkText {
    struct Piece { var text: [UInt8]; var opensDocument: Bool }
    var pieces: [Piece] = []
    var skipped = 0
    var firstSkipped: String?

    init(_ task: ChunkTask, format: CorpusSource.Format, textField: [UInt8], path: String) throws {
        // a line is named by its number when the chunk's first line number is known (encoding), else by byte offset
        func location(line: Int, byte: Int) -> String {
            task.line > 0 ? "\(path) line \(task.line + line)" : "\(path) at byte \(task.offset + byte)"
        }
        switch format {
        case .text:
            var body = task.bytes[...]
            if task.first && body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
            let text = Self.unixLineEnds(body)
            if !text.contains(0), String(validating: text, as: UTF8.self) != nil {
                pieces = [Piece(text: text, opensDocument: task.first)]  // the usual case: one check of the whole
                return
            }
            var kept: [UInt8] = []
            kept.reserveCapacity(text.count)
            var start = 0, index = 0
            while start < text.count {
                let end = text[start...].firstIndex(of: 0x0A).map { $0 + 1 } ?? text.count
                let line = text[start..<end]
                if !line.contains(0), String(validating: line, as: UTF8.self) != nil {
                    kept += line
                } else {
                    skip(location(line: index, byte: start))
                }
                start = end
                index += 1
            }
            pieces = [Piece(text: kept, opensDocument: task.first)]
        case .jsonl:
            var index = 0
            var start = task.bytes.startIndex
            while start < task.bytes.endIndex {
                let end = task.bytes[start...].firstIndex(of: 0x0A) ?? task.bytes.endIndex
                defer { start = end + 1; index += 1 }
                let line = task.bytes[start..<end]
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let here = location(line: index, byte: start)
                switch line.withUnsafeBufferPointer({ JSONLine.field(textField, in: $0) }) {
                case .value(let raw):
                    let text = Self.unixLineEnds(raw[...])
                    if !text.contains(0), String(validating: text, as: UTF8.self) != nil {
                        pieces.append(Piece(text: text, opensDocument: true))
                    } else {
                        skip(here)
                    }
                case .invalidText:
                    skip(here)
                case .missing(let keys):
                    let fieldName = String(decoding: textField, as: UTF8.self)
                    let seen =
                        keys.isEmpty ? "it has no fields" : "its fields: " + keys.prefix(8).joined(separator: ", ")
                    throw UserError(
                        "\(here): the record has no \"\(fieldName)\" field (\(seen)); pass --text-field with the "
                            + "field that holds the text"
                    )
                case .notAString:
                    let fieldName = String(decoding: textField, as: UTF8.self)
                    throw UserError(
                        "\(here): the \"\(fieldName)\" field is not a string; pass --text-field with the field that "
                            + "holds the text"
                    )
                case .malformed(let at):
                    throw UserError(
                        "\(here): not a JSON object (malformed at column \(at + 1)); a .jsonl file holds one JSON "
                            + "object per line"
                    )
                }
            }
        }
    }

    private mutating func skip(_ location: String) {
        skipped += 1
        if firstSkipped == nil { firstSkipped = location }
    }

    /// CRLF and lone CR become LF.
    static func unixLineEnds(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        guard bytes.contains(0x0D) else { return Array(bytes) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == 0x0D {
                out.append(0x0A)
                if i + 1 < bytes.endIndex && bytes[i + 1] == 0x0A { i += 1 }
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }
}

/// How the text of a chunk becomes ids: each document begun with BOS, its text encoded line by line. Runs on any
/// thread: every input is read-only.
struct ChunkEncoder: Sendable {
    let tokenizer: any TextTokenizer
    let newline: [Int32]
    let textField: [UInt8]

    init(tokenizer: any TextTokenizer, textField: String) throws {
        self.tokenizer = tokenizer
        newline = try tokenizer.encode("\n")
        self.textField = Array(textField.utf8)
    }

    func encode(_ task: ChunkTask, source: CorpusSource, path: String) throws -> EncodedChunk {
        let text = try ChunkText(task, format: source.format, textField: textField, path: path)
        var out = EncodedChunk(skipped: text.skipped, firstSkipped: text.firstSkipped)
        for piece in text.pieces {
            if piece.opensDocument {
                if tokenizer.bosId >= 0 { out.ids.append(tokenizer.bosId) }
                out.documents += 1
            }
            out.textBytes += piece.text.count
            let base = out.ids.count
            let (ids, lineEnds) = try piece.text.withUnsafeBytes { try tokenizer.encodeLines($0, newline: newline) }
            out.ids += ids
            switch source.format {
            case .text: out.cuts += lineEnds.map { $0 + base }  // validation may end at any line
            case .jsonl: out.cuts.append(out.ids.count)  // or after a whole record
            }
        }
        return out
    }
}

/// The one field of a JSON Lines record that holds the text. A small scanner, not a JSON library: it reads one
/// object per line, unescapes the wanted string and skips every other value without building it.
enum JSONLine {
    enum Field: Equatable {
        case value([UInt8])
        case missing(keys: [String])
        case notAString
        /// The string's escapes do not make valid UTF-8 (a lone surrogate).
        case invalidText
        case malformed(at: Int)
    }

    static func field(_ name: [UInt8], in line: UnsafeBufferPointer<UInt8>) -> Field {
        var s = Scanner(bytes: line)
        s.space()
        guard s.take(0x7B) else { return .malformed(at: s.i) }  // {
        var keys: [String] = []
        var found: Field?
        s.space()
        if s.take(0x7D) { return .missing(keys: []) }
        while true {
            s.space()
            guard s.peek == 0x22, let key = s.string() else { return .malformed(at: s.i) }
            s.space()
            guard s.take(0x3A) else { return .malformed(at: s.i) }  // :
            s.space()
            if found == nil, key.bytes == name {
                if s.peek == 0x22 {
                    guard let value = s.string() else { return .malformed(at: s.i) }
                    found = value.validEscapes ? .value(value.bytes) : .invalidText
                } else {
                    guard s.skipValue() else { return .malformed(at: s.i) }
                    found = .notAString
                }
            } else {
                keys.append(String(decoding: key.bytes, as: UTF8.self))
                guard s.skipValue() else { return .malformed(at: s.i) }
            }
            s.space()
            if s.take(0x2C) { continue }  // ,
            guard s.take(0x7D) else { return .malformed(at: s.i) }
            s.space()
            guard s.i == line.count else { return .malformed(at: s.i) }
            return found ?? .missing(keys: keys)
        }
    }

    struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        mutating func space() { while let c = peek, c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { i += 1 } }
        mutating func take(_ c: UInt8) -> Bool { if peek == c { i += 1; return true }; return false }

        /// A string at `i` (on its opening quote), unescaped.
        mutating func string() -> (bytes: [UInt8], validEscapes: Bool)? {
            guard take(0x22) else { return nil }
            var out: [UInt8] = []
            var valid = true
            while let c = peek {
                i += 1
                if c == 0x22 { return (out, valid) }
                guard c == 0x5C else { out.append(c); continue }  // backslash
                guard let e = peek else { return nil }
                i += 1
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    guard var unit = hex4() else { return nil }
                    var scalar = UInt32(unit)
                    if (0xD800..<0xDC00).contains(unit) {
                        // a high surrogate must be followed by \u and a low one
                        if peek == 0x5C, i + 1 < bytes.count, bytes[i + 1] == 0x75 {
                            i += 2
                            guard let low = hex4() else { return nil }
                            if (0xDC00..<0xE000).contains(low) {
                                scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                            } else {
                                valid = false; unit = low
                            }
                        } else {
                            valid = false
                        }
                    } else if (0xDC00..<0xE000).contains(unit) {
                        valid = false
                    }
                    if valid, let u = Unicode.Scalar(scalar) {
                        out += Array(String(Character(u)).utf8)
                    } else {
                        valid = false
                    }
                default: return nil
                }
            }
            return nil
        }

        mutating func hex4() -> UInt16? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt16 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt16
                switch c {
                case 0x30...0x39: d = UInt16(c - 0x30)
                case 0x41...0x46: d = UInt16(c - 0x41 + 10)
                case 0x61...0x66: d = UInt16(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        /// Skips any value: a string, an object or array (nested), or a literal.
        mutating func skipValue() -> Bool {
            guard let c = peek else { return false }
            if c == 0x22 { return string() != nil }
            if c == 0x7B || c == 0x5B {
                var depth = 0
                while let d = peek {
                    if d == 0x22 { guard string() != nil else { return false }; continue }
                    i += 1
                    if d == 0x7B || d == 0x5B { depth += 1 }
                    if d == 0x7D || d == 0x5D { depth -= 1; if depth == 0 { return true } }
                }
                return false
            }
            let start = i
            while let d = peek, d != 0x2C, d != 0x7D, d != 0x5D, d != 0x20, d != 0x09, d != 0x0D { i += 1 }
            return i > start
        }
    }
}
