// Causal scaled-dot-product attention over (batch, head), built on GEMMs and a fused masked softmax.
//
// Layout: q, k, v are [batch, T, heads·headDim] row-major with row stride `ld` (head h occupies columns
// h·headDim ..< (h+1)·headDim); y has row stride `ldy`. probs: [batch, heads, T, T], saved for backward
// (entries above the diagonal are written as 0). `scale` multiplies q·k: 1/√d_k for GPT, √d_k for nGPT.

public struct AttentionShape: Sendable {
    public var batch: Int, context: Int, heads: Int, headDim: Int
    public init(batch: Int, context: Int, heads: Int, headDim: Int) {
        self.batch = batch; self.context = context; self.heads = heads; self.headDim = headDim
    }
    var pairs: Int { batch * heads }
    var t2: Int { context * context }
    /// Floats of scratch that `Attention.backward` needs (one T×T tile per worker).
    public var backwardScratchCount: Int { context * context * min(pairs, Threads.maxWorkers) }
    /// Floats in the saved probabilities.
    public var probsCount: Int { pairs * context * context }
}

public enum Attention {
    /// Query rows are processed in blocks of this many: a block's scores are computed only against the keys it
    /// may see (columns < block end), which skips most of the masked upper triangle (62.5 % of the full T×T
    /// work at T = 256 instead of 100 %), while keeping the GEMMs large enough to run at speed.
    public static let defaultBlock = 64

    /// Runs `body(worker, pair, row, column)` for every (sequence b, head h) pair, the pairs split across the pool:
    /// `row` = b·T is the pair's first row, `column` = h·headDim its first column.
    @inline(__always)
    static func forEachHead(_ shape: AttentionShape, _ body: (Int, Int, Int, Int) -> Void) {
        Threads.parallelForSerialBLAS(shape.pairs) { worker, pairs in
            for pair in pairs {
                body(worker, pair, pair / shape.heads * shape.context, pair % shape.heads * shape.headDim)
            }
        }
    }

