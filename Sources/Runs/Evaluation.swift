import NGPT

/// The mean loss over evaluation windows: the one evaluation loop, shared by the trainer's validation and
/// `ngpt-sample --perplexity` (so both give the same number for the same windows).
public enum Evaluation {
    /// Windows 0..<windows, each filled by `fill(window, inputs, targets)` ([context] each), run in batches of
    /// `batch`; the mean of the per-window mean losses.
    public static func meanLoss(
        model: LanguageModel, windows: Int, context T: Int, batch: Int,
        fill: (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) throws -> Void
    ) rethrows -> Double {
        try estimate(model: model, windows: windows, context: T, batch: batch, fill: fill).mean
    }

    /// The mean loss over the windows and its standard error, estimated from the spread of the batches' means (the
    /// windows' losses are not kept one by one): how much a different draw of as many windows would move the mean.
    /// nan when there is a single batch.
    public static func estimate(
        model: LanguageModel, windows: Int, context T: Int, batch: Int,
        fill: (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) throws -> Void
    ) rethrows -> (mean: Double, standardError: Double) {
        let inputs = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T),
            targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T)
        defer { inputs.deallocate(); targets.deallocate() }
        var batchMeans: [(mean: Double, count: Int)] = []
        var w = 0
        while w < windows {
            let b = min(batch, windows - w)
            for i in 0..<b { try fill(w + i, inputs + i * T, targets + i * T) }
            batchMeans.append((model.forward(inputs: inputs, targets: targets, batch: b), b))
            w += b
        }
        let mean = batchMeans.reduce(0) { $0 + $1.mean * Double($1.count) } / Double(max(1, windows))
        guard batchMeans.count > 1 else { return (mean, .nan) }
        // A batch mean of b windows varies as σ²/b: the windows' variance is Σ b·(m − mean)² / (batches − 1).
        let variance =
            batchMeans.reduce(0) { $0 + Double($1.count) * ($1.mean - mean) * ($1.mean - mean) }
            / Double(batchMeans.count - 1)
        return (mean, (variance / Double(windows)).squareRoot())
    }
}
