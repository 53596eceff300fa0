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
        let inputs = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T),
            targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T)
        defer { inputs.deallocate(); targets.deallocate() }
        var total = 0.0, w = 0
        while w < windows {
            let b = min(batch, windows - w)
            for i in 0..<b { try fill(w + i, inputs + i * T, targets + i * T) }
            total += model.forward(inputs: inputs, targets: targets, batch: b) * Double(b)
            w += b
        }
        return total / Double(max(1, windows))
    }
}
