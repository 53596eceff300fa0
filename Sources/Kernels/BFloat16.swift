import CGEMM

/// bfloat16 storage for weights that are only read (single-token decoding): the top 16 bits of a Float, rounded to
/// nearest even. Halves the bytes streamed per token; values keep Float's range and ~3 significant digits.
public enum BFloat16 {
    @inline(__always) public static func round(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inline(__always) public static func float(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// dst[i] = bf16(src[i]).
    public static func convert(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { dst[i] = round(src[i]) }
    }

    /// 16 bf16 pairs as two Float vectors: the even-indexed elements and the odd-indexed ones. (Widening 16-bit
    /// lanes with SIMD16<UInt32>(truncatingIfNeeded:) compiles to a per-lane loop; a shift and a mask on 32-bit
    /// lanes stay vector instructions.)
    @inline(__always) static func loadPairs(_ p: UnsafePointer<UInt16>) -> (even: F32x16, odd: F32x16) {
        let w = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt32>.self)  // little-endian: low half = even element
        return (unsafeBitCast(w &<< 16, to: F32x16.self), unsafeBitCast(w & 0xFFFF_0000, to: F32x16.self))
    }
}

extension GEMM {
    /// Where `gemvBF16` runs CGEMM's vdpbf16ps kernel (AVX512_BF16, with AVX512BW for its row tails).
    public static var hasBF16Gemv: Bool { hasBF16 && features & Int(NGPT_GEMM_AVX512BW) != 0 }

    /// y = A·x (+ beta·y) with A [rows, cols] in bfloat16 (row-major, contiguous), for each of `vectors` x
    /// ([vectors, cols]) and y ([vectors, rows]): the decoder's product with bf16 weights, one stream or a batch.
    /// Where `hasBF16Gemv`, x is rounded to bfloat16 too and each row is a vdpbf16ps dot product (CGEMM's gemv.c),
    /// a batch sharing each load of a weight row, the rows split over the workers; elsewhere the Float-x loop
    /// below, vector by vector on the calling thread. Either way a vector's result does not depend on the others
    /// or on the thread count. `scratch`: at least vectors·(cols/2 + 32) and 2·max(rows, cols) + 32 floats.
    ///
    /// Measured (`ngpt-bench sample`, config S, AMD EPYC Zen 4, 2 threads, one stream): nGPT 7,250–7,900
    /// tokens/s, GPT 7,400–8,240, against 5,200–5,550 and 5,500–5,770 for the same kernel on one thread and
    /// ~3,500 for the Float-x loop. One token streams ~8.5 MB of bf16 weights from the caches; the split pays from
    /// products of 32 KB up (a fork costs about a microsecond with the pool's workers spinning).
    @inline(__always)
    public static func gemvBF16(
        rows: Int, cols: Int, _ a: UnsafePointer<UInt16>, vectors n: Int = 1, _ x: UnsafePointer<Float>,
        beta: Float = 0, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        withUnsafePointer(to: GemvRows(a, rows: rows, y)) {
            gemvBF16(UnsafeBufferPointer(start: $0, count: 1), cols: cols, vectors: n, x, beta: beta, scratch: scratch)
        }
    }

    /// A bf16 matrix [rows, cols] and where its products go (y: [vectors, rows]), as one part of a `gemvBF16` group.
    public struct GemvRows {
        public let a: UnsafePointer<UInt16>
        public let rows: Int
        public let y: UnsafeMutablePointer<Float>
        public init(_ a: UnsafePointer<UInt16>, rows: Int, _ y: UnsafeMutablePointer<Float>) {
            self.a = a; self.rows = rows; self.y = y
        }
    }

