import Common
import Foundation
import Runs
import Tokenizer

public enum InspectionOutput {
    /// The terminal report; with two reports, side by side.
    public static func text(_ reports: [InspectionReport]) -> String {
        func f(_ x: Double?, _ d: Int = 3) -> String {
            x.map { $0.isFinite ? String(format: "%.\(d)f", $0) : "inf" } ?? "-"
        }
        var rows: [(String, [String])] = []
        func add(_ k: String, _ v: (InspectionReport) -> String) { rows.append((k, reports.map(v))) }
        add("checkpoint") { $0.checkpoint }
        add("model / step") { "\($0.model) / \($0.step)" }
        for (i, name) in ["E_in", "E_out"].enumerated() {
            add("\(name) row norm mean (min–max)") { r in
                let s = r.embeddings[i].rowNorms; return "\(f(s.mean)) (\(f(s.min))–\(f(s.max)))"
            }
            add("\(name) pairwise cosine mean ± sd") { r in
                let c = r.embeddings[i].cosines; return "\(f(c.mean, 4)) ± \(f(c.std, 4))"
            }
            add("\(name) uniformity (t = 2)") { f($0.embeddings[i].cosines.uniformity) }
        }
        let layers = reports.map(\.conditioning.count).max() ?? 0
        for l in 0..<layers {
            add("layer \(l) cond W_q heads") { r in
                l < r.conditioning.count ? r.conditioning[l].query.map { f($0, 1) }.joined(separator: " ") : "-"
            }
            add("layer \(l) cond W_k heads") { r in
                l < r.conditioning.count ? r.conditioning[l].key.map { f($0, 1) }.joined(separator: " ") : "-"
            }
            add("layer \(l) cond W_v heads") { r in
                l < r.conditioning.count ? r.conditioning[l].value.map { f($0, 1) }.joined(separator: " ") : "-"
            }
            add("layer \(l) cond W_o / up / gate / down") { r in
                guard l < r.conditioning.count else { return "-" }
                let c = r.conditioning[l]
                return [c.output, c.up, c.gate, c.down].map { f($0, 1) }.joined(separator: " / ")
            }
        }
        if reports.contains(where: { !$0.scales.isEmpty }) {
            for l in 0..<layers {
                add("layer \(l) α_A / α_M mean") { r in
                    l < r.scales.count ? "\(f(r.scales[l].alphaAttn.mean)) / \(f(r.scales[l].alphaMLP.mean))" : "-"
                }
                add("layer \(l) s_qk / s_u / s_ν mean") { r in
                    l < r.scales.count
                        ? "\(f(r.scales[l].sqk.mean)) / \(f(r.scales[l].su.mean)) / \(f(r.scales[l].sv.mean))" : "-"
                }
            }
            add("s_z mean (min–max)") { r in
                r.szMean == nil ? "-" : "\(f(r.szMean, 2)) (\(f(r.szMin, 2))–\(f(r.szMax, 2)))"
            }
        }
        if reports.contains(where: { $0.hidden != nil }) {
            add("hidden ‖h‖ per block (mean)") { r in
                r.hidden?.blockNorms.map { f($0.mean) }.joined(separator: " ") ?? "-"
            }
            add("final hidden uniformity / alignment") { r in
                r.hidden.map { "\(f($0.finalUniformity)) / \(f($0.finalAlignment))" } ?? "-"
            }
        }
        var out = ""
        let keyWidth = rows.map(\.0.count).max() ?? 0
        let colWidth = max(24, rows.flatMap(\.1).map(\.count).filter { $0 < 60 }.max() ?? 24)
        for (k, vs) in rows {
            // pad, never truncate (a long path just pushes its neighbour right)
            let cells = vs.map { $0.count >= colWidth ? $0 : $0 + String(repeating: " ", count: colWidth - $0.count) }
            out +=
                k.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  " + cells.joined(separator: "  ") + "\n"
        }
        for r in reports where !r.neighbours.isEmpty {
            out += "\nnearest neighbours in E_in (\(r.model)):\n"
            for n in r.neighbours {
                out +=
                    "  \(n.piece): "
                    + zip(n.neighbours, n.cosines).map { "\($0) (\(String(format: "%.2f", $1)))" }.joined(
                        separator: ", ") + "\n"
            }
        }
        if reports.contains(where: { !$0.scales.isEmpty }) { out += "\nreference: \(Inspector.paperReference)\n" }
        return out
    }

    /// SVG (and PNG when rsvg-convert is there) figures: scales per layer, singular-value spectra, cosine histograms.
    public static func plots(_ reports: [InspectionReport], directory: String) throws -> [String] {
        try Directories.create(directory, fix: "choose a writable --plot directory")
        let colors = ["#1f77b4", "#d62728"]
        var written: [String] = []
        func save(_ chart: LineChart, _ name: String) throws {
            let path = directory + "/\(name).svg"
            try AtomicFile.write(chart.svg(), to: path)
            written.append(renderPNG(svgPath: path) ?? path)
        }
        let ngpt = reports.filter { !$0.scales.isEmpty }
        if !ngpt.isEmpty {
            var chart = LineChart(
                title: "Learned scales per layer (nGPT, effective means)", xLabel: "layer", yLabel: "value")
            chart.integerX = true
            for (i, r) in ngpt.enumerated() {
                let x = r.scales.map { Double($0.layer) }
                let tag = ngpt.count > 1 ? " (\(i + 1))" : ""
                chart.series.append(
                    .init(label: "α_A" + tag, color: "#1f77b4", dashed: i > 0, x: x, y: r.scales.map(\.alphaAttn.mean)))
                chart.series.append(
                    .init(label: "α_M" + tag, color: "#2ca02c", dashed: i > 0, x: x, y: r.scales.map(\.alphaMLP.mean)))
                chart.series.append(
                    .init(label: "s_qk" + tag, color: "#ff7f0e", dashed: i > 0, x: x, y: r.scales.map(\.sqk.mean)))
                chart.series.append(
                    .init(label: "s_u" + tag, color: "#9467bd", dashed: i > 0, x: x, y: r.scales.map(\.su.mean)))
                chart.series.append(
                    .init(label: "s_ν" + tag, color: "#8c564b", dashed: i > 0, x: x, y: r.scales.map(\.sv.mean)))
            }
            try save(chart, "scales")
        }
        var spectra = LineChart(
            title: "Singular values, layer 0 (normalised by σ_max)", xLabel: "index", yLabel: "σ / σ_max")
        for (i, r) in reports.enumerated() {
            guard let c = r.conditioning.first else { continue }
            for (w, dash) in [("attn.wq", false), ("mlp.w_up", true)] {
                let s = c.spectra[w] ?? []
                guard let top = s.first, top > 0 else { continue }
                spectra.series.append(
                    .init(
                        label: "\(r.model) \(w)", color: colors[i % 2], dashed: dash, x: s.indices.map(Double.init),
                        y: s.map { $0 / top }))
            }
        }
        try save(spectra, "spectra")
        var hist = LineChart(title: "Pairwise cosine of E_in rows", xLabel: "cosine", yLabel: "fraction of pairs")
        for (i, r) in reports.enumerated() {
            let h = r.embeddings[0].cosines.histogram
            let x = h.indices.map { -1 + (Double($0) + 0.5) * 2 / Double(h.count) }
            hist.series.append(.init(label: r.model, color: colors[i % 2], x: x, y: h))
        }
        try save(hist, "cosines")
        return written
    }
}
