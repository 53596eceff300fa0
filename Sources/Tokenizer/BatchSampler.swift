import Kernels

/// Training batches: `batch` windows of `context + 1` tokens, inputs the first `context`, targets the last.
/// The window starts are a pure function of (seed, step, row), so a resumed run draws exactly the batches
/// an uninterrupted run would, with no sampler state to save beyond the step.
public struct BatchSampler: Sendable {
    public let tokens: MappedTokens
    public let batch: Int, context: Int, seed: UInt64

    public init(tokens: MappedTokens, batch: Int, context: Int, seed: UInt64) throws {
        guard tokens.count >= context + 1 else {
            throw UserError("the training split has \(tokens.count) tokens, fewer than one window of \(context + 1); use a larger corpus or a smaller --context")
        }
        self.tokens = tokens; self.batch = batch; self.context = context; self.seed = seed
    }

    /// Start of row `row`'s window at `step`.
    public func windowStart(step: Int, row: Int) -> Int {
        var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: step) &* 0xD1B5_4A32_D192_ED03)
                                   ^ (UInt64(truncatingIfNeeded: row) &* 0xABC9_8388_FB8F_AC03))
        _ = rng.next()
        return rng.below(tokens.count - context)
    }

    /// Fills inputs and targets, each [batch, context].
    public func fill(step: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        for row in 0..<batch {
            let start = windowStart(step: step, row: row)
            tokens.copy(from: start, count: context, into: inputs + row * context)
            tokens.copy(from: start + 1, count: context, into: targets + row * context)
        }
    }
}

/// The fixed, ordered evaluation windows of a validation split: consecutive, non-overlapping windows of
/// `context + 1` tokens from its start. The same data and context give the same windows for every model.
public struct ValidationWindows: Sendable {
    public let tokens: MappedTokens
    public let context: Int
    public let count: Int

    /// At most `maxWindows` windows (all that fit when nil).
    public init(tokens: MappedTokens, context: Int, maxWindows: Int? = nil) throws {
        let available = (tokens.count - 1) / context
        guard available >= 1 else {
            throw UserError("the validation split has \(tokens.count) tokens, fewer than one window of \(context + 1); use a larger corpus, a larger validation fraction or a smaller --context")
        }
        self.tokens = tokens; self.context = context
        count = min(available, maxWindows ?? available)
    }

    /// Fills window `index`'s inputs and targets, each [context].
    public func fill(window index: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        precondition(index >= 0 && index < count)
        tokens.copy(from: index * context, count: context, into: inputs)
        tokens.copy(from: index * context + 1, count: context, into: targets)
    }
}
