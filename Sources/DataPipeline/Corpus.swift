import Common
import Foundation
import Kernels

public enum Corpus {
    /// The largest text read whole (texts to score or inspect; corpora stream and have no limit).
    public static let maxTextBytes = 1 << 30

    /// Reads a file as UTF-8 text, with a BOM removed and CRLF/CR line ends made LF. Binary or non-UTF-8 files
    /// are refused with the offset of the first bad byte.
    public static func readText(_ path: String) throws -> String {
        var bytes = try InputFile.read(path, what: "text file", limit: maxTextBytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        if let nul = bytes.firstIndex(of: 0) {
            throw UserError("\(path) looks binary (a NUL byte at offset \(nul)); a corpus must be UTF-8 text")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = firstInvalidUTF8Offset(bytes)
            throw UserError(
                "\(path) is not valid UTF-8 (bad byte at offset \(offset)); convert it, e.g. `iconv -f latin1 -t utf-8`"
            )
        }
        return text.contains("\r")
            ? text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : text
    }

    /// Offset of the first byte that does not start a valid UTF-8 sequence.
    static func firstInvalidUTF8Offset(_ b: [UInt8]) -> Int {
        var i = 0
        while i < b.count {
            let c = b[i]
            let n: Int
            if c < 0x80 {
                n = 1
            } else if c & 0xE0 == 0xC0 {
                n = 2
            } else if c & 0xF0 == 0xE0 {
                n = 3
            } else if c & 0xF8 == 0xF0 {
                n = 4
            } else {
                return i
            }
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
}
