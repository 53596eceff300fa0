import Common
import Kernels

/// Training batches: `batch` windows of `context + 1` tokens, inputs the first `context`, targets the last.
/// The window starts are a pure function of (seed, step, row), so a resumed run draws exactly the batches
/// an uninterrupted run would, with no sampler state to save beyond the step. A window start is drawn uniformly
/// over every start of every shard (windows never cross shards); with one shard this is the start drawn from
/// `0..<count - context`, as for the single-file caches before shards.
public struct BatchSampler: Sendable {
    public let tokens: TokenShards
    public let batch: Int, context: Int, seed: UInt64
    public let layout: ShardLayout

    public init(tokens: TokenShards, batch: Int, context: Int, seed: UInt64) throws {
        layout = ShardLayout(windowsPerShard: tokens.shards.map { $0.count - context })
        guard layout.windows > 0 else {
            throw UserError(
                "the training split has \(tokens.count) tokens, fewer than one window of \(context + 1); use a "
                    + "larger corpus or a smaller --context"
            )
        }
        self.tokens = tokens; self.batch = batch; self.context = context; self.seed = seed
    }

    /// Shard and start of row `row`'s window at `step`.
    public func windowStart(step: Int, row: Int) -> (shard: Int, start: Int) {
        var rng = SplitMix64(
            seed: seed ^ (UInt64(truncatingIfNeeded: step) &* 0xD1B5_4A32_D192_ED03)
                ^ (UInt64(truncatingIfNeeded: row) &* 0xABC9_8388_FB8F_AC03))
        _ = rng.next()
        let (shard, start) = layout.locate(rng.below(layout.windows))
        return (shard, start)
    }

    /// Fills inputs and targets, each [batch, context].
    public func fill(step: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        for row in 0..<batch {
            let (shard, start) = windowStart(step: step, row: row)
            tokens.copy(shard: shard, from: start, count: context, into: inputs + row * context)
            tokens.copy(shard: shard, from: start + 1, count: context, into: targets + row * context)
        }
    }
}

/// The fixed, ordered evaluation windows of a validation split: consecutive, non-overlapping windows of
/// `context + 1` tokens from the start of each shard in turn. The same data and context give the same windows
/// for every model.
public struct ValidationWindows: Sendable {
    public let tokens: TokenShards
    public let context: Int
    public let count: Int
    let layout: ShardLayout

    /// At most `maxWindows` windows (all that fit when nil).
    public init(tokens: TokenShards, context: Int, maxWindows: Int? = nil) throws {
        layout = ShardLayout(windowsPerShard: tokens.shards.map { ($0.count - 1) / context })
        guard layout.windows >= 1 else {
            throw UserError(
                "the validation split has \(tokens.count) tokens, fewer than one window of \(context + 1); use a "
                    + "larger corpus, a larger --val-tokens or a smaller --context"
            )
        }
        self.tokens = tokens; self.context = context
        count = min(layout.windows, maxWindows ?? layout.windows)
    }

    /// UTF-8 bytes of the text all windows predict (their targets), from `byteLengths` per id.
    public func targetBytes(byteLengths: [Int]) -> Int {
        var total = 0
        for w in 0..<count {
            let (shard, index) = layout.locate(w)
            let s = tokens.shards[shard]
            for j in (index * context + 1)...(index * context + context) { total += byteLengths[Int(s[j])] }
        }
        return total
    }

    /// Fills window `index`'s inputs and targets, each [context].
    public func fill(window index: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        precondition(index >= 0 && index < count)
        let (shard, w) = layout.locate(index)
        tokens.copy(shard: shard, from: w * context, count: context, into: inputs)
        tokens.copy(shard: shard, from: w * context + 1, count: context, into: targets)
    }
}
