import Common
import Foundation
import Hummingbird
import NIOCore
import Sampling
import Serving

/// Hummingbird's basic context with the connection kept: a non-streaming request watches it to stop generating for a
/// client that went away.
struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Calls `hungUp` when the client closes its side of the connection. Hummingbird allows half-closed connections, so
/// a client that hangs up is seen as an `inputClosed` event, not a closed channel; the handler sits at the front of
/// the pipeline only while a non-streaming request is generated (a streaming one learns it from a failed write).
final class HangUpWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny
    let hungUp: @Sendable () -> Void
    init(_ hungUp: @escaping @Sendable () -> Void) { self.hungUp = hungUp }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { hungUp() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        hungUp()
        context.fireChannelInactive()
    }
}

/// Every error in OpenAI's shape, as a client expects from an OpenAI-compatible server: the routes' `APIError`s and
/// Hummingbird's own (no such route, a malformed request).
struct OpenAIShapedErrors: RouterMiddleware {
    typealias Context = ServeContext
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do { return try await next(request, context) } catch let e as APIError {
            return CompletionsAPI.error(e)
        } catch let e as HTTPError {
            let message =
                e.status == .notFound
                ? "no route \(request.method.rawValue) \(request.uri.path) (this server has POST /v1/completions, "
                    + "POST /v1/chat/completions, GET /v1/models, GET /health and GET /)"
                : e.body ?? e.status.reasonPhrase
            return CompletionsAPI.error(APIError(status: e.status.code, message))
        }
    }
}

/// The HTTP side: routes, bodies read with a size limit, errors in OpenAI's shape, server-sent events.
struct CompletionsAPI: Sendable {
    let engine: CompletionEngine
    let modelName: String
    let context: Int
    let started = Int(Date().timeIntervalSince1970)
    /// A request body larger than this is refused with 413 before it is read whole.
    static let maxBodyBytes = 1 << 20

