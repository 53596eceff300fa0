import Foundation

/// A minimal SVG line chart: a few series on shared axes, with an optional horizontal reference line.
public struct LineChart {
    public struct Series {
        public var label: String, color: String, dashed: Bool
        public var x: [Double], y: [Double]
        public init(label: String, color: String, dashed: Bool = false, x: [Double], y: [Double]) {
            self.label = label; self.color = color; self.dashed = dashed; self.x = x; self.y = y
        }
    }

    public var title: String, xLabel: String, yLabel: String
    public var series: [Series] = []
    public var reference: (y: Double, label: String)?
    public var width = 760.0, height = 460.0
    /// x is a count (layers, steps): ticks at whole numbers only.
    public var integerX = false

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    public func svg() -> String {
        let left = 70.0, right = 190.0, top = 40.0, bottom = 55.0
        let pw = width - left - right, ph = height - top - bottom
        let xs = series.flatMap(\.x).filter(\.isFinite),
            ys = (series.flatMap(\.y) + (reference.map { [$0.y] } ?? [])).filter(\.isFinite)
        let (x0, x1) = niceRange(xs.min() ?? 0, xs.max() ?? 1, fromZero: true)
        let (y0, y1) = niceRange(ys.min() ?? 0, ys.max() ?? 1, fromZero: false)
        func px(_ x: Double) -> Double { left + (x - x0) / max(x1 - x0, 1e-12) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / max(y1 - y0, 1e-12)) * ph }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \
            \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left + pw / 2)" y="22" text-anchor="middle" font-size="15" \
            font-weight="bold">\(escape(title))</text>

            """
        for t in ticks(x0, x1, integer: integerX) {
            out +=
                "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + ph))\" "
                + "stroke=\"#e4e4e4\"/>\n"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(label(t))</text>\n"
        }
        for t in ticks(y0, y1) {
            out +=
                "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(t)))\" "
                + "stroke=\"#e4e4e4\"/>\n"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        out +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" "
            + "stroke=\"#444\"/>\n"
        out +=
            "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        out +=
            "<text transform=\"translate(18 \(f(top + ph / 2))) rotate(-90)\" "
            + "text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        if let r = reference, r.y.isFinite {
            out +=
                "<line x1=\"\(f(left))\" y1=\"\(f(py(r.y)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(r.y)))\" "
                + "stroke=\"#888\" stroke-dasharray=\"2 4\"/>\n"
        }
        for s in series {
            let points = zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite }.map { "\(f(px($0.0))),\(f(py($0.1)))" }
            guard !points.isEmpty else { continue }
            out +=
                "<polyline fill=\"none\" stroke=\"\(s.color)\" "
                + "stroke-width=\"1.8\"\(s.dashed ? " stroke-dasharray=\"6 3\"" : "") "
                + "points=\"\(points.joined(separator: " "))\"/>\n"
        }
        var ly = top + 10
        for s in series {
            out +=
                "<line x1=\"\(f(left + pw + 14))\" y1=\"\(f(ly))\" x2=\"\(f(left + pw + 38))\" y2=\"\(f(ly))\" "
                + "stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 3\"" : "")/>\n"
            out += "<text x=\"\(f(left + pw + 44))\" y=\"\(f(ly + 4))\">\(escape(s.label))</text>\n"
            ly += 18
        }
        if let r = reference {
            out +=
                "<line x1=\"\(f(left + pw + 14))\" y1=\"\(f(ly))\" x2=\"\(f(left + pw + 38))\" y2=\"\(f(ly))\" "
                + "stroke=\"#888\" stroke-dasharray=\"2 4\"/>\n"
            out += "<text x=\"\(f(left + pw + 44))\" y=\"\(f(ly + 4))\">\(escape(r.label))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func f(_ x: Double) -> String { String(format: "%.1f", x) }
    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
    private func label(_ v: Double) -> String {
        if abs(v) >= 1000 { return String(format: "%.0f", v) }
        return abs(v - v.rounded()) < 1e-9 ? String(format: "%.0f", v) : String(format: "%.2f", v)
    }
    private func niceRange(_ lo: Double, _ hi: Double, fromZero: Bool) -> (Double, Double) {
        let a = fromZero ? min(0, lo) : lo, b = hi > lo ? hi : lo + 1
        let pad = fromZero ? 0 : (b - a) * 0.05
        return (a - pad, b + pad)
    }
    private func ticks(_ lo: Double, _ hi: Double, integer: Bool = false) -> [Double] {
        let span = hi - lo, raw = span / 6
        let mag = pow(10, floor(log10(raw)))
        var step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        if integer { step = max(1, step.rounded(.up)) }
        var t = (lo / step).rounded(.up) * step, out: [Double] = []
        while t <= hi + 1e-9 { out.append(t); t += step }
        return out
    }
}

/// Renders an SVG file to PNG with rsvg-convert when it is installed (librsvg2-bin); returns the PNG path or nil.
public func renderPNG(svgPath: String) -> String? {
    let png = String(svgPath.dropLast(4)) + ".png"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["rsvg-convert", "-f", "png", "-o", png, svgPath]
    p.standardError = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    do { try p.run() } catch { return nil }
    p.waitUntilExit()
    return p.terminationStatus == 0 ? png : nil
}
