import Cluster
import Common
import DataPipeline
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// The training batches: micro-batch `micro` of step `step` is a pure function of (seed, step, micro), so a
/// resumed run sees exactly the batches an uninterrupted one would.
final class BatchSource {
    let sampler: BatchSampler
    let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>  // [batch, context]

    let globalMicroBatches: Int, first: Int

    /// Process `rank` of a job takes global micro-batches rank·grad-accum ..< (rank+1)·grad-accum of each step, so
    /// N processes see exactly the batches one process with N-fold accumulation sees.
    init(tokens: TokenShards, config: TrainConfig, rank: Int = 0) throws {
        sampler = try BatchSampler(
            tokens: tokens, batch: config.schedule.batchSize, context: config.model.context,
            seed: UInt64(config.schedule.seed))
        globalMicroBatches = config.globalMicroBatches
        first = rank * config.schedule.gradAccum
        inputs = .allocate(capacity: config.schedule.batchSize * config.model.context)
        targets = .allocate(capacity: config.schedule.batchSize * config.model.context)
    }

    func fill(step: Int, micro: Int) {
        sampler.fill(step: step * globalMicroBatches + first + micro, inputs: inputs, targets: targets)
    }

    deinit { inputs.deallocate(); targets.deallocate() }
}
