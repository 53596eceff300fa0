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
        let m = config.modelConfig
        parameterBytes = 4 * 4 * m.parameterCount
        workingBytes = 4 * config.model.modelType.workingFloats(m, batch: config.batchSize)
        batch = config.batchSize
    }

    /// Refuses a configuration that would not fit in the memory available now (MemAvailable, or the cgroup's
    /// limit when lower).
    public func check(available: Int? = MemoryEstimate.availableBytes()) throws {
        guard let available, totalBytes > available else { return }
        throw UserError("this configuration needs about \(Self.format(totalBytes)) (parameters and optimiser state \(Self.format(parameterBytes)), activations at batch \(batch) \(Self.format(workingBytes))) but \(Self.format(available)) is available; lower --batch-size, --context or the model size")
    }

    public var description: String {
        "\(Self.format(totalBytes)) (parameters and optimiser state \(Self.format(parameterBytes)), activations \(Self.format(workingBytes)))"
    }

    /// Memory this process can still use: /proc/meminfo's MemAvailable, capped by a cgroup v2 limit.
    public static func availableBytes() -> Int? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
        var available: Int?
        if let info = read("/proc/meminfo"), let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }) {
            available = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        if let max = read("/sys/fs/cgroup/memory.max").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            let used = read("/sys/fs/cgroup/memory.current").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
            available = min(available ?? Int.max, max - used)
        }
        return available
    }

    static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.0f MB", b / 1e6) }
        return String(format: "%.0f kB", b / 1e3)
    }
}
