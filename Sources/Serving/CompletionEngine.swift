import Common
import Foundation
import NGPT
import Sampling
import Tokenizer

/// A completion request as the engine runs it: the prompt (text), how many tokens, how to sample, where to stop,
/// and how many choices (each its own stream, seeded `seed`, `seed + 1`, …, as `ngpt-sample --num-samples`).
public struct CompletionRequest: Sendable, Equatable {
    public var prompt: String
    public var maxTokens: Int
    public var settings: SamplerSettings
    public var stop: [String]
    public var n: Int

    public init(prompt: String, maxTokens: Int, settings: SamplerSettings, stop: [String] = [], n: Int = 1) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.settings = settings; self.stop = stop; self.n = n
    }
}

/// What a request's stream of events carries.
public enum CompletionEvent: Sendable, Equatable {
    /// Text released by choice `choice` (never a partial stop string or an incomplete character).
    case text(choice: Int, String)
    /// Choice `choice` ended: why, and how many tokens it generated.
    case finished(choice: Int, reason: GenerationSession.Finish, completionTokens: Int)
}

/// Why a request was not taken.
public enum EngineRefusal: Error, Equatable {
    /// The queue of waiting streams is full: try again later.
    case busy(waiting: Int)
    /// The engine has stopped.
    case stopped
}

/// Continuous batching over one `BatchDecoder`: requests join and leave a running batch at token boundaries. Each
/// choice of each request is a `GenerationSession` in a slot; every step feeds each active session its pending
/// tokens (at most `prefillChunk` of a prompt, so a long prompt shares the steps with the streams already
/// decoding) through one pass over the weights, then advances the sessions whose tokens are all fed. A request
/// that is cancelled (its client went away) frees its slots before the next step. Since the decoder gives a stream
/// the same logits alone or in a batch, a request's text is the text `ngpt-sample` gives for the same seed.
///
/// The loop runs on its own thread; `submit` may be called from any thread.
public final class CompletionEngine: @unchecked Sendable {
    public let model: LanguageModel
    public let tokenizer: any TextTokenizer
    public let slots: Int, maxWaiting: Int, prefillChunk: Int
    let decoder: BatchDecoder

    /// One choice of one request, waiting for a slot or running in one.
    final class Stream {
        let request: Int, choice: Int
        var session: GenerationSession
        var slot = -1
        init(request: Int, choice: Int, session: GenerationSession) {
            self.request = request; self.choice = choice; self.session = session
        }
    }

    /// A request's open choices and where its events go.
    final class Pending {
        let continuation: AsyncStream<CompletionEvent>.Continuation
        var open: Int
        var cancelled = false
        init(continuation: AsyncStream<CompletionEvent>.Continuation, open: Int) {
            self.continuation = continuation; self.open = open
        }
    }

    private let lock = NSCondition()
    private var waiting: [Stream] = []
    private var running: [Stream] = []
    private var requests: [Int: Pending] = [:]
    private var nextRequest = 0
    private var stopped = false
    private var freeSlots: [Int]
    private var generatedTokens = 0, steps = 0

    /// `slots`: streams decoded together; `maxWaiting`: streams that may wait for a slot before `submit` refuses.
    public init(
        model: LanguageModel, tokenizer: any TextTokenizer, precision: DecodePrecision, slots: Int,
        maxWaiting: Int, prefillChunk: Int = 32
    ) {
        self.model = model
        self.tokenizer = tokenizer
        self.slots = slots
        self.maxWaiting = maxWaiting
        self.prefillChunk = prefillChunk
        decoder = model.makeBatchDecoder(precision: precision, slots: slots, maxRows: slots * prefillChunk)
        freeSlots = Array((0..<slots).reversed())
        let thread = Thread { [self] in loop() }  // runs until `shutdown`
        thread.name = "ngpt-engine"
        thread.start()
    }

    /// Streams running and waiting now, and tokens generated and steps run so far.
    public var load: (running: Int, waiting: Int, generatedTokens: Int, steps: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (running.count, waiting.count, generatedTokens, steps)
    }

