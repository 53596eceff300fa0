import Common
import Foundation
import Kernels
import Tokenizer

/// A run's `metrics.jsonl` as series: what `ngpt-plot` overlays for several runs and what the trainer draws into its
/// own directory at each evaluation.
public struct RunMetrics {
    public let name: String
    /// The records of logged steps (`"type": "train"`) and of evaluations (`"type": "eval"`), in file order.
    public let steps: [[String: Any]], evaluations: [[String: Any]]

    public init(name: String, steps: [[String: Any]], evaluations: [[String: Any]]) {
        self.name = name; self.steps = steps; self.evaluations = evaluations
    }

    /// Reads `directory/metrics.jsonl` (a line cut short by a killed writer is skipped); named by the directory.
    public static func read(directory: String) throws -> RunMetrics {
        let path = directory + "/metrics.jsonl"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("\(directory) has no metrics.jsonl (pass run directories written by ngpt-train)")
        }
        var steps: [[String: Any]] = [], evaluations: [[String: Any]] = []
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            switch record["type"] as? String {
            case "train": steps.append(record)
            case "eval": evaluations.append(record)
            default: continue
            }
        }
        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        return RunMetrics(name: name, steps: steps, evaluations: evaluations)
    }

    /// (x, y) of a numeric key over records; a later record for the same x (a resumed run) replaces an earlier one.
    static func points(_ records: [[String: Any]], x: String, y: String) -> (x: [Double], y: [Double]) {
        var byX: [Double: Double] = [:]
        for r in records {
            guard let xv = (r[x] as? NSNumber)?.doubleValue, let yv = (r[y] as? NSNumber)?.doubleValue else { continue }
            byX[xv] = yv
        }
        let xs = byX.keys.sorted()
        return (xs, xs.map { byX[$0]! })
    }

    /// Per-layer values of a key (`[Double]` per record) as one series per layer.
    static func layers(_ records: [[String: Any]], key: String) -> [(x: [Double], y: [Double])] {
        var series: [(x: [Double], y: [Double])] = []
        for r in records {
            guard let step = (r["step"] as? NSNumber)?.doubleValue, let values = r[key] as? [NSNumber] else { continue }
            while series.count < values.count { series.append(([], [])) }
            for (layer, v) in values.enumerated() {
                series[layer].x.append(step); series[layer].y.append(v.doubleValue)
            }
        }
        return series
    }
}

/// The charts of one or more runs, overlaid: losses against step, tokens and training time, the learning rate, the
/// gradient norm, and nGPT's effective scales per layer (when the runs log them).
public enum RunCurves {
    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
    ]

    /// nGPT's per-layer scales in metrics.jsonl, with their chart titles.
    static let layerKeys = [
        ("alpha_attn", "effective α_A (attention step size)"), ("alpha_mlp", "effective α_M (MLP step size)"),
        ("s_qk", "effective s_qk (query-key scale)"), ("s_u", "effective s_u (SwiGLU u scale)"),
        ("s_v", "effective s_ν (SwiGLU ν scale)"),
    ]

    /// (file name without extension, chart), for every chart the runs have data for.
    public static func charts(_ runs: [RunMetrics]) -> [(String, LineChart)] {
        var out: [(String, LineChart)] = []
        let axes = [
            ("step", "optimiser step", "step"), ("tokens", "tokens trained on", "tokens"),
            ("time", "training wall-clock (s)", "wall_s"),
        ]
        func chart(
            _ file: String, _ title: String, _ xLabel: String, _ yLabel: String,
            _ records: (RunMetrics) -> [[String: Any]],
            x: String, y: String
        ) {
            var c = LineChart(title: title, xLabel: xLabel, yLabel: yLabel)
            for (i, run) in runs.enumerated() {
                let p = RunMetrics.points(records(run), x: x, y: y)
                if !p.x.isEmpty {
                    c.series.append(
                        .init(
                            label: run.name, color: palette[i % palette.count], dashed: i >= palette.count, x: p.x,
                            y: p.y))
                }
            }
            if !c.series.isEmpty { out.append((file, c)) }
        }
        for (name, label, key) in axes {
            chart(
                "val-loss-vs-\(name)", "Validation loss vs \(name)", label, "validation loss (nats/token)",
                { $0.evaluations }, x: key, y: "val_loss")
        }
        chart(
            "val-bpb-vs-step", "Validation bits per byte vs step", "optimiser step", "validation loss (bits/byte)",
            { $0.evaluations }, x: "step", y: "val_bpb")
        for (name, label, key) in axes {
            chart(
                "train-loss-vs-\(name)", "Training loss vs \(name)", label, "training loss (nats/token)", { $0.steps },
                x: key, y: "train_loss")
        }
        chart("lr-vs-step", "Learning rate", "optimiser step", "learning rate", { $0.steps }, x: "step", y: "lr")
        chart(
            "grad-norm-vs-step", "Gradient norm (before clipping)", "optimiser step", "global gradient norm",
            { $0.steps }, x: "step", y: "grad_norm")
        for (key, title) in layerKeys {
            var c = LineChart(title: "nGPT: \(title) per layer", xLabel: "optimiser step", yLabel: key)
            var colour = 0
            for run in runs {
                for (layer, s) in RunMetrics.layers(run.steps, key: key).enumerated() where !s.x.isEmpty {
                    c.series.append(
                        .init(
                            label: runs.count == 1 ? "layer \(layer)" : "\(run.name) L\(layer)",
                            color: palette[colour % palette.count], dashed: colour >= palette.count, x: s.x, y: s.y))
                    colour += 1
                }
            }
            if !c.series.isEmpty { out.append((key + "-vs-step", c)) }
        }
        return out
    }

    /// Writes every chart as `directory/<name>.svg` (and `.png` when `png` and rsvg-convert is installed); returns the
    /// files written.
    @discardableResult
    public static func write(_ runs: [RunMetrics], to directory: String, png: Bool) throws -> [String] {
        try Directories.create(directory, fix: "choose a writable output directory")
        var files: [String] = []
        for (name, chart) in charts(runs) {
            let svg = directory + "/" + name + ".svg"
            try AtomicFile.write(chart.svg(), to: svg)
            files.append(svg)
            if png, let p = renderPNG(svgPath: svg) { files.append(p) }
        }
        return files
    }
}