    /// y = softmax(scale·q·kᵀ + causal mask)·v per (batch, head); probs receives the softmax (entries above the
    /// diagonal are 0 up to the end of their row block; later columns are never read).
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, probs: UnsafeMutablePointer<Float>,
        shape: AttentionShape, scale: Float, block: Int = defaultBlock
    ) {
        let T = shape.context, dk = shape.headDim
        forEachHead(shape) { _, pair, row, column in
            let qh = q + row * ld + column, kh = k + row * ld + column, vh = v + row * ld + column
            let p = probs + pair * T * T, yh = y + row * ldy + column
            for i0 in stride(from: 0, to: T, by: block) {
                let i1 = min(T, i0 + block)
                // S[i0..<i1, 0..<i1] = scale · Q[i0..<i1]·K[0..<i1]ᵀ
                GEMM.gemm(
                    transA: false, transB: true, m: i1 - i0, n: i1, k: dk, alpha: scale, qh + i0 * ld, lda: ld,
                    kh, ldb: ld, p + i0 * T, ldc: T)
                for i in i0..<i1 { causalSoftmaxRow(p + i * T, valid: i + 1, count: i1) }
                // Y[i0..<i1] = P[i0..<i1, 0..<i1]·V[0..<i1]
                GEMM.gemm(
                    transA: false, transB: false, m: i1 - i0, n: dk, k: i1, p + i0 * T, lda: T, vh, ldb: ld,
                    yh + i0 * ldy, ldc: ldy)
            }
        }
    }

    /// Given dy, writes dq, dk, dv (row stride `ldg`) for the forward above (same `block`).
    ///   dV = Pᵀ·dY,  dP = dY·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q,
    /// each restricted to the causal part block by block. scratch: at least `shape.backwardScratchCount` floats.
    public static func backward(
        dy: UnsafePointer<Float>, ldy: Int,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        probs: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk dkOut: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, ldg: Int,
        scratch: UnsafeMutablePointer<Float>, shape: AttentionShape, scale: Float,
        block: Int = defaultBlock
    ) {
        let T = shape.context, dk = shape.headDim
        forEachHead(shape) { worker, pair, row, column in
            let dS = scratch + worker * T * T
            let offset = row * ld + column, goff = row * ldg + column
            let p = probs + pair * T * T, dyh = dy + row * ldy + column
            for i0 in stride(from: 0, to: T, by: block) {
                let i1 = min(T, i0 + block)
                // dP[i0..<i1, 0..<i1] = dY[i0..<i1]·V[0..<i1]ᵀ, then dS in place
                GEMM.gemm(
                    transA: false, transB: true, m: i1 - i0, n: i1, k: dk, dyh + i0 * ldy, lda: ldy, v + offset,
                    ldb: ld,
                    dS + i0 * T, ldc: T)
                for i in i0..<i1 { softmaxBackwardRow(p + i * T, dS + i * T, valid: i + 1, count: i1) }
                // dQ[i0..<i1] = scale·dS[i0..<i1, 0..<i1]·K[0..<i1]
                GEMM.gemm(
                    transA: false, transB: false, m: i1 - i0, n: dk, k: i1, alpha: scale, dS + i0 * T, lda: T,
                    k + offset, ldb: ld, dq + goff + i0 * ldg, ldc: ldg)
            }
            // Column blocks: keys j0..<j1 are seen by queries j0..<T.
            for j0 in stride(from: 0, to: T, by: block) {
                let j1 = min(T, j0 + block)
                // dV[j0..<j1] = P[j0..<T, j0..<j1]ᵀ·dY[j0..<T],  dK[j0..<j1] = scale·dS[j0..<T, j0..<j1]ᵀ·Q[j0..<T]
                GEMM.gemm(
                    transA: true, transB: false, m: j1 - j0, n: dk, k: T - j0, p + j0 * T + j0, lda: T,
                    dyh + j0 * ldy, ldb: ldy, dv + goff + j0 * ldg, ldc: ldg)
                GEMM.gemm(
                    transA: true, transB: false, m: j1 - j0, n: dk, k: T - j0, alpha: scale, dS + j0 * T + j0,
                    lda: T,
                    q + offset + j0 * ld, ldb: ld, dkOut + goff + j0 * ldg, ldc: ldg)
            }
        }
    }

    /// One query against a cache (single-token decoding): for every head h,
    ///   y_h = softmax(scale · q_h·K[0..<n, h]ᵀ) · V[0..<n, h].
    /// q, y: [heads·headDim]; kCache, vCache: [n, heads·headDim] rows (row stride `ld`); scores: [heads, n] scratch.
    /// The cache is read row by row, contiguously, serving every head at once.
    public static func decode(
        q: UnsafePointer<Float>, kCache: UnsafePointer<Float>, vCache: UnsafePointer<Float>, ld: Int,
        count n: Int, heads: Int, headDim dk: Int, scale: Float,
        scores: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>
    ) {
        for j in 0..<n {
            let kr = kCache + j * ld
            for h in 0..<heads { scores[h * n + j] = scale * dot(q + h * dk, kr + h * dk, dk, laneSum: treeSum) }
        }
        for h in 0..<heads { causalSoftmaxRow(scores + h * n, valid: n, count: n) }
        let d = heads * dk
        y.update(repeating: 0, count: d)
        for j in 0..<n {
            let vr = vCache + j * ld
            for h in 0..<heads {
                let p = F32x16(repeating: scores[h * n + j]), yh = y + h * dk, vh = vr + h * dk
                var c = 0
                while c + 16 <= dk { store16(load16(yh + c) + p * load16(vh + c), yh + c); c += 16 }
                let ps = scores[h * n + j]
                while c < dk { yh[c] += ps * vh[c]; c += 1 }
            }
        }
    }

    /// In place: the first `valid` entries become their softmax, the rest become 0.
    @inline(__always)
    public static func causalSoftmaxRow(_ row: UnsafeMutablePointer<Float>, valid: Int, count: Int) {
        let m = rowMax(row, count: valid)
        let vmx = F32x16(repeating: m)
        var acc = F32x16()
        var i = 0
        while i + 16 <= valid {
            let e = exp16(load16(row + i) - vmx)
            store16(e, row + i)
            acc += e
            i += 16
        }
        var s = acc.sum()
        if i < valid {
            // Tail: one masked SIMD exp instead of scalar libm calls.
            var t = F32x16(repeating: -Float.infinity)
            for j in i..<valid { t[j - i] = row[j] }
            let e = exp16(t - vmx)
            for j in i..<valid { row[j] = e[j - i]; s += e[j - i] }
        }
        let inv = 1 / s
        scale(row, inv, row, valid)
        if valid < count { (row + valid).update(repeating: 0, count: count - valid) }
    }

    /// In place over a row of dP: dS = P ⊙ (dP − ⟨dP, P⟩), zero past `valid`.
    @inline(__always)
    static func softmaxBackwardRow(_ p: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, valid: Int, count: Int)
    {
        let c = dot(p, d, valid)
        let vc = F32x16(repeating: c)
        var i = 0
        while i + 16 <= valid { store16(load16(p + i) * (load16(d + i) - vc), d + i); i += 16 }
        while i < valid { d[i] = p[i] * (d[i] - c); i += 1 }
        if valid < count { (d + valid).update(repeating: 0, count: count - valid) }
    }
}
