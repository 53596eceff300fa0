import ArgumentParser
import Cluster
import Common
import Foundation
import Kernels
import Tokenizer
import Training

/// `ngpt-train [train]`: the training flags come from `TrainingKey.all` (parsed there, listed in the help
/// below); every one is optional so that the ones given can be layered over a `--config` file and, on
/// `--resume`, over the checkpoint's configuration.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (the default subcommand).",
        usage:
            "ngpt-train [train] [--<key> <value> ...] [--config <file>] [--resume <dir>] [--force] [--stop-after <n>]",
        discussion: """
            Precedence: built-in defaults < --config FILE.json (the keys below without the leading --, e.g. \
            {"steps": 1000, "mlp-hidden": 512}) < flags. With --resume DIR the checkpoint's configuration replaces \
            the defaults; architecture keys must then match it, the others may change. Ctrl-C (SIGINT) or SIGTERM \
            finishes the current step, writes a checkpoint and exits 0; continue with --resume DIR.

            Under an MPI launcher (mpirun -np N ngpt-train ...) the N processes train one model data-parallel: each \
            takes grad-accum micro-batches of batch-size sequences per step, the gradients are summed, rank 0 alone \
            writes the run directory. --resume works on any number of processes (grad-accum is rescaled to keep the \
            global batch). See the README, "Training on several machines".
            """ + "\n\n" + TrainingKey.helpText())

    @Argument(
        parsing: .allUnrecognized,
        help: ArgumentHelp(
            "Training flags: --<key> <value> for any key listed below.",
            valueName: "training-flags"))
    var trainingFlags: [String] = []
    @Option(help: "A JSON file of settings (the keys below, e.g. {\"steps\": 1000}). (default: none)") var config:
        String?
    @Option(help: "Continue the run in this directory from its latest checkpoint. (default: none)") var resume: String?
    @Flag(help: "Start over in an existing --out directory, deleting its checkpoints.") var force = false
    @Option(
        parsing: .unconditional,
        help:
            ArgumentHelp(
                "Train at most N steps in this invocation, then checkpoint and exit 0 (continue with "
                    + "--resume). (default: no limit)")
    )
    var stopAfter: Int?

    func validate() throws {
        if let limit = stopAfter, limit <= 0 { throw ValidationError("--stop-after must be positive, got \(limit)") }
    }

    func run() throws {
        let world = World.join()  // nil without a launcher: no MPI call is made
        do {
            try train(world: world)
            world?.finish()
        } catch {
            guard let world, world.size > 1 else { throw error }
            // One process failed: say why, then end the whole job (the others would wait for it in a collective).
            let message = (error as? UserError)?.message ?? "\(error)"
            FileHandle.standardError.write(
                Data("error: process \(world.rank) of \(world.size) on \(world.host): \(message)\n".utf8))
            world.abort(code: 1)
        }
    }

    func train(world: World?) throws {
        let printer = ProgressPrinter()
        printer.silent = !(world?.isRoot ?? true)
        let stop = StopRequest()
        let trainer = try Trainer(
            fileSettings: try config.map { try Settings.fromFile($0) },
            flagSettings: try Settings.fromFlags(trainingFlags), resume: resume, force: force,
            printer: printer, stop: stop, world: world)
        if let world { trainer.gradientSync = ProcessGradients(world: world) }
        trainer.stopAfter = stopAfter
        stop.install()
        if let world, world.size > 1 {
            stop.endOnLauncherSignal(
                line:
                    "error: process \(world.rank) of \(world.size) on \(world.host): the launcher is ending the job "
                    + "(another process of it failed or was killed, or mpirun was interrupted); the last "
                    + "checkpoint in \(trainer.runDirectory) is intact"
            )
        }
        let summary = try trainer.run()
        let f = { (x: Double) in x.isFinite ? String(format: "%.4f", x) : "-" }
        if let signal = summary.interrupted {
            printer.line(
                "\(signal): stopped after step \(summary.steps) of \(trainer.config.schedule.steps); checkpoint "
                    + "written to "
                    + "\(summary.runDirectory)/latest.safetensors"
            )
            printer.line("resume with: ngpt-train --resume \(summary.runDirectory)")
            return
        }
        printer.line("")
        printer.line(
            "done: \(summary.steps) steps in \(formatDuration(summary.trainSeconds)) of training, "
                + "\(String(format: "%.0f", summary.tokensPerSecond)) tokens/s"
        )
        printer.line("final val loss \(f(summary.finalValLoss)), best \(f(summary.bestValLoss))")
        printer.line(
            "checkpoints: \(summary.runDirectory)/latest.safetensors, \(summary.runDirectory)/best.safetensors")
        printer.line("metrics: \(summary.runDirectory)/metrics.jsonl")
    }
}
