import Common
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// Turns a growing sequence of ids into text as it is generated: only complete UTF-8 characters are released, so a
/// character split over byte-fallback pieces comes out whole, and SentencePiece's word-boundary marker becomes a
/// space exactly where the full decode would put it. (SentencePiece decodes a trailing incomplete byte sequence to
/// U+FFFD, so trailing replacement characters are held back until the next token completes or replaces them.)
public struct StreamingDetokenizer {
    let tokenizer: any TextTokenizer
    private(set) var ids: [Int32] = []
    private var emittedBytes = 0

    public init(tokenizer: any TextTokenizer) { self.tokenizer = tokenizer }

    /// Adds a token and returns the newly completed text (possibly empty).
    public mutating func append(_ id: Int32) throws -> String {
        ids.append(id)
        let bytes = try tokenizer.decodeBytes(ids)
        var end = Self.completeUTF8Prefix(bytes)
        while end >= emittedBytes + 3 && bytes[end - 3] == 0xEF && bytes[end - 2] == 0xBF && bytes[end - 1] == 0xBD {
            end -= 3
        }
        guard end > emittedBytes else { return "" }
        defer { emittedBytes = end }
        return String(decoding: bytes[emittedBytes..<end], as: UTF8.self)
    }

    /// Whatever is left (an incomplete character decodes to U+FFFD).
    public mutating func flush() throws -> String {
        let bytes = try tokenizer.decodeBytes(ids)
        defer { emittedBytes = bytes.count }
        return emittedBytes < bytes.count ? String(decoding: bytes[emittedBytes...], as: UTF8.self) : ""
    }

    /// Length of the longest prefix that does not end inside a multi-byte character.
    static func completeUTF8Prefix(_ b: [UInt8]) -> Int {
        var i = b.count
        var back = 0
        while i > 0 && back < 4 {
            let c = b[i - 1]
            if c & 0xC0 == 0x80 { i -= 1; back += 1; continue }  // continuation byte
            let need = c < 0x80 ? 1 : c & 0xE0 == 0xC0 ? 2 : c & 0xF0 == 0xE0 ? 3 : c & 0xF8 == 0xF0 ? 4 : 1
            return back + 1 >= need ? b.count : i - 1
        }
        return b.count
    }
}

/// The ids a prompt becomes: BOS, then the encoded text (as each training document starts). A prompt longer than
/// the context keeps its last `context − 1` tokens (`truncated` tells how many were dropped).
public func promptIds(_ text: String, tokenizer: any TextTokenizer, context: Int) throws -> (
    ids: [Int32], truncated: Int
) {
    var ids: [Int32] = tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
    ids += try tokenizer.encode(text)
    let keep = context - 1
    if ids.count > keep { return (Array(ids.suffix(keep)), ids.count - keep) }
    return (ids, 0)
}

/// What a generation produced.
public struct GenerationResult: Sendable {
    public var text: String
    public var tokens: [Int32]
    public var seconds: Double
    public var stoppedAt: String?
    public var tokensPerSecond: Double { Double(tokens.count) / max(seconds, 1e-9) }
}

/// Autoregressive generation with the KV cache, a sampler, stop strings and streaming output.
public final class Generator {
    public let model: LanguageModel
    public let tokenizer: any TextTokenizer
    let decoder: TokenDecoder

    public init(model: LanguageModel, tokenizer: any TextTokenizer, precision: DecodePrecision = .fp32) {
        self.model = model
        self.tokenizer = tokenizer
        decoder = model.makeDecoder(precision: precision)
    }

    /// The ids a prompt becomes (see the free function `promptIds`).
    public func promptIds(_ text: String) throws -> (ids: [Int32], truncated: Int) {
        try Sampling.promptIds(text, tokenizer: tokenizer, context: model.config.context)
    }

    /// Generates up to `maxTokens` tokens after `prompt`. `onText` receives text as it completes (never a partial
    /// stop string). When the context fills up, the oldest half of the window is dropped and the cache is rebuilt
    /// from the kept half (`GenerationSession`, which a batched server runs too).
    public func generate(
        prompt: [Int32], maxTokens: Int, sampler: inout Sampler, stop: [String] = [],
        onText: (String) -> Void = { _ in }
    ) throws -> GenerationResult {
        let started = DispatchTime.now().uptimeNanoseconds
        var session = GenerationSession(
            prompt: prompt, maxTokens: maxTokens, sampler: sampler, stop: stop, tokenizer: tokenizer,
            config: model.config)
        while session.finish == nil {
            let (reset, tokens) = session.take(limit: Int.max)
            if reset { decoder.reset() }
            var logits: UnsafeMutablePointer<Float>?
            for t in tokens { logits = decoder.step(t) }
            let text = try session.advance(logits: logits.unsafelyUnwrapped)
            if !text.isEmpty { onText(text) }
        }
        sampler = session.sampler
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return GenerationResult(
            text: session.text, tokens: session.generated, seconds: seconds, stoppedAt: session.stoppedAt)
    }
}

/// Loss of a text under a model.
public struct PerplexityReport: Sendable {
    public var meanLoss: Double
    public var perplexity: Double { exp(meanLoss) }
    public var bitsPerByte: Double
    public var tokens: Int
    public var bytes: Int
    public var windows: Int
}

public enum Perplexity {
    /// The text becomes [BOS] + its ids (like a training document) and is scored in consecutive, non-overlapping
    /// windows of `context` predictions — the same windows and arithmetic as the trainer's evaluation. Bits per byte
    /// divide the total loss in bits by the UTF-8 bytes of the predicted tokens.
    public static func evaluate(text: String, model: LanguageModel, tokenizer: any TextTokenizer, batch: Int = 8)
        throws -> PerplexityReport
    {
        var ids: [Int32] = tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
        ids += try tokenizer.encode(text)
        let T = model.config.context
        let windows = (ids.count - 1) / T
        guard windows >= 1 else {
            throw UserError("the text has \(ids.count) tokens, fewer than one window of \(T + 1); give a longer text")
        }
        let total = Evaluation.meanLoss(model: model, windows: windows, context: T, batch: batch) {
            w, inputs, targets in
            for j in 0..<T { inputs[j] = ids[w * T + j]; targets[j] = ids[w * T + j + 1] }
        }
        let pieceBytes = try tokenizer.byteLengths()
        let bytes = ids[1...(windows * T)].reduce(0) { $0 + pieceBytes[Int($1)] }
        return PerplexityReport(
            meanLoss: total, bitsPerByte: total * Double(windows * T) / log(2) / Double(max(1, bytes)),
            tokens: windows * T, bytes: bytes, windows: windows)
    }
}