    /// Queues a request; returns its prompt's token count and its events (each choice's text, then its end; the
    /// stream finishes when every choice has). Ending the iteration of the events cancels the request.
    public func submit(_ r: CompletionRequest) throws -> (promptTokens: Int, events: AsyncStream<CompletionEvent>) {
        let ids = try promptIds(r.prompt, tokenizer: tokenizer, context: model.config.context).ids
        let (events, continuation) = AsyncStream<CompletionEvent>.makeStream(bufferingPolicy: .unbounded)
        lock.lock()
        defer { lock.unlock() }
        if stopped { throw EngineRefusal.stopped }
        guard waiting.count + r.n <= maxWaiting else { throw EngineRefusal.busy(waiting: waiting.count) }
        let id = nextRequest
        nextRequest += 1
        requests[id] = Pending(continuation: continuation, open: r.n)
        for choice in 0..<r.n {
            var settings = r.settings
            settings.seed = r.settings.seed &+ UInt64(choice)
            let session = GenerationSession(
                prompt: ids, maxTokens: r.maxTokens, sampler: Sampler(settings), stop: r.stop, tokenizer: tokenizer,
                config: model.config)
            waiting.append(Stream(request: id, choice: choice, session: session))
        }
        continuation.onTermination = { [weak self] _ in self?.cancel(id) }
        lock.signal()
        return (ids.count, events)
    }

    /// Stops the loop after its current step; waiting and running requests end.
    public func shutdown() {
        lock.lock()
        stopped = true
        lock.signal()
        lock.unlock()
    }

    /// Marks request `id` cancelled: its streams leave the batch before the next step.
    public func cancel(_ id: Int) {
        lock.lock()
        requests[id]?.cancelled = true
        lock.signal()
        lock.unlock()
    }

    /// Under the lock: drops cancelled streams, gives free slots to waiting streams (first come, first served).
    private func admit() {
        let cancelled = Set(requests.filter { $0.value.cancelled }.keys)
        if !cancelled.isEmpty {
            for s in running where cancelled.contains(s.request) { freeSlots.append(s.slot) }
            running.removeAll { cancelled.contains($0.request) }
            waiting.removeAll { cancelled.contains($0.request) }
            for id in cancelled { requests[id] = nil }
        }
        while !freeSlots.isEmpty && !waiting.isEmpty {
            let s = waiting.removeFirst()
            s.slot = freeSlots.removeLast()
            running.append(s)
        }
    }

    private func loop() {
        let V = model.config.vocabSize
        while true {
            lock.lock()
            admit()
            while running.isEmpty && !stopped {
                lock.wait()
                admit()
            }
            if stopped {
                let open = requests.values.map(\.continuation)
                requests = [:]
                lock.unlock()
                for c in open { c.finish() }  // outside the lock: finishing calls onTermination, which locks
                return
            }
            let batch = running
            lock.unlock()

            // One step: every running stream's pending tokens (a prompt in chunks), then advance the fed ones.
            var rows: [DecodeRow] = [], last: [(Stream, Int)] = []
            for s in batch {
                if let row = s.session.feed(slot: s.slot, limit: prefillChunk, decoder: decoder, into: &rows) {
                    last.append((s, row))
                }
            }
            if rows.isEmpty { continue }
            let logits = decoder.step(rows)
            var events: [(Int, CompletionEvent)] = [], ended: [Stream] = []
            for (s, row) in last {
                do {
                    let text = try s.session.advance(logits: logits + row * V)
                    if !text.isEmpty { events.append((s.request, .text(choice: s.choice, text))) }
                } catch {
                    s.session.abandon()
                }
                if let reason = s.session.finish {
                    events.append(
                        (
                            s.request,
                            .finished(choice: s.choice, reason: reason, completionTokens: s.session.generated.count)
                        ))
                    ended.append(s)
                }
            }
            lock.lock()
            steps += 1
            generatedTokens += last.count
            let deliveries = events.compactMap { id, event in requests[id].map { ($0.continuation, event) } }
            var done: [AsyncStream<CompletionEvent>.Continuation] = []
            for s in ended {
                running.removeAll { $0 === s }
                freeSlots.append(s.slot)
                if let p = requests[s.request] {
                    p.open -= 1
                    if p.open == 0 {
                        requests[s.request] = nil
                        done.append(p.continuation)
                    }
                }
            }
            lock.unlock()
            // Outside the lock: a continuation's onTermination (a client gone) calls `cancel`, which locks.
            for (c, event) in deliveries { c.yield(event) }
            for c in done { c.finish() }
        }
    }
}
