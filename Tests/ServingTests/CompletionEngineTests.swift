import Common
import Foundation
import NGPT
import Runs
import Sampling
import Testing

@testable import Serving

/// The tiny nGPT the sampling tests use (context 32, so long requests slide their window).
func tinyModel() throws -> LoadedModel {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
    return try LoadedModel.load(checkpoint: fixtures + "/SamplingTests/Fixtures/tiny-ngpt.safetensors")
}

/// Collects a request's events: each choice's text and end.
func collect(_ events: AsyncStream<CompletionEvent>, choices: Int) async -> [(String, CompletionEvent?)] {
    var out = [(String, CompletionEvent?)](repeating: ("", nil), count: choices)
    for await e in events {
        switch e {
        case .text(let c, let t): out[c].0 += t
        case .finished(let c, _, _): out[c].1 = e
        }
    }
    return out
}

@Suite struct CompletionEngineTests {
    /// Requests submitted together (different prompts and settings, n = 2, lengths past the context) each get the
    /// text ngpt-sample's generator gives them alone, with the same seed.
    @Test func concurrentRequestsGetTheirTextAlone() async throws {
        let m = try tinyModel()
        let engine = CompletionEngine(
            model: m.model, tokenizer: m.tokenizer, precision: .bf16, slots: 3, maxWaiting: 16, prefillChunk: 4)
        defer { engine.shutdown() }
        let requests = [
            CompletionRequest(prompt: "the king", maxTokens: 40, settings: SamplerSettings(temperature: 0), n: 1),
            CompletionRequest(
                prompt: "", maxTokens: 70, settings: SamplerSettings(temperature: 1.1, seed: 4), n: 2),
            CompletionRequest(
                prompt: "fair lady", maxTokens: 30, settings: SamplerSettings(temperature: 0.8, topK: 10, seed: 7),
                stop: ["."], n: 1),
        ]
        let streams = try requests.map { try engine.submit($0) }
        let generator = Generator(model: m.model, tokenizer: m.tokenizer, precision: .bf16)
        for (r, (promptTokens, events)) in zip(requests, streams) {
            let got = await collect(events, choices: r.n)
            let ids = try generator.promptIds(r.prompt).ids
            #expect(promptTokens == ids.count)
            for choice in 0..<r.n {
                var settings = r.settings
                settings.seed = r.settings.seed &+ UInt64(choice)
                var sampler = Sampler(settings)
                let alone = try generator.generate(prompt: ids, maxTokens: r.maxTokens, sampler: &sampler, stop: r.stop)
                #expect(got[choice].0 == alone.text, "request \(r.prompt) choice \(choice)")
                let reason: GenerationSession.Finish = alone.stoppedAt == nil ? .length : .stop
                #expect(
                    got[choice].1
                        == .finished(choice: choice, reason: reason, completionTokens: alone.tokens.count))
            }
        }
        #expect(engine.load.running == 0 && engine.load.waiting == 0)
    }

    /// A client that goes away frees its slot at once: the request waiting behind it runs.
    @Test func aCancelledRequestFreesItsSlot() async throws {
        let m = try tinyModel()
        let engine = CompletionEngine(
            model: m.model, tokenizer: m.tokenizer, precision: .bf16, slots: 1, maxWaiting: 4)
        defer { engine.shutdown() }
        let long = try engine.submit(
            CompletionRequest(prompt: "the", maxTokens: 1_000_000, settings: SamplerSettings(temperature: 1)))
        let next = try engine.submit(
            CompletionRequest(prompt: "the", maxTokens: 5, settings: SamplerSettings(temperature: 0)))
        var iterator = long.events.makeAsyncIterator()
        _ = await iterator.next()  // it runs
        #expect(engine.load.waiting == 1)
        engine.cancel(0)
        let got = await collect(next.events, choices: 1)
        #expect(got[0].1 == .finished(choice: 0, reason: .length, completionTokens: 5))
    }

    /// More waiting streams than allowed: refused, not queued.
    @Test func aFullQueueRefuses() throws {
        let m = try tinyModel()
        let engine = CompletionEngine(
            model: m.model, tokenizer: m.tokenizer, precision: .bf16, slots: 1, maxWaiting: 2)
        defer { engine.shutdown() }
        let request = CompletionRequest(prompt: "the", maxTokens: 100_000, settings: SamplerSettings(temperature: 1))
        _ = try engine.submit(request)
        _ = try engine.submit(request)  // at most two wait, whether or not the first has a slot yet
        #expect(throws: EngineRefusal.self) {
            _ = try engine.submit(CompletionRequest(prompt: "x", maxTokens: 1, settings: SamplerSettings(), n: 3))
        }
    }
}
