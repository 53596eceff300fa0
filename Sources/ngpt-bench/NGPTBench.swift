import ArgumentParser
import Kernels
import NGPT
import ToolSupport
import Training

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
    @Argument(
        parsing: .allUnrecognized,
        help: ArgumentHelp(
            "Model sizes: ngpt-train's architecture keys (--model, --dim, --layers, --heads, --mlp-hidden, --context, "
                + "--vocab-size), with its defaults (config S).",
            valueName: "size-flags"))
    var sizeFlags: [String] = []
    @Flag(help: "Run both models with the same sizes (one table).") var both: Bool = false

    /// The size flags, listed from ngpt-train's key table.
    static var help: String { "Size flags (ngpt-train's):\n\n" + TrainingKey.helpText(keys: TrainingKey.architecture) }

    var model: ModelConfig {
        get throws {
            try TrainConfig(
                flags: sizeFlags, keys: TrainingKey.architecture,
                listing: "the size flags are ngpt-train's architecture keys"
            ).model
        }
    }

    var kinds: [ModelKind] { get throws { both ? ModelKind.allCases : [try model.kind] } }

    func config(_ kind: ModelKind) throws -> ModelConfig {
        let c = try model.switched(to: kind)
        try c.validate()
        return c
    }

    func validate() throws { _ = try model }
}
