import Common
import Foundation
import Sampling

/// An API error in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}` with its HTTP status.
public struct APIError: Error, Equatable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var retryAfterSeconds: Int?

    public init(status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param
    }

    /// 400 naming the field.
    public static func field(_ name: String, _ message: String) -> APIError {
        APIError(status: 400, "\(name): \(message)", param: name)
    }

    public var body: JSONValue {
        .object([
            "error": .object([
                "message": .string(message), "type": .string(type), "param": param.map(JSONValue.string) ?? .null,
                "code": .null,
            ])
        ])
    }
}

/// `POST /v1/completions`, read from its JSON body: the fields this server honours, each checked with the error
/// naming it (OpenAI's defaults where the field is absent). Fields it does not know are ignored, as OpenAI's
/// clients send some (`user`, `suffix` null, …); fields it knows but cannot honour (`echo`, `logprobs`,
/// `best_of` > n) are refused rather than silently ignored.
public struct CompletionBody: Equatable {
    public var request: CompletionRequest
    public var stream: Bool
    public var includeUsageInStream: Bool
    public var model: String?

    /// Limits: a prompt's UTF-8 bytes (more is 413), max_tokens, n and stop strings.
    public static let maxPromptBytes = 256 * 1024, maxTokensLimit = 1 << 20, maxChoices = 16, maxStops = 4
    /// A chat reply's max_tokens when the request gives none (OpenAI's is the context; a base model may never end
    /// its turn, so a bound).
    public static let chatMaxTokens = 256

