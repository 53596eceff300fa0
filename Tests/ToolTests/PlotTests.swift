import Foundation
import Kernels
import TestSupport
import Testing

@Suite struct PlotTests {
    /// Two runs' metrics (one nGPT with per-layer scales, one GPT), overlaid by ngpt-plot.
    @Test func overlaysRunsAndDrawsEveryChartTheyHaveDataFor() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ngpt-plot-\(UUID().uuidString)").path
        func run(_ name: String, layers: Bool, loss: Double) throws {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            var lines: [String] = []
            for step in stride(from: 10, through: 100, by: 10) {
                let scales =
                    layers ? ", \"alpha_attn\": [0.05, \(0.06 + Double(step) / 1000)], \"s_qk\": [1.0, 1.1]" : ""
                lines.append(
                    "{\"type\": \"train\", \"step\": \(step), \"tokens\": \(step * 4096), "
                        + "\"train_loss\": \(loss + 100 / Double(step)), \"lr\": 0.004, \"grad_norm\": 0.3, "
                        + "\"wall_s\": \(Double(step) * 0.4)\(scales)}"
                )
                if step % 50 == 0 {
                    lines.append(
                        "{\"type\": \"eval\", \"step\": \(step), \"tokens\": \(step * 4096), "
                            + "\"val_loss\": \(loss + 50 / Double(step)), \"val_bpb\": 1.9, "
                            + "\"wall_s\": \(Double(step) * 0.4)}"
                    )
                }
            }
            lines.append("{\"type\": \"train\", \"step\": 110, \"tok")  // a line a killed writer cut short
            try lines.joined(separator: "\n").write(
                toFile: dir + "/\(name)/metrics.jsonl", atomically: true, encoding: .utf8)
        }
        try run("ngpt-a", layers: true, loss: 4.1)
        try run("gpt-b", layers: false, loss: 4.3)
        let (status, out, err) = try runProcess([
            productsDirectory() + "/ngpt-plot", dir + "/ngpt-a", dir + "/gpt-b", "--out", dir + "/plots", "--no-png",
        ])
        #expect(status == 0, "\(err)")
        let files = out.split(separator: "\n").map { ($0 as NSString).lastPathComponent }
        for name in [
            "val-loss-vs-step", "val-loss-vs-tokens", "val-loss-vs-time", "val-bpb-vs-step", "train-loss-vs-step",
            "train-loss-vs-tokens",
            "train-loss-vs-time", "lr-vs-step", "grad-norm-vs-step", "alpha_attn-vs-step", "s_qk-vs-step",
        ] {
            #expect(files.contains(name + ".svg"), "\(name) missing from \(files)")
        }
        #expect(!files.contains("alpha_mlp-vs-step.svg"))  // no run logged it
        let loss = try String(contentsOfFile: dir + "/plots/val-loss-vs-step.svg", encoding: .utf8)
        #expect(
            loss.contains(">ngpt-a<") && loss.contains(">gpt-b<")
                && loss.components(separatedBy: "<polyline").count == 3)
        let alpha = try String(contentsOfFile: dir + "/plots/alpha_attn-vs-step.svg", encoding: .utf8)
        #expect(alpha.contains("ngpt-a L0") && alpha.contains("ngpt-a L1") && !alpha.contains("gpt-b"))

        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        let (bad, _, badErr) = try runProcess([
            productsDirectory() + "/ngpt-plot", dir + "/empty", "--out", dir + "/p2",
        ])
        #expect(bad == 1 && badErr.contains("error: ") && badErr.contains("has no metrics.jsonl"))
    }
}