    func router() -> Router<ServeContext> {
        let router = Router(context: ServeContext.self)
        router.add(middleware: OpenAIShapedErrors())
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: Playground.html)))
        }
        router.get("/health") { _, _ in
            let load = engine.load
            return json(
                200,
                .object([
                    "status": "ok", "model": .string(modelName), "running": .int(load.running),
                    "waiting": .int(load.waiting), "generated_tokens": .int(load.generatedTokens),
                ]))
        }
        router.get("/v1/models") { _, _ in
            json(
                200,
                .object([
                    "object": "list",
                    "data": .array([
                        .object([
                            "id": .string(modelName), "object": "model", "created": .int(started),
                            "owned_by": "ngpt", "context_length": .int(context),
                        ])
                    ]),
                ]))
        }
        // An APIError thrown here becomes its response in OpenAIShapedErrors.
        router.post("/v1/completions") { request, context in
            try await completions(request, .text, connection: context.channel)
        }
        router.post("/v1/chat/completions") { request, context in
            try await completions(request, .chat, connection: context.channel)
        }
        return router
    }

    /// Both APIs: read and check the body, submit it, then answer whole or as server-sent events.
    func completions(_ request: Request, _ api: CompletionAPI, connection: any Channel) async throws -> Response {
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= Self.maxBodyBytes else {
                throw APIError(status: 413, "the request body is larger than \(Self.maxBodyBytes) bytes")
            }
            bytes += buffer.readableBytesView
        }
        let json: JSONValue
        do { json = try StrictJSON.parse(bytes, what: "the request body") } catch let e as UserError {
            throw APIError(status: 400, e.message)
        }
        let body = try CompletionBody(json: json, chat: api == .chat)
        let submitted: (promptTokens: Int, events: AsyncStream<CompletionEvent>)
        do { submitted = try engine.submit(body.request) } catch EngineRefusal.busy(let waiting) {
            var e = APIError(
                status: 503, "the server is busy (\(waiting) streams waiting); retry later", type: "server_error")
            e.retryAfterSeconds = 1
            throw e
        } catch EngineRefusal.stopped {
            throw APIError(status: 503, "the server is shutting down", type: "server_error")
        }
        let id = api.idPrefix + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let created = Int(Date().timeIntervalSince1970), n = body.request.n
        let model = modelName
        if !body.stream {
            // Collected in a task that the connection's closing cancels: a client that hangs up frees its slots at
            // once instead of when its max_tokens are generated.
            let events = Self.replies(submitted.events, api, choices: n)
            let collect = Task {
                var texts = [String](repeating: "", count: n)
                var finishes = [CompletionEvent?](repeating: nil, count: n)
                var completionTokens = 0
                for await event in events {
                    switch event {
                    case .text(let c, let t): texts[c] += t
                    case .finished(let c, _, let tokens):
                        finishes[c] = event
                        completionTokens += tokens
                    }
                }
                return (texts, finishes, completionTokens)
            }
            let watcher = HangUpWatcher { collect.cancel() }
            try? await connection.pipeline.addHandler(watcher, position: .first).get()
            let (texts, finishes, completionTokens) = await collect.value
            try? await connection.pipeline.removeHandler(watcher).get()
            let choices = (0..<n).map { c -> (Int, CompletionResponse.Choice) in
                var reason: GenerationSession.Finish? = nil
                if case .finished(_, let r, _)? = finishes[c] { reason = r }
                return (c, CompletionResponse.Choice(text: texts[c], finish: reason))
            }
            return Self.json(
                200,
                CompletionResponse.object(
                    api, id: id, created: created, model: model, choices: choices,
                    usage: CompletionResponse.usage(prompt: submitted.promptTokens, completion: completionTokens),
                    chunk: false))
        }
        let promptTokens = submitted.promptTokens, includeUsage = body.includeUsageInStream
        let events = Self.replies(submitted.events, api, choices: n)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                // Ends when every choice has; a write that fails (the client went away) ends the iteration, which
                // cancels the request and frees its slots.
                var completionTokens = 0
                func send(_ value: JSONValue) async throws {
                    try await writer.write(ByteBuffer(string: "data: " + value.serialized(pretty: false) + "\n\n"))
                }
                if api == .chat {  // each choice opens with the assistant's role
                    try await send(
                        CompletionResponse.object(
                            api, id: id, created: created, model: model,
                            choices: (0..<n).map { ($0, .init(text: "", finish: nil)) }, usage: nil, chunk: true))
                }
                for await event in events {
                    let choice: (Int, CompletionResponse.Choice)
                    switch event {
                    case .text(let c, let t): choice = (c, .init(text: t, finish: nil))
                    case .finished(let c, let r, let tokens):
                        completionTokens += tokens
                        choice = (c, .init(text: "", finish: r))
                    }
                    try await send(
                        CompletionResponse.object(
                            api, id: id, created: created, model: model, choices: [choice], usage: nil, chunk: true))
                }
                if includeUsage {
                    try await send(
                        CompletionResponse.object(
                            api, id: id, created: created, model: model, choices: [],
                            usage: CompletionResponse.usage(prompt: promptTokens, completion: completionTokens),
                            chunk: true))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
    }

    /// The engine's events as the API gives them: a chat reply drops the one space that follows "Assistant:".
    static func replies(_ events: AsyncStream<CompletionEvent>, _ api: CompletionAPI, choices: Int)
        -> AsyncStream<CompletionEvent>
    {
        guard api == .chat else { return events }
        return AsyncStream { continuation in
            let forward = Task {
                var started = [Bool](repeating: false, count: choices)
                for await event in events {
                    if case .text(let c, var text) = event, !started[c] {
                        if text.hasPrefix(" ") { text.removeFirst() }
                        started[c] = true
                        if !text.isEmpty { continuation.yield(.text(choice: c, text)) }
                    } else {
                        continuation.yield(event)
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in forward.cancel() }  // the client went away: cancel upstream too
        }
    }

    static func error(_ e: APIError) -> Response {
        var response = Self.json(e.status, e.body)
        if let seconds = e.retryAfterSeconds { response.headers[.retryAfter] = "\(seconds)" }
        return response
    }

    static func json(_ status: Int, _ value: JSONValue) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: HTTPResponse.Status(code: status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized(pretty: false) + "\n")))
    }

    func json(_ status: Int, _ value: JSONValue) -> Response { Self.json(status, value) }
}
