import Common
import Foundation
import NGPT
import Runs
import Sampling
import TestSupport
import Testing

/// ngpt-serve on a loopback port, driven by the official `openai` Python client (openai_check.py beside this
/// file): what it returns is what ngpt-sample's generator returns for the same request and seed.
@Suite struct HTTPTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/openai_check.py"
    static let fixture =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
        + "/SamplingTests/Fixtures/tiny-ngpt.safetensors"

    @Test func theOpenAIClientGetsWhatNgptSampleGives() throws {
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
        let (status, out, err) = try runProcess(["python3", Self.script, "http://127.0.0.1:\(port)/v1"])
        try #require(status == 0, "openai_check.py failed (pip install openai): \(err)")
        let seen = try #require(try StrictJSON.parse(Array(out.utf8), what: "openai_check output").object)

        let m = try LoadedModel.load(checkpoint: Self.fixture)
        let g = Generator(model: m.model, tokenizer: m.tokenizer, precision: .bf16)
        func alone(_ prompt: String, _ settings: SamplerSettings, _ maxTokens: Int, stop: [String] = []) throws
            -> GenerationResult
        {
            var sampler = Sampler(settings)
            return try g.generate(
                prompt: try g.promptIds(prompt).ids, maxTokens: maxTokens, sampler: &sampler, stop: stop)
        }
        let greedy = try alone("the king", SamplerSettings(temperature: 0), 20)
        #expect(seen["models"] == .array(["tiny-ngpt"]))
        #expect(seen["greedy"]?.string == greedy.text)
        #expect(seen["greedy_finish"]?.string == "length")
        let promptTokens = try g.promptIds("the king").ids.count
        #expect(seen["usage"] == .array([.int(promptTokens), 20, .int(promptTokens + 20)]))
        let choices = (0..<3).map { c in
            try? alone("the", SamplerSettings(temperature: 1, seed: 7 + UInt64(c)), 30).text
        }
        #expect(seen["n"] == .array(choices.map { .string($0 ?? "?") }))
        #expect(seen["seeded_again"]?.string == choices[0])
        let stopped = try alone("the king", SamplerSettings(temperature: 0), 40, stop: ["café"])
        #expect(seen["stop"] == .array([.string(stopped.text), "stop"]))
        #expect(seen["stream"]?.array?.first?.string == greedy.text)
        #expect(seen["stream"]?.array?.last?.string == "length")
        let errors = seen["errors"]?.object ?? [:]
        #expect(errors["max_tokens"] == .array([400, "max_tokens"]))
        #expect(errors["temperature"] == .array([400, "temperature"]))
        #expect(errors["n"] == .array([400, "n"]))
        #expect(errors["too_long"] == .array([413, "prompt"]))
        #expect(server.isRunning)  // bad requests did not take it down
    }
}
