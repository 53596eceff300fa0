import Common
import Kernels
import NGPT
import Tokenizer

/// A type a training key can hold: how a flag's text and a JSON value become one, and how it is stored.
public protocol SettingType: Sendable, Equatable {
    /// How messages name the type ("an integer", "ngpt or gpt") and the placeholder help shows (`--steps <n>`).
    static var names: (type: String, value: String) { get }
    init?(flag text: String)
    static func from(_ json: JSONValue) -> Self?
    var json: JSONValue { get }
}

extension SettingType where Self: LosslessStringConvertible {
    public init?(flag text: String) { self.init(text) }
}

extension Int: SettingType {
    public static var names: (type: String, value: String) { ("an integer", "n") }
    public static func from(_ json: JSONValue) -> Int? { json.int }
    public var json: JSONValue { .int(self) }
}

extension Double: SettingType {
    public static var names: (type: String, value: String) { ("a number", "x") }
    public static func from(_ json: JSONValue) -> Double? { json.double }
    public var json: JSONValue { .double(self) }
}

extension String: SettingType {
    public static var names: (type: String, value: String) { ("a string", "text") }
    public static func from(_ json: JSONValue) -> String? { json.string }
    public var json: JSONValue { .string(self) }
}

/// A setting that is one of a few names (a model kind, a precision): read and written as its raw value.
public protocol NamedSetting: SettingType, RawRepresentable<String>, CaseIterable {}

extension NamedSetting {
    /// "ngpt or gpt".
    public static var choices: String { allCases.map(\.rawValue).joined(separator: " or ") }
    public init?(flag text: String) { self.init(rawValue: text) }
    public static func from(_ json: JSONValue) -> Self? { json.string.flatMap(Self.init(rawValue:)) }
    public var json: JSONValue { .string(rawValue) }
}

extension ModelKind: NamedSetting { public static var names: (type: String, value: String) { (choices, "kind") } }
extension Parameterization: NamedSetting {
    public static var names: (type: String, value: String) { (choices, "name") }
}
extension GEMM.Precision: NamedSetting { public static var names: (type: String, value: String) { (choices, "p") } }
extension TokenizerTrainingOptions.ModelType: NamedSetting {
    public static var names: (type: String, value: String) { (choices, "type") }
}

/// Settings by key name (`"steps": 100`), typed as JSON types them: what a `--config` file, a command's training
/// flags and a stored config.json hold before `TrainConfig.apply` checks them against `TrainingKey.all`.
public struct Settings: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public var values: [String: JSONValue]

    public init(_ values: [String: JSONValue] = [:]) { self.values = values }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.values = Dictionary(elements) { _, last in last }
    }

    public subscript(name: String) -> JSONValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    public var names: [String] { values.keys.sorted() }

    /// These settings with `other`'s on top.
    public func merging(_ other: Settings) -> Settings { Settings(values.merging(other.values) { $1 }) }

    /// Command-line flags (`--steps 100`, `--lr=3e-3`) of `keys`, each read as its key's type. `listing` says
    /// where the accepted flags are listed, for the message about an unknown one.
    public static func fromFlags(
        _ args: [String], keys: [TrainingKey] = TrainingKey.all,
        listing: String = "ngpt-train train --help lists the training flags"
    ) throws -> Settings {
        var out = Settings()
        var i = 0
        while i < args.count {
            let arg = args[i]
            guard arg.hasPrefix("--") else { throw UserError("unexpected argument \(arg)") }
            var name = String(arg.dropFirst(2)), value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else {
                guard i + 1 < args.count else { throw UserError("\(arg) needs a value") }
                value = args[i + 1]
                i += 1
            }
            guard let key = keys.first(where: { $0.name == name }) else {
                throw UserError(
                    "unknown flag --\(name)" + TrainingKey.suggestion(for: name, among: keys) { "--" + $0 }
                        + "; " + listing)
            }
            guard let typed = key.parseFlag(value) else {
                throw UserError("--\(name) must be \(key.typeDescription), got \(value)")
            }
            out[name] = typed
            i += 1
        }
        return out
    }

    /// Reads `--config FILE.json`: a JSON object of settings, read strictly (a key given twice, a number out of
    /// range or a file that is not a regular one is refused, naming the file).
    public static func fromFile(_ path: String) throws -> Settings {
        let bytes = try InputFile.read(path, what: "--config file", limit: 1 << 20)
        guard let object = try StrictJSON.parse(bytes, what: "--config file \(path)").object else {
            throw UserError(
                "--config file \(path) is not a JSON object of settings (e.g. {\"steps\": 1000, \"lr\": 0.003})")
        }
        return Settings(object)
    }
}
