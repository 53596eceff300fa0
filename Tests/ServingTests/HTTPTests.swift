import Common
import Foundation
import NGPT
import Runs
import Sampling
import Serving
import TestSupport
import Testing

/// ngpt-serve on a loopback port, driven by real clients: the official `openai` Python package (openai_check.py),
/// Chromium through Playwright on the playground page (playground_check.py), and raw sockets sending what no client
/// should (hostile_check.py). What the server returns is what ngpt-sample's generator returns for the same request.
@Suite struct HTTPTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let fixture =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
        + "/SamplingTests/Fixtures/tiny-ngpt.safetensors"

    /// Starts ngpt-serve on the fixture at a random loopback port, runs `script` with `arguments(port)`, stops the
    /// server, and returns what the script printed (one JSON object) and whether the server was still running.
    /// `stopsServer`: the script ends by sending the server SIGTERM; wait up to 10 s for it to exit.
    func check(
        _ script: String, _ arguments: (_ port: Int, _ pid: Int32) -> [String], needs: String, stopsServer: Bool = false
    ) throws -> (seen: [String: JSONValue], serverSurvived: Bool) {
        let port = Int.random(in: 20000..<60000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: productsDirectory() + "/ngpt-serve")
        server.arguments = ["--checkpoint", Self.fixture, "--port", "\(port)", "--slots", "4"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let (status, out, err) = try runProcess(
            ["python3", Self.here + "/" + script] + arguments(port, server.processIdentifier))
        try #require(status == 0, "\(script) failed (\(needs)): \(err)")
        let seen = try #require(try StrictJSON.parse(Array(out.utf8), what: "\(script)'s output").object)
        let deadline = Date().addingTimeInterval(stopsServer ? 10 : 0)
        while server.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if stopsServer && !server.isRunning { #expect(server.terminationStatus == 0) }
        return (seen, server.isRunning)
    }

    /// The generator ngpt-sample runs, on the same fixture: what each request must give.
    struct Reference {
        let g: Generator
        init() throws {
            let m = try LoadedModel.load(checkpoint: HTTPTests.fixture)
            g = Generator(model: m.model, tokenizer: m.tokenizer, precision: .bf16)
        }
        func text(_ prompt: String, _ settings: SamplerSettings, _ maxTokens: Int, stop: [String] = []) throws
            -> GenerationResult
        {
            var sampler = Sampler(settings)
            return try g.generate(
                prompt: try g.promptIds(prompt).ids, maxTokens: maxTokens, sampler: &sampler, stop: stop)
        }
    }

    @Test func theOpenAIClientGetsWhatNgptSampleGives() throws {
        let (seen, survived) = try check(
            "openai_check.py", { port, _ in ["http://127.0.0.1:\(port)/v1"] }, needs: "pip install openai")
        let reference = try Reference(), g = reference.g
        let greedy = try reference.text("the king", SamplerSettings(temperature: 0), 20)
        #expect(seen["models"] == .array(["tiny-ngpt"]))
        #expect(seen["greedy"]?.string == greedy.text)
        #expect(seen["greedy_finish"]?.string == "length")
        let promptTokens = try g.promptIds("the king").ids.count
        #expect(seen["usage"] == .array([.int(promptTokens), 20, .int(promptTokens + 20)]))
        let choices = (0..<3).map { c in
            try? reference.text("the", SamplerSettings(temperature: 1, seed: 7 + UInt64(c)), 30).text
        }
        #expect(seen["n"] == .array(choices.map { .string($0 ?? "?") }))
        #expect(seen["seeded_again"]?.string == choices[0])
        let stopped = try reference.text("the king", SamplerSettings(temperature: 0), 40, stop: ["café"])
        #expect(seen["stop"] == .array([.string(stopped.text), "stop"]))
        #expect(seen["stream"]?.array?.first?.string == greedy.text)
        #expect(seen["stream"]?.array?.last?.string == "length")
        // chat: the plain template's prompt, stopped at the next user turn, its leading space dropped
        let chatPrompt = try ChatTemplate.prompt(
            .array([
                .object(["role": "system", "content": "A play."]), .object(["role": "user", "content": "the king"]),
            ]))
        #expect(chatPrompt == "A play.\n\nUser: the king\nAssistant:")
        let reply = try reference.text(chatPrompt, SamplerSettings(temperature: 0), 20, stop: [ChatTemplate.endOfTurn])
        let content = reply.text.hasPrefix(" ") ? String(reply.text.dropFirst()) : reply.text
        let chatFinish = reply.stoppedAt != nil ? "stop" : "length"
        #expect(
            seen["chat"]
                == .array([
                    "assistant", .string(content), .string(chatFinish), .int(reply.tokens.count), "chat.completion",
                    "chatcmpl-",
                ]))
        #expect(
            seen["chat_stream"]
                == .array([.string(content), .array(["assistant"]), .string(chatFinish), "chat.completion.chunk"]))
        let errors = seen["errors"]?.object ?? [:]
        #expect(errors["chat_messages"] == .array([400, "messages"]))
        #expect(errors["chat_role"] == .array([400, "messages"]))
        #expect(errors["max_tokens"] == .array([400, "max_tokens"]))
        #expect(errors["temperature"] == .array([400, "temperature"]))
        #expect(errors["n"] == .array([400, "n"]))
        #expect(errors["too_long"] == .array([413, "prompt"]))
        #expect(survived)  // bad requests did not take it down
    }

    @Test func thePlaygroundPageStreamsInAHeadlessBrowser() throws {
        let (seen, survived) = try check(
            "playground_check.py", { port, _ in ["http://127.0.0.1:\(port)"] },
            needs: "apt-get install chromium; pip install playwright")
        let reference = try Reference()
        #expect(seen["title"]?.string == "ngpt playground")
        #expect(seen["model"]?.string == "tiny-ngpt · context 32 tokens")
        #expect(seen["greedy"]?.string == (try reference.text("the king", SamplerSettings(temperature: 0), 20).text))
        #expect(seen["greedy_stats"]?.string?.hasPrefix("20 tokens · ") == true)
        #expect(seen["greedy_stats"]?.string?.hasSuffix("prompt 8 tokens · finished: length") == true)
        let stopped = try reference.text("the king", SamplerSettings(temperature: 0), 40, stop: ["café"])
        #expect(seen["stop"]?.array?.first?.string == stopped.text)
        #expect(seen["stop"]?.array?.last?.string?.hasSuffix("finished: stop") == true)
        // the Stop button aborts the stream; the server frees the slot
        #expect(seen["running_while_streaming"] == 1)
        #expect(seen["stopped_stats"]?.string?.hasPrefix("stopped after ") == true)
        #expect(seen["running_after_stop"] == 0)
        #expect(seen["error"] == .array(["temperature: must be a number in [0, 100]", "error"]))
        #expect(seen["page_errors"] == .array([]))
        #expect(survived)
    }

    @Test func hostileInputNeverCrashesOrStallsTheServer() throws {
        let (seen, survived) = try check(
            "hostile_check.py", { port, pid in ["127.0.0.1", "\(port)", "\(pid)"] }, needs: "python3",
            stopsServer: true)
        func status(_ name: String) -> JSONValue? { seen[name]?.array?.first }
        func param(_ name: String) -> JSONValue? { seen[name]?.array.map { $0[1] } }
        for name in [
            "malformed_json", "not_an_object", "invalid_utf8", "lone_surrogate", "nan_temperature", "deep_nesting",
        ] {
            #expect(status(name) == 400, "\(name)")
        }
        #expect(status("negative_max_tokens") == 400 && param("negative_max_tokens") == "max_tokens")
        #expect(status("absurd_max_tokens") == 400 && param("absurd_max_tokens") == "max_tokens")
        #expect(status("huge_integer") == 400 && param("huge_integer") == "seed")
        #expect(status("string_temperature") == 400 && param("string_temperature") == "temperature")
        #expect(status("huge_body") == 413)
        #expect(status("wrong_method_path") == 404)
        #expect(seen["wrong_method_path"]?.array?.last?.string?.hasPrefix("no route POST /v1/nothing") == true)
        // a body that never arrives and a stream nobody reads hold up no one; disconnected streams free their slots
        #expect(seen["ordinary_beside_stalled_clients"]?.array?.first == 200)
        #expect((seen["ordinary_beside_stalled_clients"]?.array?.last?.double ?? 99) < 5)
        #expect(seen["running_with_quitter"] == 1)
        #expect(seen["running_after_disconnects"] == 0)
        #expect((seen["seconds_to_free_slots"]?.double ?? 99) < 2)  // not the 100,000 tokens they asked for
        #expect(seen["ordinary_at_the_end"]?.array?.first == 200)
        // SIGTERM in the middle of a 100,000-token stream: the stream ends at once, the server exits
        #expect((seen["stream_end_after_sigterm_s"]?.double ?? 99) < 5)
        #expect(seen["stream_ended_with_done"] == true)
        #expect(!survived)  // and it exited with status 0
    }
}
