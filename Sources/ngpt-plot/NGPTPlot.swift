import ArgumentParser
import Common
import Foundation
import Kernels
import Runs
import ToolSupport

@main
struct NGPTPlot: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-plot",
        abstract: "Curves of any runs side by side, from their metrics.jsonl, as SVG and PNG.",
        discussion: """
            Overlays the runs' validation loss (nats/token and bits/byte) and training loss against step, tokens and \
            training wall-clock, the learning rate, the gradient norm, and nGPT's effective scales per layer (α_A, \
            α_M, s_qk, s_u, s_ν). PNG needs rsvg-convert (Debian: librsvg2-bin). A training run draws the same charts \
            of itself into RUN/curves/ at every evaluation.
            """)

    @Argument(help: "Run directories (each with its metrics.jsonl), e.g. checkpoints/ngpt-a checkpoints/gpt-b.")
    var runs: [String]
    @Option(help: "Directory to write the charts into (created if missing).") var out: String = "plots"
    @Flag(help: "Write SVG only.") var noPng = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run directory") }
    }

    func run() throws {
        let metrics = try runs.map { try RunMetrics.read(directory: $0) }
        let files = try RunCurves.write(metrics, to: out, png: !noPng)
        guard !files.isEmpty else {
            throw UserError("the runs' metrics.jsonl hold no records to plot yet (train at least one logged step)")
        }
        for f in files { print(f) }
        if !noPng && !files.contains(where: { $0.hasSuffix(".png") }) {
            printError("note: SVG only (install rsvg-convert for PNG: apt install librsvg2-bin)")
        }
    }
}
