import Common
import NGPT
import Tokenizer

/// One stream's generation as a state machine that a decoder loop drives: the tokens to feed next (the prompt, then
/// each chosen token, or after a full context the newer half of the window again), and what to do with the logits
/// after them (sample, detokenize, watch for stop strings, release text). `Generator` runs one session on a
/// single-stream decoder and a server runs many on one `BatchDecoder`: since the decoders give a stream the same
/// logits alone or in a batch, and everything else is here, a request gives the same text either way.
///
/// The window: when the context is full, the oldest half is dropped and the cache rebuilt from the newer half, so
/// every token is predicted from between T/2 and T tokens of context, exactly as the model computes them on that
/// window (as `TokenStream` does).
public struct GenerationSession {
    /// Why a session ended.
    public enum Finish: String, Sendable {
        /// `maxTokens` were generated.
        case length
        /// A stop string appeared; the text ends before it.
        case stop
    }

    let tokenizer: any TextTokenizer
    let context: Int, vocabSize: Int
    public private(set) var sampler: Sampler
    public let maxTokens: Int
    let stop: [String]
    let holdBack: Int
    /// The tokens in this stream's cache once `pending` is fed (the sampler's history).
    public private(set) var window: [Int32]
    /// Tokens to feed before the next logits; `resetFirst` when the cache must be emptied before them.
    public private(set) var pending: [Int32]
    public private(set) var resetFirst = true
    public private(set) var generated: [Int32] = []
    /// All text so far, and how much of it was released (text that could still turn into a stop string is held).
    public private(set) var text = ""
    var released = 0
    var detokenizer: StreamingDetokenizer
    public private(set) var finish: Finish?
    public private(set) var stoppedAt: String?

    /// `prompt`: 1 to context − 1 tokens (`Generator.promptIds` makes them); an empty prompt starts from BOS.
    public init(
        prompt: [Int32], maxTokens: Int, sampler: Sampler, stop: [String] = [], tokenizer: any TextTokenizer,
        config: ModelConfig
    ) {
        let start = prompt.isEmpty ? [max(0, tokenizer.bosId)] : prompt
        precondition(start.count <= config.context, "a prompt of 1 to context tokens")
        self.tokenizer = tokenizer
        context = config.context
        vocabSize = config.vocabSize
        self.sampler = sampler
        self.maxTokens = maxTokens
        self.stop = stop.filter { !$0.isEmpty }  // an empty stop text would match everywhere: it stops nothing
        holdBack = max(0, (self.stop.map(\.count).max() ?? 1) - 1)
        window = start
        pending = start
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        if maxTokens <= 0 { finish = .length }
    }

    /// Takes up to `limit` of the pending tokens to feed now, and whether the cache must be emptied first.
    public mutating func take(limit: Int) -> (reset: Bool, tokens: ArraySlice<Int32>) {
        let n = min(limit, pending.count)
        let tokens = pending.prefix(n), reset = resetFirst
        pending.removeFirst(n)
        resetFirst = false
        return (reset, tokens)
    }

    /// Queues up to `limit` pending tokens as rows of `slot` for one step of `decoder` (emptying the slot first when
    /// the window restarts); returns the index of the last row when every pending token is now queued: advance
    /// with that row's logits after the step.
    public mutating func feed(slot: Int, limit: Int, decoder: BatchDecoder, into rows: inout [DecodeRow]) -> Int? {
        let (reset, tokens) = take(limit: limit)
        if reset { decoder.reset(slot: slot) }
        for t in tokens { rows.append(DecodeRow(slot: slot, token: t)) }
        return pending.isEmpty && !tokens.isEmpty ? rows.count - 1 : nil
    }

    /// With the logits after the last pending token ([vocab]): chooses the next token and returns the text that
    /// can be released now. Ends the session at `maxTokens` or a stop string; otherwise the chosen token becomes
    /// the pending one (or, when the context is full, the newer half of the window with it).
    public mutating func advance(logits: UnsafePointer<Float>) throws -> String {
        precondition(pending.isEmpty && finish == nil, "advance after feeding every pending token, before the end")
        let next = sampler.next(logits, count: vocabSize, history: window[...])
        generated.append(next)
        text += try detokenizer.append(next)
        if let s = stop.first(where: { text.contains($0) }), let r = text.range(of: s) {
            text = String(text[..<r.lowerBound])
            stoppedAt = s
            finish = .stop
            return release(upTo: text.count)
        }
        var out = release(upTo: max(released, text.count - holdBack))
        if generated.count == maxTokens {
            text += try detokenizer.flush()
            finish = .length
            out += release(upTo: text.count)
            return out
        }
        window.append(next)
        if window.count - 1 == context {  // the cache is full: keep the newer half, rebuild it
            window = Array(window.suffix(context / 2))
            pending = window
            resetFirst = true
        } else {
            pending = [next]
        }
        return out
    }

    /// Ends the session where it is (a failure outside the model, e.g. of the tokenizer): reported as a stop.
    public mutating func abandon() { if finish == nil { finish = .stop } }

    private mutating func release(upTo end: Int) -> String {
        guard end > released else { return "" }
        let start = text.index(text.startIndex, offsetBy: released),
            stopIndex = text.index(text.startIndex, offsetBy: end)
        released = end
        return String(text[start..<stopIndex])
    }
}

/// Runs sessions to their end on one `BatchDecoder`, a slot each, every step feeding each unfinished session its
/// pending tokens (at most `prefillChunk` per session, so a long prompt shares the steps with the others) and
/// advancing those whose pending tokens are all fed. The loop a server's scheduler runs, without the requests
/// joining and leaving; tests hold its text to `Generator`'s.
public func runSessions(
    _ sessions: inout [GenerationSession], decoder: BatchDecoder, prefillChunk: Int = 64,
    onText: (Int, String) -> Void = { _, _ in }
) throws {
    precondition(sessions.count <= decoder.slots, "one slot per session")
    let V = decoder.config.vocabSize
    while sessions.contains(where: { $0.finish == nil }) {
        var rows: [DecodeRow] = [], lastRow: [Int: Int] = [:]
        for i in sessions.indices where sessions[i].finish == nil {
            let room = decoder.maxRows - rows.count
            guard room > 0 else { break }
            lastRow[i] = sessions[i].feed(slot: i, limit: min(prefillChunk, room), decoder: decoder, into: &rows)
        }
        guard !rows.isEmpty else { break }  // (never: an unfinished session always has a pending token)
        let logits = decoder.step(rows)
        for (i, row) in lastRow.sorted(by: { $0.key < $1.key }) {
            let text = try sessions[i].advance(logits: logits + row * V)
            if !text.isEmpty { onText(i, text) }
        }
    }
}
