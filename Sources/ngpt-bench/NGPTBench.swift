import ArgumentParser
import Kernels
import NGPT

extension ModelKind: ExpressibleByArgument {}

@main
struct NGPTBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-bench",
        abstract: "Measure ngpt's kernels (and, later, training and sampling) on this machine.",
        discussion: """
            Every number is the median of repeated runs after a warm-up. The machine is shared and noisy: compare \
            numbers from one run, not across runs.
            """,
        subcommands: [KernelsBench.self, TrainBench.self, SampleBench.self])
}

/// Options every benchmark takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Thread budget: cores used by BLAS and by the row kernels (0 = all cores).")
    var threads: Int = 0

    @Option(help: "Timed repetitions per kernel; the median is reported.")
    var repetitions: Int = 15

    func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be ≥ 0 (0 means all cores), got \(threads)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1, got \(repetitions)") }
    }
}
