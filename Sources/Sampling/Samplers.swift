import Common
import Foundation
import Kernels
import Runs

/// A step of the sampling pipeline over one position's logits. Each is a small value type; a `Sampler` applies
/// them in order (penalties and temperature on logits first, then the filters, which drop candidates by setting
/// their logit to −∞), then draws from the softmax of what is left.
public protocol LogitsTransform: Sendable {
    func apply(to logits: inout [Float], history: ArraySlice<Int32>)
}

/// CTRL-style repetition penalty: every token already in the history has a positive logit divided by `penalty`
/// and a negative one multiplied by it (1 = off).
public struct RepetitionPenalty: LogitsTransform {
    public let penalty: Float
    public init(_ penalty: Float) { self.penalty = penalty }
    public func apply(to logits: inout [Float], history: ArraySlice<Int32>) {
        guard penalty != 1 else { return }
        for t in Set(history) where Int(t) < logits.count && t >= 0 {
            let i = Int(t)
            logits[i] = logits[i] > 0 ? logits[i] / penalty : logits[i] * penalty
        }
    }
}

/// Divides logits by the temperature (> 0; temperature 0 is greedy decoding, handled by the `Sampler`).
public struct Temperature: LogitsTransform {
    public let value: Float
    public init(_ value: Float) { self.value = value }
    public func apply(to logits: inout [Float], history: ArraySlice<Int32>) {
        guard value != 1 else { return }
        for i in logits.indices { logits[i] /= value }
    }
}

/// Keeps the k most likely tokens (ties at the boundary are broken by the lower token id, so exactly k stay).
public struct TopK: LogitsTransform {
    public let k: Int
    public init(_ k: Int) { self.k = k }
    public func apply(to logits: inout [Float], history: ArraySlice<Int32>) {
        guard k > 0, k < logits.count else { return }
        let order = rankedIndices(logits)
        for i in order[k...] { logits[i] = -.infinity }
    }
}

/// Nucleus sampling: keeps the smallest set of most likely tokens whose probabilities add up to at least p.
public struct TopP: LogitsTransform {
    public let p: Float
    public init(_ p: Float) { self.p = p }
    public func apply(to logits: inout [Float], history: ArraySlice<Int32>) {
        guard p < 1 else { return }
        let probs = softmax(logits)
        let order = rankedIndices(logits)
        var cumulative: Double = 0
        var keep = 0
        while keep < order.count {
            cumulative += Double(probs[order[keep]])
            keep += 1
            if cumulative >= Double(p) { break }
        }
        for i in order[keep...] { logits[i] = -.infinity }
    }
}

/// Keeps tokens whose probability is at least `minP` times the most likely token's.
public struct MinP: LogitsTransform {
    public let minP: Float
    public init(_ minP: Float) { self.minP = minP }
    public func apply(to logits: inout [Float], history: ArraySlice<Int32>) {
        guard minP > 0 else { return }
        let m = logits.max() ?? 0
        // p_i / p_max = exp(z_i − z_max) ≥ minP  ⇔  z_i ≥ z_max + ln(minP)
        let threshold = m + log(minP)
        for i in logits.indices where logits[i] < threshold { logits[i] = -.infinity }
    }
}

/// Indices sorted by descending logit, ties by ascending index.
func rankedIndices(_ logits: [Float]) -> [Int] {
    logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
}

/// Softmax in Double-accumulated Float (−∞ entries get probability 0).
public func softmax(_ logits: [Float]) -> [Float] {
    let m = logits.max() ?? 0
    guard m.isFinite else { return logits.map { _ in 1 / Float(logits.count) } }
    var total = 0.0
    var e = [Double](repeating: 0, count: logits.count)
    for i in logits.indices where logits[i] > -.infinity { e[i] = exp(Double(logits[i] - m)); total += e[i] }
    return e.map { Float($0 / total) }
}

