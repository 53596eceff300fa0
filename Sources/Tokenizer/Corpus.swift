import Foundation
import Kernels

/// One document of a corpus: a play, a file. Splits never cut a document in two (except a single-file corpus).
public struct Document: Sendable, Equatable {
    public var name: String
    public var text: String
    public init(name: String, text: String) { self.name = name; self.text = text }
}

/// A corpus split by document into training and validation parts.
public struct CorpusSplit: Sendable {
    public var train: [Document]
    public var validation: [Document]
}

public enum Corpus {
    /// Loads a corpus: a UTF-8 text file (one document) or a directory whose `.txt` files (recursively, sorted
    /// by path) are the documents. Refuses missing paths, empty corpora and files that are not UTF-8 text.
    public static func load(path: String) throws -> [Document] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UserError("corpus not found: \(path) (pass --corpus with a UTF-8 .txt file or a directory of .txt files)")
        }
        var documents: [Document] = []
        if isDirectory.boolValue {
            guard let walker = FileManager.default.enumerator(atPath: path) else {
                throw UserError("cannot list corpus directory \(path)")
            }
            var files: [String] = []
            while let entry = walker.nextObject() as? String {
                if entry.hasSuffix(".txt") { files.append(entry) }
            }
            guard !files.isEmpty else {
                throw UserError("corpus directory \(path) has no .txt files (put your text in .txt files, UTF-8)")
            }
            for file in files.sorted() {
                let text = try readText(path + "/" + file)
                if !text.isEmpty { documents.append(Document(name: file, text: text)) }
            }
        } else {
            let text = try readText(path)
            if !text.isEmpty { documents.append(Document(name: (path as NSString).lastPathComponent, text: text)) }
        }
        guard documents.contains(where: { !$0.text.allSatisfy(\.isWhitespace) }) else {
            throw UserError("corpus \(path) is empty (it holds no text to train on)")
        }
        return documents
    }

    /// Reads a file as UTF-8 text, with a BOM removed and CRLF/CR line ends made LF. Binary or non-UTF-8 files
    /// are refused with the offset of the first bad byte.
    public static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("cannot read \(path) (check that it exists and is readable)")
        }
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        if let nul = bytes.firstIndex(of: 0) {
            throw UserError("\(path) looks binary (a NUL byte at offset \(nul)); a corpus must be UTF-8 text")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = firstInvalidUTF8Offset(bytes)
            throw UserError("\(path) is not valid UTF-8 (bad byte at offset \(offset)); convert it, e.g. `iconv -f latin1 -t utf-8`")
        }
        return text.contains("\r") ? text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : text
    }

    /// Offset of the first byte that does not start a valid UTF-8 sequence.
    static func firstInvalidUTF8Offset(_ b: [UInt8]) -> Int {
        var i = 0
        while i < b.count {
            let c = b[i]
            let n: Int
            if c < 0x80 { n = 1 } else if c & 0xE0 == 0xC0 { n = 2 } else if c & 0xF0 == 0xE0 { n = 3 }
            else if c & 0xF8 == 0xF0 { n = 4 } else { return i }
            // a truncated, overlong or surrogate sequence
            if i + n > b.count || String(validating: b[i..<(i + n)], as: UTF8.self) == nil { return i }
            i += n
        }
        return b.count
    }

    /// Removes Project Gutenberg's header and licence: everything up to and including the "*** START OF"
    /// line and from the "*** END OF" line on (texts without the markers are returned unchanged).
    public static func stripGutenbergBoilerplate(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        func isMarker(_ line: Substring, _ word: String) -> Bool {
            let upper = line.uppercased()
            return upper.hasPrefix("***") && upper.contains(word) && upper.contains("PROJECT GUTENBERG")
        }
        if let end = lines.firstIndex(where: { isMarker($0, "END OF") }) {
            lines.removeSubrange(end...)
        }
        if let start = lines.firstIndex(where: { isMarker($0, "START OF") }) {
            lines.removeSubrange(...start)
        }
        return lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
    }

    /// Splits by whole documents: documents are ranked by a hash of their name (stable, independent of the
    /// order they were found in) and taken for validation until they hold `validationFraction` of the
    /// characters. A single-document corpus is split at the line boundary nearest to the fraction from its end.
    public static func split(_ documents: [Document], validationFraction: Double = 0.05) throws -> CorpusSplit {
        guard validationFraction > 0, validationFraction < 1 else {
            throw UserError("the validation fraction must be in (0, 1), got \(validationFraction)")
        }
        guard !documents.isEmpty else { throw UserError("cannot split an empty corpus") }
        if documents.count == 1 {
            let doc = documents[0]
            let chars = Array(doc.text.unicodeScalars)
            var cut = Int(Double(chars.count) * (1 - validationFraction))
            if let nl = chars[cut...].firstIndex(of: "\n"), nl + 1 < chars.count { cut = nl + 1 }
            var head = String.UnicodeScalarView(), tail = String.UnicodeScalarView()
            head.append(contentsOf: chars[..<cut])
            tail.append(contentsOf: chars[cut...])
            return CorpusSplit(train: [Document(name: doc.name, text: String(head))],
                               validation: [Document(name: doc.name + " (tail)", text: String(tail))])
        }
        let total = documents.reduce(0) { $0 + $1.text.utf8.count }
        let ranked = documents.sorted { SHA256.hash(Array($0.name.utf8)).lexicographicallyPrecedes(SHA256.hash(Array($1.name.utf8))) }
        var validationNames = Set<String>()
        var taken = 0
        for doc in ranked where Double(taken) < validationFraction * Double(total) && validationNames.count < documents.count - 1 {
            validationNames.insert(doc.name)
            taken += doc.text.utf8.count
        }
        return CorpusSplit(train: documents.filter { !validationNames.contains($0.name) },
                           validation: documents.filter { validationNames.contains($0.name) })
    }
}
