// Elementwise and column-wise operations over [rows, cols] matrices with per-column vectors: the nGPT scale
// vectors (s_qk, s_u, s_ν, s_z, α) multiply columns, and their gradients are column sums.

public enum Columns {
    /// y[r, j] = factor · s[j] · x[r, j]   (y may be x).
    public static func scale(
        _ x: UnsafePointer<Float>, by s: UnsafePointer<Float>, factor: Float = 1,
        _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        Threads.parallelFor(rows, workPerItem: 8 * cols) { _, range in
            for r in range {
                let xr = x + r * cols, yr = y + r * cols
                var j = 0
                while j + 16 <= cols { store16(load16(xr + j) * load16(s + j) * factor, yr + j); j += 16 }
                while j < cols { yr[j] = xr[j] * s[j] * factor; j += 1 }
            }
        }
    }

    /// g[j] += factor · Σ_r a[r, j] · b[r, j]: the gradient of a column scale vector.
    /// Rows stream contiguously; each fixed block of rows sums into its own partial vector, and the partials are
    /// added into g in block order (the same bits on any number of threads).
    public static func dotAccumulate(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, factor: Float = 1,
        into g: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        Threads.reduceColumns(rows: rows, cols: cols, workPerItem: 8 * cols, into: g, factor: factor) { range, acc in
            for r in range {
                let ar = a + r * cols, br = b + r * cols
                var j = 0
                while j + 16 <= cols {
                    store16(load16(acc + j) + load16(ar + j) * load16(br + j), acc + j); j += 16
                }
                while j < cols { acc[j] += ar[j] * br[j]; j += 1 }
            }
        }
    }

    /// y[r, :] = s[r] · x[r, :] — a vector scaling the *rows* of a [rows, cols] matrix (e.g. folding a
    /// per-output scale into a weight matrix: diag(s)·W).
    /// With `accumulate`, y[r, :] += s[r] · x[r, :] instead (x and y must not alias then).
    public static func scaleRows(
        _ x: UnsafePointer<Float>, by s: UnsafePointer<Float>, factor: Float = 1,
        _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, accumulate: Bool = false
    ) {
        Threads.parallelFor(rows, workPerItem: (accumulate ? 12 : 8) * cols) { _, range in
            for r in range {
                let k = s[r] * factor
                if !accumulate { Kernels.scale(x + r * cols, k, y + r * cols, cols); continue }
                let xr = x + r * cols, yr = y + r * cols
                let vk = F32x16(repeating: k)
                var j = 0
                while j + 16 <= cols { store16(load16(yr + j) + load16(xr + j) * vk, yr + j); j += 16 }
                while j < cols { yr[j] += xr[j] * k; j += 1 }
            }
        }
    }

    /// g[r] += factor · ⟨a[r, :], b[r, :]⟩ — the gradient of a row scale (see `scaleRows`).
    public static func rowDotAccumulate(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, factor: Float = 1,
        into g: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        Threads.parallelFor(rows, workPerItem: 8 * cols) { _, range in
            for r in range { g[r] += factor * dot(a + r * cols, b + r * cols, cols) }
        }
    }

    /// out = a + α ⊙ (b − a), α per column (the nGPT LERP step towards the block output).
    public static func lerp(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, alpha: UnsafePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        Threads.parallelFor(rows, workPerItem: 12 * cols) { _, range in
            for r in range { lerpRow(a + r * cols, b + r * cols, alpha: alpha, out + r * cols, cols: cols) }
        }
    }

    /// One row of `lerp` (also RowNorm.residualUpdate's step).
    @inline(__always)
    static func lerpRow(
        _ ar: UnsafePointer<Float>, _ br: UnsafePointer<Float>, alpha: UnsafePointer<Float>,
        _ o: UnsafeMutablePointer<Float>, cols: Int
    ) {
        var j = 0
        while j + 16 <= cols {
            let av = load16(ar + j)
            store16(av + load16(alpha + j) * (load16(br + j) - av), o + j)
            j += 16
        }
        while j < cols { o[j] = ar[j] + alpha[j] * (br[j] - ar[j]); j += 1 }
    }

    /// Backward of `lerp`: ga = (1 − α) ⊙ g, gb = α ⊙ g, and gα += Σ_r (b − a) ⊙ g. nGPT's training uses
    /// RowNorm.residualUpdateBackward, this fused with its two normalisations; this stays as its readable
    /// reference (the fused kernel is tested against it).
    public static func lerpBackward(
        _ g: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        alpha: UnsafePointer<Float>, ga: UnsafeMutablePointer<Float>,
        gb: UnsafeMutablePointer<Float>, galpha: UnsafeMutablePointer<Float>,
        rows: Int, cols: Int
    ) {
        // gα first: it reads g, a and b before ga/gb (which may alias g) are written.
        let blocks = (cols + 15) / 16
        Threads.parallelFor(blocks, workPerItem: 12 * 16 * rows) { _, range in
            for block in range {
                let j0 = block * 16
                if j0 + 16 <= cols {
                    var acc = F32x16()
                    for r in 0..<rows {
                        let o = r * cols + j0
                        acc += (load16(b + o) - load16(a + o)) * load16(g + o)
                    }
                    store16(load16(galpha + j0) + acc, galpha + j0)
                } else {
                    for j in j0..<cols {
                        var s: Float = 0
                        for r in 0..<rows { s += (b[r * cols + j] - a[r * cols + j]) * g[r * cols + j] }
                        galpha[j] += s
                    }
                }
            }
        }
        Threads.parallelFor(rows, workPerItem: 16 * cols) { _, range in
            for r in range {
                let gr = g + r * cols, gar = ga + r * cols, gbr = gb + r * cols
                var j = 0
                while j + 16 <= cols {
                    let gv = load16(gr + j), av = load16(alpha + j)
                    store16((1 - av) * gv, gar + j)
                    store16(av * gv, gbr + j)
                    j += 16
                }
                while j < cols { let gv = gr[j]; gar[j] = (1 - alpha[j]) * gv; gbr[j] = alpha[j] * gv; j += 1 }
            }
        }
    }

    /// y = a + b elementwise over n values (y may be a or b).
    public static func add(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int
    ) {
        var i = 0
        while i + 16 <= n { store16(load16(a + i) + load16(b + i), y + i); i += 16 }
        while i < n { y[i] = a[i] + b[i]; i += 1 }
    }
}