    /// `gemvBF16` for several matrices with the same input (q, k and v; SwiGLU's up and gate), as one job over all
    /// their rows: x rounded once and one fork instead of one per matrix (a fork and its wait cost microseconds,
    /// a config S token a hundred or so). Each row's sum does not depend on the split: the bits of one call each.
    public static func gemvBF16(
        _ parts: UnsafeBufferPointer<GemvRows>, cols: Int, vectors n: Int = 1, _ x: UnsafePointer<Float>,
        beta: Float = 0, scratch: UnsafeMutablePointer<Float>
    ) {
        guard hasBF16Gemv else {
            for p in parts {
                for v in 0..<n {
                    gemv(
                        transpose: false, rows: p.rows, cols: cols, p.a, lda: cols, x + v * cols, beta: beta,
                        p.y + v * p.rows, scratch: scratch)
                }
            }
            return
        }
        let ldx = (cols + 31) / 32 * 32  // each rounded vector starts 64-byte aligned
        let xb = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self)
        for v in 0..<n { ngpt_bf16_round(x + v * cols, xb + v * ldx, cols) }
        let total = parts.reduce(0) { $0 + $1.rows }
        Threads.parallelFor(total, workPerItem: 2 * cols * n, minWork: gemvParallelWork) { _, range in
            var first = 0  // the part's first row among all the parts' rows
            for p in parts {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, p.rows)
                if lo < hi { ngpt_gemv_bf16(hi - lo, cols, p.a + lo * cols, cols, n, xb, ldx, beta, p.y + lo, p.rows) }
                first += p.rows
            }
        }
    }

    /// Bytes of bf16 matrix from which `gemvBF16` splits its rows over the workers.
    public static let gemvParallelWork = 1 << 15

    /// `gemv` with A stored in bfloat16 (x and y stay Float): the decoder's reduced-precision path. `scratch` holds
    /// at least 2·max(rows, cols) + 32 floats (x or y split into even and odd elements).
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, _ a: UnsafePointer<UInt16>, lda: Int,
        _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        if rows == 0 || cols == 0 { return }
        let pairs = cols / 2, vectorPairs = pairs / 16 * 16
        if !transpose {
            let xe = scratch, xo = scratch + pairs
            for i in 0..<pairs { xe[i] = x[2 * i]; xo[i] = x[2 * i + 1] }
            // Four rows per pass share each load of x; products accumulate with fused multiply-adds.
            var r = 0
            while r + 4 <= rows {
                let a0 = a + r * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda
                var s0 = F32x16(), s1 = F32x16(), s2 = F32x16(), s3 = F32x16()
                var i = 0
                while i < vectorPairs {
                    let ev = load16(xe + i), ov = load16(xo + i)
                    let p0 = BFloat16.loadPairs(a0 + 2 * i), p1 = BFloat16.loadPairs(a1 + 2 * i)
                    let p2 = BFloat16.loadPairs(a2 + 2 * i), p3 = BFloat16.loadPairs(a3 + 2 * i)
                    s0 = s0.addingProduct(p0.even, ev).addingProduct(p0.odd, ov)
                    s1 = s1.addingProduct(p1.even, ev).addingProduct(p1.odd, ov)
                    s2 = s2.addingProduct(p2.even, ev).addingProduct(p2.odd, ov)
                    s3 = s3.addingProduct(p3.even, ev).addingProduct(p3.odd, ov)
                    i += 16
                }
                var t0 = s0.sum(), t1 = s1.sum(), t2 = s2.sum(), t3 = s3.sum()
                for c in (2 * vectorPairs)..<cols {
                    t0 += BFloat16.float(a0[c]) * x[c]; t1 += BFloat16.float(a1[c]) * x[c]
                    t2 += BFloat16.float(a2[c]) * x[c]; t3 += BFloat16.float(a3[c]) * x[c]
                }
                if beta == 0 {
                    y[r] = t0; y[r + 1] = t1; y[r + 2] = t2; y[r + 3] = t3
                } else {
                    y[r] = t0 + beta * y[r]; y[r + 1] = t1 + beta * y[r + 1]; y[r + 2] = t2 + beta * y[r + 2]
                    y[r + 3] = t3 + beta * y[r + 3]
                }
                r += 4
            }
            while r < rows {
                let ar = a + r * lda
                var acc = F32x16()
                var i = 0
                while i < vectorPairs {
                    let p = BFloat16.loadPairs(ar + 2 * i)
                    acc = acc.addingProduct(p.even, load16(xe + i)).addingProduct(p.odd, load16(xo + i))
                    i += 16
                }
                var t = acc.sum()
                for c in (2 * vectorPairs)..<cols { t += BFloat16.float(ar[c]) * x[c] }
                y[r] = beta == 0 ? t : t + beta * y[r]
                r += 1
            }
            return
        }
        // y[c] += Σ_r x[r]·A[r, c], accumulated in even/odd halves (and the < 32 leftover columns) in the scratch,
        // interleaved at the end.
        let ye = scratch, yo = scratch + pairs, tail = scratch + 2 * pairs
        let leftover = cols - 2 * vectorPairs
        ye.update(repeating: 0, count: pairs)
        yo.update(repeating: 0, count: pairs)
        tail.update(repeating: 0, count: leftover)
        for r in 0..<rows {
            let ar = a + r * lda, v = F32x16(repeating: x[r])
            var i = 0
            while i < vectorPairs {
                let (e, o) = BFloat16.loadPairs(ar + 2 * i)
                store16(load16(ye + i).addingProduct(v, e), ye + i)
                store16(load16(yo + i).addingProduct(v, o), yo + i)
                i += 16
            }
            for c in (2 * vectorPairs)..<cols { tail[c - 2 * vectorPairs] += x[r] * BFloat16.float(ar[c]) }
        }
        for i in 0..<vectorPairs {
            y[2 * i] = beta == 0 ? ye[i] : ye[i] + beta * y[2 * i]
            y[2 * i + 1] = beta == 0 ? yo[i] : yo[i] + beta * y[2 * i + 1]
        }
        for c in (2 * vectorPairs)..<cols {
            y[c] = beta == 0 ? tail[c - 2 * vectorPairs] : tail[c - 2 * vectorPairs] + beta * y[c]
        }
    }
}
