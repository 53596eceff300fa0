/// A JSON value, typed: what `StrictJSON` reads and what stored configurations are written from. Integral numbers
/// that fit an `Int` stay exact (`.int`); every other number is a `.double`.
public enum JSONValue: Equatable, Sendable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null

    public var object: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var string: String? { if case .string(let s) = self { s } else { nil } }

    /// An integer, also from a number written with a fraction or exponent that is one exactly (`3.0`, `1e3`).
    public var int: Int? {
        switch self {
        case .int(let i): i
        case .double(let d): Int(exactly: d)
        default: nil
        }
    }

    /// Any number as a Double.
    public var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// JSON text: keys sorted, two-space indentation when `pretty` (a stable form for files people diff).
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, indent: pretty ? "" : nil)
        return out
    }

    private func write(to out: inout String, indent: String?) {
        switch self {
        case .object(let o):
            guard !o.isEmpty else { out += "{}"; return }
            let inner = indent.map { $0 + "  " }
            out += "{"
            for (n, key) in o.keys.sorted().enumerated() {
                out += (n == 0 ? "" : ",") + (inner.map { "\n" + $0 } ?? "")
                JSONValue.string(key).write(to: &out, indent: nil)
                out += indent == nil ? ":" : " : "
                o[key]!.write(to: &out, indent: inner)
            }
            out += (indent.map { "\n" + $0 } ?? "") + "}"
        case .array(let a):
            let inner = indent.map { $0 + "  " }
            out += "["
            for (n, v) in a.enumerated() {
                out += (n == 0 ? "" : ",") + (inner.map { "\n" + $0 } ?? "")
                v.write(to: &out, indent: inner)
            }
            out += (a.isEmpty ? "" : indent.map { "\n" + $0 } ?? "") + "]"
        case .string(let s):
            out += "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where u.value < 0x20:
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(u)
                }
            }
            out += "\""
        case .int(let i): out += "\(i)"
        // Swift prints the shortest text that reads back to the same Double; JSON has no NaN or infinity.
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }
}

extension JSONValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral
{
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: CustomStringConvertible {
    /// The value as messages quote it: strings bare, everything else as JSON.
    public var description: String { string ?? serialized(pretty: false) }
}
