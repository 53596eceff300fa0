/// A JSON reader for files that people write or share (a `--config` file, a checkpoint's header): RFC 8259 JSON,
/// read into `JSONValue`s, but strict where it is silent: a key that appears twice in one object, a number outside
/// Double's range (1e400) and nesting deeper than `maxDepth` are refused, each with a message that says where.
public struct StrictJSON {
    public static let maxDepth = 64

    private let bytes: [UInt8]
    private var i = 0

    /// Parses a whole document; `what` names it in messages ("--config file x.json").
    public static func parse(_ bytes: [UInt8], what: String) throws -> JSONValue {
        var parser = StrictJSON(bytes: bytes)
        do {
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.i == bytes.count else { throw parser.error("unexpected text after the JSON value") }
            return value
        } catch let e as UserError {
            throw UserError("\(what): \(e.message)")
        }
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> UserError {
        let line = bytes[..<min(i, bytes.count)].reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        return UserError("\(message) (line \(line))")
    }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        guard depth <= Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
        guard i < bytes.count else { throw error("the JSON ends early") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return .object(try object(depth: depth))
        case UInt8(ascii: "["): return .array(try array(depth: depth))
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return try number()
        }
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw error("not valid JSON") }
        i += w.count
    }

    private mutating func object(depth: Int) throws -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        try elements(closedBy: "}") { p in
            guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "\"") else {
                throw p.error("expected a key in quotes")
            }
            let key = try p.string()
            guard out[key] == nil else { throw p.error("the key \"\(key)\" appears twice in one object") }
            p.skipSpace()
            guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: ":") else {
                throw p.error("expected ':' after \"\(key)\"")
            }
            p.i += 1
            p.skipSpace()
            out[key] = try p.value(depth: depth + 1)
        }
        return out
    }

    private mutating func array(depth: Int) throws -> [JSONValue] {
        var out: [JSONValue] = []
        try elements(closedBy: "]") { p in out.append(try p.value(depth: depth + 1)) }
        return out
    }

    /// The elements of an object or array (the opening bracket at `i`), each read by `element`, separated by commas.
    private mutating func elements(closedBy close: Unicode.Scalar, _ element: (inout StrictJSON) throws -> Void) throws
    {
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: close) { i += 1; return }
        while true {
            skipSpace()
            try element(&self)
            skipSpace()
            guard i < bytes.count else { throw error("the JSON ends early") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            guard bytes[i] == UInt8(ascii: close) else { throw error("expected ',' or '\(close)'") }
            i += 1
            return
        }
    }

    private mutating func string() throws -> String {
        i += 1
        var utf8: [UInt8] = []
        while true {
            guard i < bytes.count else { throw error("a string is not closed") }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            guard c >= 0x20 else { throw error("a control character inside a string") }
            guard c == UInt8(ascii: "\\") else { utf8.append(c); continue }
            guard i < bytes.count else { throw error("a string is not closed") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error("an unpaired surrogate in a string")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("an unpaired surrogate in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("an unpaired surrogate in a string") }
                utf8 += Array(String(Character(u)).utf8)
            default: throw error("a bad escape in a string")
            }
        }
        guard let s = String(validating: utf8, as: UTF8.self) else { throw error("a string is not UTF-8") }
        return s
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16)
        else {
            throw error("a bad \\u escape in a string")
        }
        i += 4
        return v
    }

    private mutating func number() throws -> JSONValue {
        let start = i
        func digits() -> Int {
            let s = i
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
            return i - s
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intDigits = digits()
        guard intDigits > 0 else { throw error("not valid JSON") }
        var integral = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1; integral = false
            guard digits() > 0 else { throw error("a number lacks digits after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1; integral = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw error("a number lacks its exponent") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let n = Int(text) { return .int(n) }
        guard let d = Double(text), d.isFinite else { throw error("the number \(text) is out of range") }
        return .double(d)
    }
}
