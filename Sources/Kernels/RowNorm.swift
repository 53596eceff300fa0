// Row normalisations over [rows, cols] row-major matrices: the nGPT L2 normalisation (and the post-step
// renormalisation of whole weight matrices) and the baseline's RMSNorm with a gain. Each forward saves the
// per-row inverse norm its backward needs.

public enum RowNorm {
    /// Norms below this are treated as this value, so a zero row stays finite (design §4.1).
    public static let l2Floor: Float = 1e-12

    // MARK: L2 normalisation  y = x / ‖x‖

    /// x, y: [rows, cols] (y may be x); invNorm: [rows] or nil.
    public static func l2Forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        invNorm: UnsafeMutablePointer<Float>?, rows: Int, cols: Int
    ) {
        Threads.parallelFor(rows, workPerItem: 8 * cols) { _, range in
            for r in range {
                let inv = l2ForwardRow(x + r * cols, y + r * cols, cols: cols)
                invNorm?[r] = inv
            }
        }
    }

    /// One row of `l2Forward`: y = x / ‖x‖ (y may be x); returns the inverse norm.
    @inline(__always)
    static func l2ForwardRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, cols: Int) -> Float {
        let inv = 1 / max(dot(x, x, cols).squareRoot(), l2Floor)
        scale(x, inv, y, cols)
        return inv
    }

    /// nGPT's residual update after a block's output b, fused row by row (each row stays in L1 between the steps,
    /// where the separate kernels stream the [rows, cols] matrices through memory four times):
    ///   b ← b / ‖b‖   (invB);   out = a + α ⊙ (b − a);   out ← out / ‖out‖   (invOut);
    ///   and, when given, next = out / ‖out‖   (invNext: the following sub-block's input normalisation).
    /// The same arithmetic as l2Forward, Columns.lerp, l2Forward (and l2Forward into next): the same bits.
    /// a, b, out, next: [rows, cols]; alpha: [cols]; invB, invOut, invNext: [rows].
    public static func residualUpdate(
        a: UnsafePointer<Float>, b: UnsafeMutablePointer<Float>, invB: UnsafeMutablePointer<Float>,
        alpha: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, invOut: UnsafeMutablePointer<Float>,
        next: UnsafeMutablePointer<Float>?, invNext: UnsafeMutablePointer<Float>?, rows: Int, cols: Int
    ) {
        Threads.parallelFor(rows, workPerItem: 28 * cols) { _, range in
            for r in range {
                let ar = a + r * cols, br = b + r * cols, o = out + r * cols
                invB[r] = l2ForwardRow(br, br, cols: cols)
                Columns.lerpRow(ar, br, alpha: alpha, o, cols: cols)
                invOut[r] = l2ForwardRow(o, o, cols: cols)
                if let next {
                    let inx = l2ForwardRow(o, next + r * cols, cols: cols)
                    invNext?[r] = inx
                }
            }
        }
    }

    /// dx = (dy − y·⟨y, dy⟩) · invNorm   (or dx += … when `accumulate`).
    /// dy, y, dx: [rows, cols] (dx may be dy); invNorm: [rows].
    public static func l2Backward(
        _ dy: UnsafePointer<Float>, y: UnsafePointer<Float>, invNorm: UnsafePointer<Float>,
        _ dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int, accumulate: Bool = false
    ) {
        Threads.parallelFor(rows, workPerItem: 12 * cols) { _, range in
            for r in range {
                l2BackwardRow(
                    dy + r * cols, y: y + r * cols, inv: invNorm[r], dx + r * cols, cols: cols, accumulate: accumulate)
            }
        }
    }

    /// One row of `l2Backward`.
    @inline(__always)
    static func l2BackwardRow(
        _ dyr: UnsafePointer<Float>, y yr: UnsafePointer<Float>, inv: Float, _ dxr: UnsafeMutablePointer<Float>,
        cols: Int, accumulate: Bool
    ) {
        let proj = dot(yr, dyr, cols)
        let vinv = F32x16(repeating: inv), vproj = F32x16(repeating: proj)
        var i = 0
        if accumulate {
            while i + 16 <= cols {
                store16(load16(dxr + i) + (load16(dyr + i) - load16(yr + i) * vproj) * vinv, dxr + i)
                i += 16
            }
            while i < cols { dxr[i] += (dyr[i] - yr[i] * proj) * inv; i += 1 }
        } else {
            while i + 16 <= cols {
                store16((load16(dyr + i) - load16(yr + i) * vproj) * vinv, dxr + i)
                i += 16
            }
            while i < cols { dxr[i] = (dyr[i] - yr[i] * proj) * inv; i += 1 }
        }
    }

    /// Backward of `residualUpdate` (without its `next`, whose gradient the caller adds through its own
    /// l2Backward), given g = ∂L/∂out, row by row, each row's ∂L/∂ρ kept in L1 instead of a [rows, cols] pass:
    ///   gρ = l2Backward(g; out, invOut);   ga = (1 − α) ⊙ gρ;   gb = l2Backward(α ⊙ gρ; b, invB);
    ///   galpha += Σ_r (b − a) ⊙ gρ   (summed over fixed 256-row blocks, then the blocks in order: the same bits on
    ///   any number of threads).
    /// ga and gb are the bits of l2Backward, Columns.lerpBackward, l2Backward; galpha differs from lerpBackward's
    /// column sums in rounding order only. g, out, a, b (after its normalisation), ga, gb: [rows, cols] (ga may be
    /// g); alpha, galpha: [cols]; invOut, invB: [rows].
    ///
    /// `plus`, when given, is a normalisation's backward that g still lacks: each row uses g + l2Backward(plus.dy;
    /// plus.y, plus.invNorm), the bits `l2Backward(…, accumulate: true)` into g would leave, without that pass over
    /// g (nGPT's backward: the gradient through the previous sub-block's input normalisation). ga may be plus.dy.
    public static func residualUpdateBackward(
        _ g: UnsafePointer<Float>, plus pending: PendingL2Backward? = nil, out: UnsafePointer<Float>,
        invOut: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, invB: UnsafePointer<Float>,
        alpha: UnsafePointer<Float>, ga: UnsafeMutablePointer<Float>, gb: UnsafeMutablePointer<Float>,
        galpha: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        Threads.reduceColumns(rows: rows, cols: cols, workPerItem: 40 * cols, into: galpha) { range, partial in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * cols) { buffer in
                let grho = buffer.baseAddress.unsafelyUnwrapped, gTotal = grho + cols
                for r in range {
                    let o = r * cols
                    var gr = g + o
                    if let p = pending {  // read before ga's row is written: ga may be p.dy
                        gTotal.update(from: gr, count: cols)
                        l2BackwardRow(p.dy + o, y: p.y + o, inv: p.invNorm[r], gTotal, cols: cols, accumulate: true)
                        gr = UnsafePointer(gTotal)
                    }
                    l2BackwardRow(gr, y: out + o, inv: invOut[r], grho, cols: cols, accumulate: false)
                    var j = 0
                    while j + 16 <= cols {
                        let gv = load16(grho + j), av = load16(alpha + j)
                        store16(load16(partial + j) + (load16(b + o + j) - load16(a + o + j)) * gv, partial + j)
                        store16((1 - av) * gv, ga + o + j)
                        store16(av * gv, gb + o + j)
                        j += 16
                    }
                    while j < cols {
                        let gv = grho[j]
                        partial[j] += (b[o + j] - a[o + j]) * gv
                        ga[o + j] = (1 - alpha[j]) * gv
                        gb[o + j] = alpha[j] * gv
                        j += 1
                    }
                    l2BackwardRow(gb + o, y: b + o, inv: invB[r], gb + o, cols: cols, accumulate: false)
                }
            }
        }
    }

    /// An L2 normalisation's backward not yet added to its gradient (`residualUpdateBackward`'s `plus`): dy, y:
    /// [rows, cols]; invNorm: [rows], as `l2Backward` takes them.
    public struct PendingL2Backward {
        public let dy: UnsafePointer<Float>, y: UnsafePointer<Float>, invNorm: UnsafePointer<Float>
        public init(dy: UnsafePointer<Float>, y: UnsafePointer<Float>, invNorm: UnsafePointer<Float>) {
            self.dy = dy; self.y = y; self.invNorm = invNorm
        }
    }

    /// Projects every row of a weight matrix back onto the unit sphere, in place (nGPT's post-step
    /// renormalisation). Returns the largest |‖row‖ − 1| seen before the projection.
    @discardableResult
    public static func renormalizeRows(_ w: UnsafeMutablePointer<Float>, rows: Int, cols: Int) -> Float {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Threads.count) { worstOf in
            worstOf.initialize(repeating: 0)
            let worst = worstOf.baseAddress.unsafelyUnwrapped
            Threads.parallelFor(rows, workPerItem: 8 * cols) { chunk, range in
                var largest: Float = 0  // written once: the chunks' slots share a cache line
                for r in range {
                    let wr = w + r * cols
                    let norm = dot(wr, wr, cols).squareRoot()
                    largest = max(largest, abs(norm - 1))
                    scale(wr, 1 / max(norm, l2Floor), wr, cols)
                }
                worst[chunk] = largest
            }
            return worstOf.max() ?? 0
        }
    }

    /// The largest |‖row‖ − 1| over the rows of a matrix.
    public static func maxRowNormDeviation(_ w: UnsafePointer<Float>, rows: Int, cols: Int) -> Float {
        var worst: Float = 0
        for r in 0..<rows {
            let wr = w + r * cols
            worst = max(worst, abs(dot(wr, wr, cols).squareRoot() - 1))
        }
        return worst
    }

    // MARK: RMSNorm  y = g ⊙ x / √(mean(x²) + ε)

    /// x, y: [rows, cols] (y may be x); gain: [cols]; rstd: [rows] receives 1/√(mean(x²)+ε).
    public static func rmsForward(
        _ x: UnsafePointer<Float>, gain: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, rows: Int, cols: Int, eps: Float = 1e-6
    ) {
        Threads.parallelFor(rows, workPerItem: 8 * cols) { _, range in
            for r in range {
                let xr = x + r * cols, yr = y + r * cols
                let s = 1 / (dot(xr, xr, cols) / Float(cols) + eps).squareRoot()
                rstd[r] = s
                let vs = F32x16(repeating: s)
                var i = 0
                while i + 16 <= cols {
                    store16(load16(xr + i) * vs * load16(gain + i), yr + i)
                    i += 16
                }
                while i < cols { yr[i] = xr[i] * s * gain[i]; i += 1 }
            }
        }
    }

    /// dx = (g⊙dy − x̂·mean(g⊙dy⊙x̂)) · rstd with x̂ = x·rstd (dx += … when `accumulate`), and
    /// dgain += Σ_rows dy ⊙ x̂. dy, x, dx: [rows, cols] (dx may alias dy, not x); gain, dgain: [cols].
    public static func rmsBackward(
        _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, gain: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
        dgain: UnsafeMutablePointer<Float>, rows: Int, cols: Int, accumulate: Bool = false
    ) {
        // One pass over the rows; each fixed block of rows sums its gain gradient into its own partial, and the
        // partials are added into dgain in block order after the join (the same bits on any number of threads).
        Threads.reduceColumns(rows: rows, cols: cols, workPerItem: 12 * cols, into: dgain) { range, pg in
            for r in range {
                let dyr = dy + r * cols, xr = x + r * cols, dxr = dx + r * cols
                let s = rstd[r]
                let vs = F32x16(repeating: s)
                // mean(g⊙dy⊙x̂) = rstd · ⟨g⊙dy, x⟩ / cols; dgain += dy ⊙ x · rstd
                var acc = F32x16()
                var i = 0
                while i + 16 <= cols {
                    let dyv = load16(dyr + i), xv = load16(xr + i)
                    acc += load16(gain + i) * dyv * xv
                    store16(load16(pg + i) + dyv * xv * vs, pg + i)
                    i += 16
                }
                var t = acc.sum()
                while i < cols { t += gain[i] * dyr[i] * xr[i]; pg[i] += dyr[i] * xr[i] * s; i += 1 }
                let m = t * s / Float(cols)
                let vms = F32x16(repeating: m * s)
                i = 0
                while i + 16 <= cols {
                    let v = (load16(gain + i) * load16(dyr + i) - load16(xr + i) * vms) * vs
                    store16(accumulate ? load16(dxr + i) + v : v, dxr + i)
                    i += 16
                }
                while i < cols {
                    let v = (gain[i] * dyr[i] - xr[i] * s * m) * s
                    dxr[i] = accumulate ? dxr[i] + v : v
                    i += 1
                }
            }
        }
    }
}
