import ArgumentParser
import Kernels
import NGPT
import ToolSupport

extension ModelKind: ExpressibleByArgument {}
extension GEMM.Precision: ExpressibleByArgument {}

@main
struct NGPTBench: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-bench",
        abstract: "Measure ngpt's kernels, training steps and sampling on this machine.",
        discussion: """
            Every number is the median of repeated runs after a warm-up. The machine is shared and noisy: compare \
            numbers from one run, not across runs.
            """,
        subcommands: [KernelsBench.self, TrainBench.self, SampleBench.self])
}

/// Options every benchmark takes.
struct CommonOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Thread budget: cores used by BLAS and by the row kernels (0 = all cores).")
    var threads: Int = 0

    @Option(parsing: .unconditional, help: "Timed repetitions per kernel; the median is reported.")
    var repetitions: Int = 15

    func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be ≥ 0 (0 means all cores), got \(threads)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1, got \(repetitions)") }
    }
}

/// The model sizes of `train` and `sample` (config S by default).
struct ModelSizeOptions: ParsableArguments {
    @Option(help: "Model: ngpt or gpt.") var model: ModelKind = .ngpt
    @Option(parsing: .unconditional, help: "Vocabulary size.") var vocabSize: Int = 4096
    @Option(parsing: .unconditional, help: "Model width d.") var dim: Int = 256
    @Option(parsing: .unconditional, help: "Transformer blocks.") var layers: Int = 4
    @Option(parsing: .unconditional, help: "Attention heads.") var heads: Int = 4
    @Option(parsing: .unconditional, help: "SwiGLU hidden width.") var mlpHidden: Int = 683
    @Option(parsing: .unconditional, help: "Context length.") var context: Int = 256
    @Flag(help: "Run both models with the same sizes (one table).") var both: Bool = false

    var kinds: [ModelKind] { both ? ModelKind.allCases : [model] }

    func config(_ kind: ModelKind) throws -> ModelConfig {
        let c = ModelConfig(
            kind: kind, vocabSize: vocabSize, dim: dim, layers: layers, heads: heads, mlpHidden: mlpHidden,
            context: context)
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }
}
