import ArgumentParser
import Common
import Foundation
import Hummingbird
import Kernels
import NGPT
import Runs
import ServiceLifecycle
import Serving
import ToolSupport

@main
struct NGPTServe: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-serve",
        abstract: "Serve a trained model over HTTP with OpenAI's completions API, batching concurrent requests.",
        discussion: """
            POST /v1/completions (prompt, max_tokens, temperature, top_p, top_k, min_p, repetition_penalty, seed, \
            stop, n, stream as server-sent events), POST /v1/chat/completions (messages through a plain \
            User:/Assistant: template), GET /v1/models, GET /health, and a playground page at /. Requests join and \
            leave one running batch at token boundaries: one pass over the weights decodes every active stream. The \
            same request and seed give the text ngpt-sample gives. It binds to 127.0.0.1 and has no authentication: \
            put it behind a reverse proxy for anything beyond this machine.
            """)

    @Option(help: "A run directory, a .safetensors checkpoint or a Hugging Face directory.") var checkpoint: String
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on.") var port: Int = 8080
    @Option(help: "Streams decoded together (each has its KV cache).") var slots: Int = 8
    @Option(help: "Streams that may wait for a slot; more are refused with 503 and Retry-After.")
    var maxWaiting: Int = 64
    @Option(help: "Weight precision of decoding: bf16 or fp32.") var precision: DecodePrecision = .bf16
    @Option(help: "The model id the API reports. (default: the checkpoint's directory name)") var modelName: String?
    @Option(help: "Thread budget of decoding; 0 = all cores but one, which the HTTP side and its clients need.")
    var threads: Int = 0

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535, got \(port)") }
        guard (1...256).contains(slots) else { throw ValidationError("--slots must be in 1...256, got \(slots)") }
        guard maxWaiting >= 1 else { throw ValidationError("--max-waiting must be ≥ 1, got \(maxWaiting)") }
        guard threads >= 0 else { throw ValidationError("--threads must be ≥ 0, got \(threads)") }
    }

    func run() throws {
        // Measured on 2 cores (README, "Serving a model over HTTP"): decoding on every core makes each token wait
        // for a worker that the HTTP thread preempted; leaving that thread a core is faster and steadier.
        Threads.configure(threads: threads > 0 ? threads : max(1, Threads.maxWorkers - 1))
        printError(Threads.startupLine)
        let loaded = try LoadedModel.load(checkpoint: checkpoint)
        let name =
            modelName
            ?? URL(fileURLWithPath: checkpoint).standardizedFileURL.deletingPathExtension().lastPathComponent
        let engine = CompletionEngine(
            model: loaded.model, tokenizer: loaded.tokenizer, precision: precision, slots: slots,
            maxWaiting: maxWaiting)
        let api = CompletionsAPI(engine: engine, modelName: name, context: loaded.model.config.context)
        let app = Application(
            router: api.router(), configuration: .init(address: .hostname(host, port: port), serverName: "ngpt-serve"))
        printError(
            "\(loaded.model.config.kind.rawValue) from \(loaded.checkpointPath) (step \(loaded.step)) as \"\(name)\"; "
                + "\(slots) slots; listening on http://\(host):\(port)")
        nonisolated(unsafe) var failure: Error?
        let done = DispatchSemaphore(value: 0)
        // SIGTERM or SIGINT shuts the services down in reverse order: the engine first, which ends every stream
        // where it is (its client gets the text so far), so the server's graceful shutdown need not wait for
        // long generations.
        let services = ServiceGroup(
            configuration: .init(
                services: [app, EngineService(engine: engine)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: app.logger))
        Task {
            do { try await services.run() } catch { failure = error }
            done.signal()
        }
        done.wait()
        engine.shutdown()
        if let failure { throw UserError("the server stopped: \(failure)") }
    }
}

extension DecodePrecision: ExpressibleByArgument {}

/// The engine as a service of the server's group: at a graceful shutdown it stops, ending every stream.
struct EngineService: Service {
    let engine: CompletionEngine
    func run() async throws {
        try? await gracefulShutdown()
        engine.shutdown()
    }
}