/// The sampling settings of `ngpt-sample`, validated (never silently clamped).
public struct SamplerSettings: Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topK: Int = 0
    public var topP: Float = 1
    public var minP: Float = 0
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 1

    public init(
        temperature: Float = 0.8, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
        seed: UInt64 = 1
    ) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed
    }

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else {
            throw UserError("--temperature must be ≥ 0 (0 = greedy), got \(temperature)")
        }
        guard topK >= 0 else { throw UserError("--top-k must be ≥ 0 (0 = off), got \(topK)") }
        guard topP > 0, topP <= 1 else { throw UserError("--top-p must be in (0, 1], got \(topP)") }
        guard minP >= 0, minP < 1 else { throw UserError("--min-p must be in [0, 1), got \(minP)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw UserError("--repetition-penalty must be > 0 (1 = off), got \(repetitionPenalty)")
        }
    }
}

/// Chooses the next token: greedy at temperature 0, otherwise a draw from the transformed distribution with a
/// generator we own (SplitMix64), so a seed gives the same text on every platform.
public struct Sampler: Sendable {
    public var transforms: [any LogitsTransform]
    public let greedy: Bool
    public var rng: SplitMix64

    public init(_ s: SamplerSettings) {
        greedy = s.temperature == 0
        var t: [any LogitsTransform] = []
        if s.repetitionPenalty != 1 { t.append(RepetitionPenalty(s.repetitionPenalty)) }
        if !greedy {
            t.append(Temperature(s.temperature))
            if s.topK > 0 { t.append(TopK(s.topK)) }
            if s.topP < 1 { t.append(TopP(s.topP)) }
            if s.minP > 0 { t.append(MinP(s.minP)) }
        }
        transforms = t
        rng = SplitMix64(seed: s.seed)
    }

    public init(transforms: [any LogitsTransform], seed: UInt64) {
        self.transforms = transforms
        greedy = false
        rng = SplitMix64(seed: seed)
    }

    /// The distribution the next draw comes from, after every transform.
    public func probabilities(_ logits: [Float], history: ArraySlice<Int32> = []) -> [Float] {
        var z = logits
        for t in transforms { t.apply(to: &z, history: history) }
        return softmax(z)
    }

    public mutating func next(_ logits: UnsafePointer<Float>, count: Int, history: ArraySlice<Int32>) -> Int32 {
        if !greedy, transforms.count == 1, let t = transforms[0] as? Temperature {
            return sampleWithTemperature(logits, count: count, temperature: t.value)
        }
        var z = Array(UnsafeBufferPointer(start: logits, count: count))
        if greedy {
            for t in transforms { t.apply(to: &z, history: history) }
            return argmax(z, count: count)
        }
        let p = probabilities(z, history: history)
        return draw(p)
    }

    /// The common case (temperature only), without intermediate arrays: a max pass, a SIMD pass summing
    /// e^((z − max)/T), and a scan (recomputing 16 exponentials at a time) to the drawn cumulative weight.
    private mutating func sampleWithTemperature(_ logits: UnsafePointer<Float>, count: Int, temperature: Float) -> Int32
    {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, logits[i]) }
        let inv = 1 / temperature
        let vm = SIMD16<Float>(repeating: m), vinv = SIMD16<Float>(repeating: inv)
        @inline(__always) func weights(_ i: Int) -> SIMD16<Float> {
            exp16((UnsafeRawPointer(logits + i).loadUnaligned(as: SIMD16<Float>.self) - vm) * vinv)
        }
        let full = count / 16 * 16
        var total = 0.0
        var i = 0
        while i < full { total += Double(weights(i).sum()); i += 16 }
        for j in full..<count { total += Double(expf((logits[j] - m) * inv)) }
        let target = rng.uniform() * total
        var cumulative = 0.0
        i = 0
        while i < full {
            let w = weights(i)
            let blockSum = Double(w.sum())
            if cumulative + blockSum > target {
                for l in 0..<16 {
                    cumulative += Double(w[l])
                    if target < cumulative { return Int32(i + l) }
                }
                return Int32(i + 15)
            }
            cumulative += blockSum
            i += 16
        }
        var last = max(0, full - 1)
        for j in full..<count {
            let p = Double(expf((logits[j] - m) * inv))
            if p > 0 { last = j }
            cumulative += p
            if target < cumulative { return Int32(j) }
        }
        return Int32(last)
    }

    private mutating func draw(_ p: [Float]) -> Int32 {
        let r = rng.uniform()
        var cumulative = 0.0
        var last = 0
        for i in p.indices where p[i] > 0 {
            cumulative += Double(p[i])
            last = i
            if r < cumulative { return Int32(i) }
        }
        return Int32(last)
    }
}
