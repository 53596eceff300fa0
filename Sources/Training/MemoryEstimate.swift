import Common
import Foundation
import Kernels
import NGPT

/// The memory a training configuration needs, estimated before anything is created: parameters, gradients and
/// both Adam moments (4 × N floats) plus what the model allocates to train at the batch size (activations, their
/// gradients, scratch, working copies; counted by the model's own allocation code). Token files are
/// memory-mapped and not counted.
public struct MemoryEstimate: Sendable {
    public let parameterBytes: Int
    public let workingBytes: Int
    public var totalBytes: Int { parameterBytes + workingBytes }
    let batch: Int

    public init(_ config: TrainConfig) {
        let m = config.model
        parameterBytes = 4 * 4 * m.parameterCount
        workingBytes = 4 * config.model.kind.modelType.workingFloats(m, batch: config.schedule.batchSize)
        batch = config.schedule.batchSize
    }

    /// Refuses a configuration that would not fit in the memory available now (MemAvailable, or the cgroup's
    /// limit when lower).
    public func check(available: Int? = AvailableMemory.bytes()) throws {
        try AvailableMemory.check(
            needed: totalBytes, what: "this configuration",
            parts:
                "parameters and optimiser state \(Self.format(parameterBytes)), activations at batch \(batch) "
                + "\(Self.format(workingBytes))",
            fix: "lower --batch-size, --context or the model size", available: available)
    }

    public var description: String {
        "\(Self.format(totalBytes)) (parameters and optimiser state \(Self.format(parameterBytes)), activations "
            + "\(Self.format(workingBytes)))"
    }

    static func format(_ bytes: Int) -> String { AvailableMemory.format(bytes) }
}
