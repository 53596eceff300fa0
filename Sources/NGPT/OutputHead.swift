import Kernels

/// Both models' output head: logits z = x·Wᵀ [n, V] from the head's input x [n, d] and the output matrix W [V, d],
/// the softmax cross-entropy, and its backward, run over chunks of rows.
///
/// At config S the logits and their gradient are 64 MB each, far more than the caches: produced whole, every pass
/// over them (the loss, its gradient, the two products that read the gradient) goes to memory. A chunk of
/// `chunkRows` rows (16 MB) is produced, turned into its gradient in place and consumed by both products while it
/// is still in the last-level cache, so a training step never holds the logits or their gradient whole, and the
/// loss and its gradient take one pass instead of two.
enum OutputHead {
    /// Rows per chunk: about 16 MB of logits, and at least 256 rows, so that each chunk's weight-gradient product
    /// still has a few hundred tokens of depth. Smaller chunks measured slower at config S (1.4 % a step with 512
    /// rows): the products pack the whole output matrix again for every chunk.
    static func chunkRows(rows n: Int, vocab: Int) -> Int { min(n, max(256, (1 << 22) / max(1, vocab))) }

    /// Σ over rows of the loss, and the gradient of gradScale · Σ loss:
    ///   dz = (softmax(z) − onehot) · gradScale             [rows, V], chunk by chunk in `chunk`
    ///   weightGrad = beta · weightGrad + dzᵀ·x             [V, d]
    ///   dx = dz·W                                          [n, d]
    /// `logits` are the forward's logits [n, V] when it kept them; nil computes each chunk's (a training step).
    /// The chunks are fixed by the sizes alone, so the bits do not depend on the thread count.
    static func lossAndGradient(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows n: Int, dim d: Int, vocab V: Int,
        targets: UnsafePointer<Int32>, logits: UnsafePointer<Float>?, chunk: UnsafeMutablePointer<Float>,
        gradScale: Float, dx: UnsafeMutablePointer<Float>, weightGrad: UnsafeMutablePointer<Float>, beta: Float
    ) -> Double {
        let step = chunkRows(rows: n, vocab: V)
        // dz as the products read it (`GEMM.Operand`): in bf16 its rows are the first halves of the chunk's rows
        let dz = GEMM.Operand(chunk, precision: GEMM.precision), ld = dz.isBF16 ? 2 * V : V
        var loss = 0.0
        for r0 in stride(from: 0, to: n, by: step) {
            let rows = min(step, n - r0), xr = x + r0 * d
            if logits == nil { GEMM.xwT(xr, weight, chunk, m: rows, k: d, n: V) }
            loss += CrossEntropy.forwardBackward(
                logits: logits.map { $0 + r0 * V } ?? UnsafePointer(chunk), targets: targets + r0, rows: rows,
                vocab: V, gradient: dz, gradScale: gradScale)
            GEMM.xTy(dz, lda: ld, xr, weightGrad, m: rows, k: V, n: d, beta: r0 == 0 ? beta : 1)
            GEMM.xw(dz, lda: ld, weight, dx + r0 * d, m: rows, k: V, n: d)
        }
        return loss
    }
}
