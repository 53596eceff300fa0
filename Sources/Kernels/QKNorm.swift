/// nGPT's query and key path (design §4.1) fused row by row: RoPE, the L2 normalisation of each head, and the
/// scale vector s_qk, forward and backward. The separate kernels (RoPE.rotate, RowNorm.l2Forward, Columns.scale
/// and their backward passes, with Columns.dotAccumulate for s_qk's gradient) pass over the [rows, d] matrix
/// three times each way and write it back between passes; here each row stays in L1. The same operations in the
/// same order: the same bits (tested).
public enum QKNorm {
    /// x: [rows, d] with `heads` heads of `table.headDim` (d = heads · headDim), row r at position r % context;
    /// read only. hat = Norm(RoPE(x)) per head, invNorm[r · heads + h] its inverse norm; scaled = hat ⊙ s (s: [d]).
    public static func forward(
        _ x: UnsafePointer<Float>, hat: UnsafeMutablePointer<Float>, invNorm: UnsafeMutablePointer<Float>,
        scale s: UnsafePointer<Float>, scaled: UnsafeMutablePointer<Float>, rows: Int, heads: Int, context: Int,
        table: RoPETable
    ) {
        let dk = table.headDim, d = heads * dk
        Threads.parallelFor(rows, workPerItem: 20 * d) { _, range in
            for r in range {
                let t = r % context
                for h in 0..<heads {
                    let o = r * d + h * dk
                    RoPE.rotateHead(x + o, hat + o, position: t, table: table, inverse: false)
                    invNorm[r * heads + h] = RowNorm.l2ForwardRow(hat + o, hat + o, cols: dk)
                }
                let hr = hat + r * d, yr = scaled + r * d
                var j = 0
                while j + 16 <= d { store16(load16(hr + j) * load16(s + j), yr + j); j += 16 }
                while j < d { yr[j] = hr[j] * s[j]; j += 1 }
            }
        }
    }

    /// Backward of `forward`, given g = ∂L/∂scaled: sGrad += factor · Σ_r g ⊙ hat (fixed 256-row blocks, then
    /// the blocks in order: the same bits on any number of threads), and g ← ∂L/∂x in place:
    ///   ∂L/∂hat = g ⊙ s;   ∂L/∂RoPE(x) = l2Backward per head;   ∂L/∂x = the inverse rotation.
    public static func backward(
        _ g: UnsafeMutablePointer<Float>, hat: UnsafePointer<Float>, invNorm: UnsafePointer<Float>,
        scale s: UnsafePointer<Float>, scaleGrad: UnsafeMutablePointer<Float>, factor: Float, rows: Int, heads: Int,
        context: Int, table: RoPETable
    ) {
        let dk = table.headDim, d = heads * dk
        Threads.reduceColumns(rows: rows, cols: d, workPerItem: 28 * d, into: scaleGrad, factor: factor) {
            range, partial in
            for r in range {
                let gr = g + r * d, hr = hat + r * d
                var j = 0
                while j + 16 <= d {
                    let gv = load16(gr + j)
                    store16(load16(partial + j) + gv * load16(hr + j), partial + j)
                    store16(gv * load16(s + j), gr + j)
                    j += 16
                }
                while j < d { partial[j] += gr[j] * hr[j]; gr[j] *= s[j]; j += 1 }
                for h in 0..<heads {
                    let o = h * dk
                    RowNorm.l2BackwardRow(
                        gr + o, y: hr + o, inv: invNorm[r * heads + h], gr + o, cols: dk, accumulate: false)
                    RoPE.rotateHead(gr + o, gr + o, position: r % context, table: table, inverse: true)
                }
            }
        }
    }
}
