import CGEMM
import CRowKernels

// Causal scaled-dot-product attention over (batch, head): products tile by tile on operands packed once per head
// (where ngpt's kernels run) or blocked GEMMs (elsewhere), with a fused masked softmax.
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
    /// The blocked path (where OpenBLAS runs the products) processes query rows in blocks of this many: a block's
    /// scores are computed only against the keys it may see (columns < block end), which skips most of the masked
    /// upper triangle (62.5 % of the full T×T work at T = 256 instead of 100 %), while keeping the GEMMs large
    /// enough to run at speed.
    public static let defaultBlock = 64

    /// The rows per block of the blocked path for a `block` argument, or nil for the tiles on packed operands:
    /// a given block always means blocks; nil means tiles where ngpt's kernels run, else `defaultBlock`.
    public static func blockedPath(_ block: Int?) -> Int? { block ?? (GEMM.path == .native ? nil : defaultBlock) }

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
    /// diagonal are 0 up to the end of their row tile or block; later columns are never read). `block` nil: tile
    /// by tile on packed operands where ngpt's kernels run, else blocks of `defaultBlock`; a number: blocks of it
    /// (tests cross many blocks with small ones).
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, probs: UnsafeMutablePointer<Float>,
        shape: AttentionShape, scale: Float, block: Int? = nil
    ) {
        guard let block = blockedPath(block) else {
            forwardPacked(q: q, k: k, v: v, ld: ld, y: y, ldy: ldy, probs: probs, shape: shape, scale: scale)
            return
        }
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

    /// Given dy, writes dq, dk, dv (row stride `ldg`) for the forward above (same `block`: each path reads only the
    /// probabilities its own forward wrote).
    ///   dV = Pᵀ·dY,  dP = dY·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q,
    /// each restricted to the causal part block by block. scratch: at least `shape.backwardScratchCount` floats.
    public static func backward(
        dy: UnsafePointer<Float>, ldy: Int,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        probs: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk dkOut: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, ldg: Int,
        scratch: UnsafeMutablePointer<Float>, shape: AttentionShape, scale: Float,
        block: Int? = nil
    ) {
        guard let block = blockedPath(block) else {
            backwardPacked(
                dy: dy, ldy: ldy, q: q, k: k, v: v, ld: ld, probs: probs, dq: dq, dk: dkOut, dv: dv, ldg: ldg,
                scratch: scratch, shape: shape, scale: scale)
            return
        }
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

    // MARK: Tile by tile on packed operands (ngpt's kernels)
    //
    // A head's K and V (backward: also Q and dY) are each read by every row tile of its T×T products, so they are
    // packed once per head in the micro-kernel's layout; the blocked path above packs them again for each block's
    // GEMM. The scores are computed in tiles of 14 query rows (one micro-kernel's height) against the keys up to
    // the tile's last row, rounded up to a whole 32-key panel: about 56 % of the full T×T at T = 256, against
    // 62.5 % for 64-row blocks. Each sum runs over the same k, in the same order and pairs, as the blocked path's
    // (the terms it adds beyond the diagonal are exact zeros), so both give the same bits (tested).

    static let tileRows = Int(NGPT_GEMM_MR), tileKeys = Int(NGPT_GEMM_NR)

    /// Keys a query tile ending at row `end` (exclusive) computes scores for: its causal extent in whole panels.
    /// Entries of a probs (or dS) row between the diagonal and this extent are written as 0; later ones never are.
    @inline(__always)
    static func tileWidth(end: Int, context: Int) -> Int {
        min(context, (end + tileKeys - 1) / tileKeys * tileKeys)
    }

    /// Keys a P·V (or dS·K) product of a tile ending at `end` runs over: to the diagonal, in whole bf16 pairs.
    @inline(__always)
    static func tileDepth(end: Int, context: Int) -> Int { min(context, end + end % 2) }

    static func forwardPacked(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, probs: UnsafeMutablePointer<Float>,
        shape: AttentionShape, scale: Float
    ) {
        let T = shape.context, dk = shape.headDim
        let bf16: Int32 = GEMM.precision == .bf16 ? 1 : 0
        // Per worker: Q [T×dk] as A panels, Kᵀ [dk×T] and V [T×dk] as B panels, one P tile [14×T] as A panels.
        let qSize = ngpt_packed_a_floats(T, dk, bf16), kSize = ngpt_packed_b_floats(dk, T, bf16)
        let vSize = ngpt_packed_b_floats(T, dk, bf16), tileSize = ngpt_packed_a_floats(tileRows, T, bf16)
        let bytes = (qSize + kSize + vSize + tileSize) * MemoryLayout<Float>.stride
        forEachHead(shape) { _, pair, row, column in
            let qh = q + row * ld + column, kh = k + row * ld + column, vh = v + row * ld + column
            let p = probs + pair * T * T, yh = y + row * ldy + column
            let packedQ = ngpt_thread_buffer(Int32(NGPT_BUFFER_ATTENTION), bytes)!.assumingMemoryBound(to: Float.self)
            let packedK = packedQ + qSize, packedV = packedK + kSize, packedP = packedV + vSize
            ngpt_pack_a(0, qh, ld, T, dk, packedQ, bf16)
            ngpt_pack_b(1, kh, ld, dk, T, packedK, bf16)
            ngpt_pack_b(0, vh, ld, T, dk, packedV, bf16)
            for r0 in stride(from: 0, to: T, by: tileRows) {
                let r1 = min(T, r0 + tileRows)
                let width = tileWidth(end: r1, context: T), depth = tileDepth(end: r1, context: T)
                // S[r0..<r1, 0..<width] = scale · Q·Kᵀ, then softmax in place
                ngpt_gemm_packed(r0, r1, 0, width, dk, scale, packedQ, dk, 0, packedK, dk, 0, 0, p, T, bf16)
                ngpt_causal_softmax(p + r0 * T, T, r1 - r0, r0 + 1, width)  // causalSoftmaxRow's bits, row by row
                // Y[r0..<r1] = P[r0..<r1, 0..<depth]·V[0..<depth]
                ngpt_pack_a(0, p + r0 * T, T, r1 - r0, depth, packedP, bf16)
                ngpt_gemm_packed(
                    0, r1 - r0, 0, dk, depth, 1, packedP, depth, 0, packedV, T, 0, 0, yh + r0 * ldy, ldy, bf16)
            }
        }
    }

    static func backwardPacked(
        dy: UnsafePointer<Float>, ldy: Int,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        probs: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk dkOut: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, ldg: Int,
        scratch: UnsafeMutablePointer<Float>, shape: AttentionShape, scale: Float
    ) {
        let T = shape.context, dk = shape.headDim
        let bf16: Int32 = GEMM.precision == .bf16 ? 1 : 0
        // Per worker: dY [T×dk] as A panels (for dP) and as B panels (for dV), Vᵀ [dk×T], K, Q [T×dk] as B panels,
        // one tile [14×T] of dS, Pᵀ or dSᵀ as A panels.
        let aSize = ngpt_packed_a_floats(T, dk, bf16), bSize = ngpt_packed_b_floats(T, dk, bf16)
        let vSize = ngpt_packed_b_floats(dk, T, bf16), tileSize = ngpt_packed_a_floats(tileRows, T, bf16)
        let bytes = (aSize + 3 * bSize + vSize + tileSize) * MemoryLayout<Float>.stride
        forEachHead(shape) { worker, pair, row, column in
            let dS = scratch + worker * T * T
            let offset = row * ld + column, goff = row * ldg + column
            let p = probs + pair * T * T, dyh = dy + row * ldy + column
            let packedDYA = ngpt_thread_buffer(Int32(NGPT_BUFFER_ATTENTION), bytes)!.assumingMemoryBound(to: Float.self)
            let packedDYB = packedDYA + aSize, packedK = packedDYB + bSize, packedQ = packedK + bSize
            let packedV = packedQ + bSize, packedTile = packedV + vSize
            ngpt_pack_a(0, dyh, ldy, T, dk, packedDYA, bf16)
            ngpt_pack_b(0, dyh, ldy, T, dk, packedDYB, bf16)
            ngpt_pack_b(0, k + offset, ld, T, dk, packedK, bf16)
            ngpt_pack_b(0, q + offset, ld, T, dk, packedQ, bf16)
            ngpt_pack_b(1, v + offset, ld, dk, T, packedV, bf16)
            for r0 in stride(from: 0, to: T, by: tileRows) {
                let r1 = min(T, r0 + tileRows)
                let width = tileWidth(end: r1, context: T), depth = tileDepth(end: r1, context: T)
                // dP[r0..<r1, 0..<width] = dY·Vᵀ, then dS in place
                ngpt_gemm_packed(r0, r1, 0, width, dk, 1, packedDYA, dk, 0, packedV, dk, 0, 0, dS, T, bf16)
                // softmaxBackwardRow's bits, row by row
                ngpt_causal_softmax_backward(p + r0 * T, dS + r0 * T, T, r1 - r0, r0 + 1, width)
                // dQ[r0..<r1] = scale·dS[r0..<r1, 0..<depth]·K[0..<depth]
                ngpt_pack_a(0, dS + r0 * T, T, r1 - r0, depth, packedTile, bf16)
                ngpt_gemm_packed(
                    0, r1 - r0, 0, dk, depth, scale, packedTile, depth, 0, packedK, T, 0, 0, dq + goff + r0 * ldg,
                    ldg, bf16)
            }
            // Key tiles: keys c0..<c1 are seen by queries c0..<T (every earlier query's P and dS there are 0).
            for c0 in stride(from: 0, to: T, by: tileRows) {
                let c1 = min(T, c0 + tileRows), seen = T - c0
                // dV[c0..<c1] = P[c0..<T, c0..<c1]ᵀ·dY[c0..<T]
                ngpt_pack_a(1, p + c0 * T + c0, T, c1 - c0, seen, packedTile, bf16)
                ngpt_gemm_packed(
                    0, c1 - c0, 0, dk, seen, 1, packedTile, seen, 0, packedDYB, T, c0, 0, dv + goff + c0 * ldg, ldg,
                    bf16)
                // dK[c0..<c1] = scale·dS[c0..<T, c0..<c1]ᵀ·Q[c0..<T]
                ngpt_pack_a(1, dS + c0 * T + c0, T, c1 - c0, seen, packedTile, bf16)
                ngpt_gemm_packed(
                    0, c1 - c0, 0, dk, seen, scale, packedTile, seen, 0, packedQ, T, c0, 0, dkOut + goff + c0 * ldg,
                    ldg, bf16)
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