    /// `chat`: the body of `/v1/chat/completions`, whose `messages` become the prompt through `ChatTemplate` and
    /// whose `max_completion_tokens` is another name for `max_tokens`.
    public init(json: JSONValue, chat: Bool = false) throws {
        guard var o = json.object else { throw APIError(status: 400, "the body must be a JSON object") }
        if chat {
            o["prompt"] = .string(try ChatTemplate.prompt(o["messages"]))
            if let m = o["max_completion_tokens"], m != .null { o["max_tokens"] = m }
        }
        func number(_ key: String, _ fallback: Double, _ valid: (Double) -> Bool, _ rule: String) throws -> Double {
            guard let v = o[key], v != .null else { return fallback }
            guard let d = v.double, d.isFinite, valid(d) else { throw APIError.field(key, "must be \(rule)") }
            return d
        }
        func integer(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = o[key], v != .null else { return fallback }
            guard let i = v.int, range.contains(i) else {
                throw APIError.field(key, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return i
        }
        // prompt: a string, or an array holding one string
        let prompt: String
        switch o["prompt"] {
        case .string(let s)?: prompt = s
        case .array(let a)? where a.count == 1 && a[0].string != nil: prompt = a[0].string ?? ""
        case nil, .null?: prompt = ""
        default: throw APIError.field("prompt", "must be a string (or an array of one string)")
        }
        guard prompt.utf8.count <= Self.maxPromptBytes else {
            throw APIError(
                status: 413,
                "prompt: \(prompt.utf8.count) bytes, more than this server's limit of "
                    + "\(Self.maxPromptBytes)", param: "prompt")
        }
        var stop: [String]
        switch o["stop"] {
        case nil, .null?: stop = []
        case .string(let s)?: stop = [s]
        case .array(let a)? where a.count <= Self.maxStops && a.allSatisfy({ $0.string != nil }):
            stop = a.compactMap(\.string)
        default: throw APIError.field("stop", "must be a string or an array of up to \(Self.maxStops) strings")
        }
        guard stop.allSatisfy({ !$0.isEmpty }) else { throw APIError.field("stop", "must not hold an empty string") }
        if chat { stop.append(ChatTemplate.endOfTurn) }
        if let echo = o["echo"], echo == .bool(true) {
            throw APIError.field("echo", "is not supported (the completion is returned without the prompt)")
        }
        if let lp = o["logprobs"], lp != .null, lp != .int(0) {
            throw APIError.field("logprobs", "is not supported by this server")
        }
        let n = try integer("n", 1, 1...Self.maxChoices)
        if let b = o["best_of"], b != .null, b.int != n {
            throw APIError.field("best_of", "is not supported (other than equal to n)")
        }
        let maxTokens = try integer("max_tokens", chat ? Self.chatMaxTokens : 16, 1...Self.maxTokensLimit)
        let temperature = try number("temperature", 1, { $0 >= 0 && $0 <= 100 }, "a number in [0, 100]")
        let topP = try number("top_p", 1, { $0 > 0 && $0 <= 1 }, "a number in (0, 1]")
        let topK = try integer("top_k", 0, 0...1_000_000)
        let minP = try number("min_p", 0, { $0 >= 0 && $0 < 1 }, "a number in [0, 1)")
        let penalty = try number(
            "repetition_penalty", 1, { $0 > 0 && $0 <= 100 }, "a number in (0, 100] (1 = off)")
        let seed: UInt64
        switch o["seed"] {
        case nil, .null?: seed = UInt64.random(in: 0...UInt64(Int64.max))
        case .int(let i)? where i >= 0: seed = UInt64(i)
        default: throw APIError.field("seed", "must be a non-negative integer")
        }
        let stream: Bool
        switch o["stream"] {
        case nil, .null?: stream = false
        case .bool(let b)?: stream = b
        default: throw APIError.field("stream", "must be true or false")
        }
        var includeUsage = false
        if let options = o["stream_options"], options != .null {
            guard let fields = options.object else { throw APIError.field("stream_options", "must be an object") }
            includeUsage = fields["include_usage"] == .bool(true)
        }
        let settings = SamplerSettings(
            temperature: Float(temperature), topK: topK, topP: Float(topP), minP: Float(minP),
            repetitionPenalty: Float(penalty), seed: seed)
        request = CompletionRequest(prompt: prompt, maxTokens: maxTokens, settings: settings, stop: stop, n: n)
        self.stream = stream
        includeUsageInStream = includeUsage
        model = o["model"]?.string
    }
}

/// The plain template that turns chat messages into a base model's prompt, one line per turn:
///
///     {system}\n\n            (each system or developer message, as written)
///     User: {content}\n
///     Assistant: {content}\n
///     Assistant:               (the model continues from here)
///
/// The reply ends at the next "\nUser:" (a stop string added to the request's own) and its one leading space is
/// dropped. These are base models: the template gives them a dialogue to continue, not instruction tuning.
public enum ChatTemplate {
    public static let endOfTurn = "\nUser:"

    public static func prompt(_ messages: JSONValue?) throws -> String {
        guard let list = messages?.array, !list.isEmpty else {
            throw APIError.field("messages", "must be a non-empty array of {role, content} objects")
        }
        var prompt = ""
        for (i, message) in list.enumerated() {
            guard let m = message.object, let role = m["role"]?.string else {
                throw APIError.field("messages", "message \(i) must be an object with a role")
            }
            let content: String
            switch m["content"] {
            case .string(let s)?: content = s
            case .array(let parts)?:  // [{"type": "text", "text": …}, …]
                let texts = parts.compactMap { $0.object?["type"] == "text" ? $0.object?["text"]?.string : nil }
                guard texts.count == parts.count else {
                    throw APIError.field("messages", "message \(i): only text content parts are supported")
                }
                content = texts.joined()
            default: throw APIError.field("messages", "message \(i) must have a string content")
            }
            switch role {
            case "system", "developer": prompt += content + "\n\n"
            case "user": prompt += "User: " + content + "\n"
            case "assistant": prompt += "Assistant: " + content + "\n"
            default:
                throw APIError.field(
                    "messages", "message \(i): role \(role) is not system, developer, user or assistant")
            }
        }
        return prompt + "Assistant:"
    }
}

/// Which API a request came through: text completions or chat completions, which differ only in their shapes.
public enum CompletionAPI: Sendable {
    case text, chat

    /// The prefix of a response's id, as OpenAI's.
    public var idPrefix: String { self == .text ? "cmpl-" : "chatcmpl-" }
}

/// The response shapes of `/v1/completions` (OpenAI's `text_completion` object) and `/v1/chat/completions`
/// (`chat.completion`, streamed as `chat.completion.chunk`s whose first carries the role).
public enum CompletionResponse {
    public struct Choice {
        public var text: String
        public var finish: GenerationSession.Finish?
        public init(text: String, finish: GenerationSession.Finish?) { self.text = text; self.finish = finish }
    }

    public static func usage(prompt: Int, completion: Int) -> JSONValue {
        .object([
            "prompt_tokens": .int(prompt), "completion_tokens": .int(completion),
            "total_tokens": .int(prompt + completion),
        ])
    }

    /// The whole response (`chunk` false), or one streamed chunk (`usage` nil but in the last). A chat chunk with
    /// no text and no finish is the one that opens a choice with the assistant's role.
    public static func object(
        _ api: CompletionAPI, id: String, created: Int, model: String, choices: [(Int, Choice)], usage: JSONValue?,
        chunk: Bool
    ) -> JSONValue {
        let finish = { (c: Choice) -> JSONValue in c.finish.map { .string($0.rawValue) } ?? .null }
        let shaped: [JSONValue] = choices.map { index, c in
            switch (api, chunk) {
            case (.text, _):
                return .object([
                    "index": .int(index), "text": .string(c.text), "logprobs": .null, "finish_reason": finish(c),
                ])
            case (.chat, false):
                return .object([
                    "index": .int(index), "message": .object(["role": "assistant", "content": .string(c.text)]),
                    "logprobs": .null, "finish_reason": finish(c),
                ])
            case (.chat, true):
                let delta: JSONValue =
                    c.finish != nil
                    ? .object([:])
                    : c.text.isEmpty
                        ? .object(["role": "assistant", "content": ""]) : .object(["content": .string(c.text)])
                return .object(["index": .int(index), "delta": delta, "logprobs": .null, "finish_reason": finish(c)])
            }
        }
        let object = api == .text ? "text_completion" : chunk ? "chat.completion.chunk" : "chat.completion"
        var o: [String: JSONValue] = [
            "id": .string(id), "object": .string(object), "created": .int(created), "model": .string(model),
            "choices": .array(shaped),
        ]
        if let usage { o["usage"] = usage }
        return .object(o)
    }
}
