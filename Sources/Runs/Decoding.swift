import NGPT
import Tokenizer

/// The one autoregressive loop over a model's single-token KV-cache decoder, used by the trainer's evaluation
/// samples and by ngpt-sample's generator: it feeds a prompt, then one chosen token at a time. When the cache is
/// full, the oldest half of the window is dropped and the cache rebuilt from the newer half, so every token is
/// predicted from between T/2 and T tokens of context, exactly as the model computes them on that window.
public final class TokenStream {
    public let decoder: TokenDecoder
    /// The tokens in the cache (the context the next logits were computed from).
    public private(set) var window: [Int32]
    /// Logits for the token after `window`, [vocab].
    public private(set) var logits: UnsafeMutablePointer<Float>

    /// Resets the decoder and feeds `prompt` (1 to context tokens).
    public init(decoder: TokenDecoder, prompt: [Int32]) {
        precondition(!prompt.isEmpty && prompt.count <= decoder.config.context, "a prompt of 1 to context tokens")
        self.decoder = decoder
        window = prompt
        decoder.reset()
        logits = decoder.step(prompt[0])
        for t in prompt.dropFirst() { logits = decoder.step(t) }
    }

    /// Appends the chosen token and computes the logits after it.
    public func append(_ token: Int32) {
        window.append(token)
        if decoder.position == decoder.config.context {
            window = Array(window.suffix(decoder.config.context / 2))
            decoder.reset()
            for t in window.dropLast() { _ = decoder.step(t) }
        }
        logits = decoder.step(token)
    }
}

/// The index of the largest of `count` logits (the lowest index on ties).
public func argmax(_ logits: UnsafePointer<Float>, count: Int) -> Int32 {
    var best = 0
    for v in 1..<count where logits[v] > logits[best] { best = v }
    return Int32(best)
}

/// Greedy continuation of `prompt` (default: BOS) within one context window: the short sample the trainer
/// prints at each evaluation.
public func greedySample(model: LanguageModel, tokenizer: any TextTokenizer, tokens count: Int, prompt: [Int32] = [])
    throws -> String
{
    let T = model.config.context, V = model.config.vocabSize
    let start = Array((prompt.isEmpty ? [max(0, tokenizer.bosId)] : prompt).suffix(T - 1))
    let stream = TokenStream(decoder: model.makeDecoder(), prompt: start)
    let limit = min(count, T - start.count)
    var generated: [Int32] = []
    while generated.count < limit {
        generated.append(argmax(stream.logits, count: V))
        if generated.count < limit { stream.append(generated[generated.count - 1]) }
    }
    return try tokenizer.decode(generated.filter { $0 != tokenizer.bosId })
}
