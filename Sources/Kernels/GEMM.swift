import CBLAS
import CGEMM
import Common
import Glibc

/// The one seam every matrix product in ngpt goes through. On CPUs with AVX-512 it runs ngpt's own packed GEMM
/// (CGEMM: fp32, or bf16 inputs with fp32 accumulation) split over the thread budget's workers; elsewhere, or with
/// `NGPT_GEMM=openblas`, OpenBLAS' sgemm. All matrices are row-major with explicit leading dimensions, so head
/// slices of a [tokens, d] activation can be used in place.
public enum GEMM {
    public enum Path: String, Sendable {
        /// ngpt's AVX-512 kernels.
        case native
        /// OpenBLAS' cblas_sgemm (fp32 only): the fallback, and the reference in tests.
        case openblas
    }

    /// What the products' inputs are rounded to. bf16: each input rounded to bfloat16 (to nearest even) as it is
    /// packed, products accumulated in fp32; what callers hold (weights, activations, gradients) stays fp32, except
    /// the activations only products read, which their producers store already rounded (`Operand`).
    public enum Precision: String, Sendable, CaseIterable {
        case fp32, bf16
    }

    /// The kernels this CPU and OS can run (CGEMM's feature bits).
    public static let features = Int(ngpt_gemm_features())
    public static var hasAVX512: Bool { features & Int(NGPT_GEMM_AVX512F) != 0 }
    public static var hasBF16: Bool { features & Int(NGPT_GEMM_AVX512BF16) != 0 }

    /// Which implementation runs, for the whole program: native where the CPU has AVX-512, unless
    /// `NGPT_GEMM=openblas` (never native where it cannot run; `check` reports an impossible request).
    public static let path: Path = hasAVX512 && requested != "openblas" ? .native : .openblas

    /// What training uses unless told otherwise: bf16 where ngpt's bf16 kernel runs (it trains ~1.8× faster, and
    /// its loss cost at config S is within the seed spread: README), else fp32.
    public static var preferredPrecision: Precision { path == .native && hasBF16 ? .bf16 : .fp32 }

    /// `NGPT_GEMM`, when set.
    static var requested: String? { getenv("NGPT_GEMM").map { String(cString: $0) } }

    /// The calling thread's input precision (see `withPrecision`; fp32 unless set).
    public static var precision: Precision { ngpt_gemm_thread_precision() != 0 ? .bf16 : .fp32 }

    /// Checks that products at `precision` can run here, and that `NGPT_GEMM` is valid: a request the CPU cannot
    /// meet is one clear error, never a silent fallback. bf16 needs AVX512_BF16 (the native path).
    public static func check(_ precision: Precision) throws {
        if let env = requested, env != "native", env != "openblas" {
            throw UserError("NGPT_GEMM must be native or openblas, got \(env)")
        }
        if requested == "native" && !hasAVX512 {
            throw UserError(
                "NGPT_GEMM=native needs AVX-512, which this CPU (\(cpuModel)) lacks; unset it to use OpenBLAS")
        }
        if precision == .bf16 && (path != .native || !hasBF16) {
            throw UserError(
                path == .native || !hasAVX512
                    ? "--precision bf16 needs AVX512_BF16, which this CPU (\(cpuModel)) lacks; use --precision fp32"
                    : "--precision bf16 needs ngpt's own GEMM, but NGPT_GEMM=openblas is set; unset it or use "
                        + "--precision fp32"
            )
        }
    }

    /// Runs `body` with this thread's products at `precision` (the pool's shares inherit it), then restores the
    /// previous setting: a setting per thread, so concurrent runs (and tests) each keep their own.
    public static func withPrecision<R>(_ precision: Precision, _ body: () throws -> R) rethrows -> R {
        let previous = ngpt_gemm_thread_precision()
        ngpt_gemm_set_thread_precision(precision == .bf16 ? 1 : 0)
        defer { ngpt_gemm_set_thread_precision(previous) }
        return try body()
    }

    /// "native AVX-512 (fp32 and bf16 kernels), bf16 inputs" or "OpenBLAS core Haswell, fp32": for start-up lines
    /// (the calling thread's precision).
    public static var description: String {
        switch path {
        case .native:
            return "native AVX-512 (\(hasBF16 ? "fp32 and bf16 kernels" : "fp32 kernel")), \(precision.rawValue) inputs"
        case .openblas: return "OpenBLAS core \(Threads.blasCoreName), fp32"
        }
    }

    /// The CPU's model name (/proc/cpuinfo).
    public static let cpuModel: String = {
        guard let f = fopen("/proc/cpuinfo", "r") else { return "unknown CPU" }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>?
        var size = 0
        defer { free(line) }
        while getline(&line, &size, f) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
                return text[text.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return "unknown CPU"
    }()

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, where op(A) is m×k (A stored k×m when `transA`)
    /// and op(B) is k×n (B stored n×k when `transB`).
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int,
        _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        guard path == .native else {
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        native(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c,
            ldc: ldc,
            precision: precision)
    }

    /// ngpt's kernel at a given precision, rows of C split over the budget's workers in 14-row tiles. Every
    /// element is computed the same way whatever the split, so results do not depend on the thread count.
    public static func native(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        _ c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision
    ) {
        var part = Product(a, lda: lda, b, ldb: ldb, c, ldc: ldc, m: m, n: n, k: k)
        withUnsafePointer(to: &part) {
            native(
                transA: transA, transB: transB, shared: .b, UnsafeBufferPointer(start: $0, count: 1), alpha: alpha,
                beta: beta, precision: precision)
        }
    }

    /// An activation that only matrix products read, kept in the form they consume it: bfloat16 where the products
    /// run on ngpt's bf16 kernel (its producer rounds each value exactly as packing would round the Float, so every
    /// product sees the same bits, from half the bytes to write and to pack), else Float. Its memory has room for
    /// the Float form either way. (SwiGLU's output and its input gradients, the output head's logit gradient:
    /// design §5.)
    public struct Operand {
        public let address: UnsafeMutableRawPointer
        /// Whether the values are bfloat16 (UInt16 each) rather than Float.
        public let isBF16: Bool

        /// The activation at `floats`, for products at `precision`.
        public init(_ floats: UnsafeMutablePointer<Float>, precision: Precision) {
            address = UnsafeMutableRawPointer(floats)
            isBF16 = precision == .bf16 && path == .native
        }

        /// A Float activation.
        public init(_ floats: UnsafeMutablePointer<Float>) { self.init(floats, precision: .fp32) }

        /// The values, when they are Floats.
        public var floats: UnsafeMutablePointer<Float> {
            precondition(!isBF16, "a bf16 operand read as Float")
            return address.assumingMemoryBound(to: Float.self)
        }

        /// Bytes per value.
        public var stride: Int { isBF16 ? 2 : 4 }
    }

    /// One product of a group (`group`): C = op(A)[m×k] · op(B)[k×n], A stored k×m when transA and B stored n×k
    /// when transB; row-major with leading dimensions (counted in values, Float or bf16 for A).
    public struct Product {
        public var a: Operand, lda: Int
        public var b: UnsafePointer<Float>, ldb: Int
        public var c: UnsafeMutablePointer<Float>, ldc: Int
        public var m: Int, n: Int, k: Int

        public init(
            _ a: Operand, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
            m: Int, n: Int, k: Int
        ) {
            self.a = a; self.lda = lda; self.b = b; self.ldb = ldb; self.c = c; self.ldc = ldc
            self.m = m; self.n = n; self.k = k
        }

        public init(
            _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>,
            ldc: Int, m: Int, n: Int, k: Int
        ) {
            self.init(Operand(UnsafeMutablePointer(mutating: a)), lda: lda, b, ldb: ldb, c, ldc: ldc, m: m, n: n, k: k)
        }
    }

    /// What the products of a group have in common, packed once for all of them (CGEMM's ngpt_gemm_group).
    public enum Shared: Sendable {
        /// One input, several weights: C_g = op(A)·op(B_g) (q, k and v; SwiGLU's up and gate). Same m and k.
        case a
        /// Several inputs, one other operand: C_g = op(A_g)·op(B) (weight gradients of products with one input).
        /// Same n and k.
        case b
        /// One output: C = Σ_g op(A_g)·op(B_g), in order (∂L/∂input of products with one input). Same m and n.
        case sum

        var code: Int32 {
            switch self {
            case .a: Int32(NGPT_GEMM_SHARE_A)
            case .b: Int32(NGPT_GEMM_SHARE_B)
            case .sum: Int32(NGPT_GEMM_SUM)
            }
        }
    }

    /// Several products that share an operand: each C_g = alpha · op(A_g) · op(B_g) + beta · C_g, or for `.sum`
    /// C = alpha · Σ_g op(A_g) · op(B_g) + beta · C. The bits of running them one after another through `gemm`, with
    /// the shared operand packed once (and for a sum, C passed over once).
    public static func group(
        transA: Bool, transB: Bool, shared: Shared, _ products: [Product], alpha: Float = 1, beta: Float = 0
    ) {
        guard path == .native else {  // OpenBLAS: one product after another
            for (g, p) in products.enumerated() {
                gemm(
                    transA: transA, transB: transB, m: p.m, n: p.n, k: p.k, alpha: alpha, p.a.floats, lda: p.lda, p.b,
                    ldb: p.ldb, beta: shared == .sum && g > 0 ? 1 : beta, p.c, ldc: p.ldc)
            }
            return
        }
        products.withUnsafeBufferPointer {
            native(transA: transA, transB: transB, shared: shared, $0, alpha: alpha, beta: beta, precision: precision)
        }
    }

    /// A group on ngpt's kernel, split over the budget's workers in 14-row tiles of C (for `.b`, the tiles of all
    /// the products, one product after another).
    static func native(
        transA: Bool, transB: Bool, shared: Shared, _ products: UnsafeBufferPointer<Product>, alpha: Float,
        beta: Float, precision: Precision
    ) {
        let tile = 14
        let bf16: Int32 = precision == .bf16 ? 1 : 0
        let count = products.count
        func tiles(_ p: Product) -> Int { (p.m + tile - 1) / tile }
        var tileCount = 0, m = 0, n = 0, k = 0, work = 0
        for p in products {
            precondition(!p.a.isBF16 || bf16 == 1, "a bf16 operand needs bf16 products")
            tileCount = shared == .b ? tileCount + tiles(p) : tiles(p)
            m = max(m, p.m); n = max(n, p.n); k = max(k, p.k)
            work += p.n * p.k * tile / 2
        }
        // Rows r0..<r1 of each product (its own rows for `.b`, whose tiles follow one another), over k0..<k0+depth
        // (the C passed in), as the parts of one call.
        func run(
            tiles range: Range<Int>, k0: Int, depth: Int?, into out: ((Int) -> (UnsafeMutablePointer<Float>, Int))?,
            beta: Float
        ) {
            withUnsafeTemporaryAllocation(of: ngpt_gemm_part.self, capacity: count) { parts in
                var used = 0, first = 0
                for (g, p) in products.enumerated() {
                    var lo = range.lowerBound, hi = range.upperBound
                    if shared == .b {  // this product's tiles are first..<first + tiles(p)
                        lo = max(lo - first, 0)
                        hi = min(hi - first, tiles(p))
                        first += tiles(p)
                    }
                    let r0 = lo * tile, r1 = min(p.m, hi * tile)
                    guard r1 > r0 else { continue }
                    let a = p.a.address + (transA ? k0 * p.lda + r0 : r0 * p.lda + k0) * p.a.stride
                    let b = transB ? p.b + k0 : p.b + k0 * p.ldb
                    let (c, ldc) = out?(g) ?? (p.c, p.ldc)
                    parts[used] = ngpt_gemm_part(
                        A: a, lda: p.lda, B: b, ldb: p.ldb, C: c + r0 * ldc, ldc: ldc, m: r1 - r0, n: p.n,
                        k: depth ?? p.k, a_bf16: p.a.isBF16 ? 1 : 0)
                    used += 1
                }
                guard used > 0 else { return }
                ngpt_gemm_group(
                    transA ? 1 : 0, transB ? 1 : 0, shared.code, parts.baseAddress, Int32(used), alpha, beta, bf16)
            }
        }
        guard shared == .b && k >= 1024 && k >= 4 * max(m, n) else {
            Threads.parallelFor(tileCount, workPerItem: work) { _, range in
                run(tiles: range, k0: 0, depth: nil, into: nil, beta: beta)
            }
            return
        }
        // Weight gradients (k = tokens, far deeper than m and n): the two halves of k run side by side, the second
        // into a scratch C that is added afterwards. Each worker then packs half of each operand, where a split of
        // the rows packs all of op(B) on every worker. The halves are fixed, so the bits do not depend on the
        // thread count either: C = (beta·C + first half) + second half.
        let firstDepth = k / 2
        // the second halves' C, product after product: product g's at the sum of the earlier ones' m·n
        func offset(_ g: Int) -> Int { products[..<g].reduce(0) { $0 + $1.m * $1.n } }
        nonisolated(unsafe) let second = ngpt_gemm_scratch(offset(count))!
        Threads.parallelFor(2 * tileCount, workPerItem: work / 2) { _, range in
            run(tiles: range.clamped(to: 0..<tileCount), k0: 0, depth: firstDepth, into: nil, beta: beta)
            let upper = range.clamped(to: tileCount..<2 * tileCount)
            run(
                tiles: upper.lowerBound - tileCount..<upper.upperBound - tileCount, k0: firstDepth,
                depth: k - firstDepth, into: { (second + offset($0), products[$0].n) }, beta: 0)
        }
        for (g, p) in products.enumerated() {
            nonisolated(unsafe) let c = p.c, s = second + offset(g)
            let ldc = p.ldc, n = p.n
            Threads.parallelFor(p.m, workPerItem: 12 * n) { _, rows in
                for r in rows {
                    let cr = c + r * ldc, sr = s + r * n
                    var j = 0
                    while j + 16 <= n { store16(load16(cr + j) + load16(sr + j), cr + j); j += 16 }
                    while j < n { cr[j] += sr[j]; j += 1 }
                }
            }
        }
    }

    /// Y[M,N] = X[M,K] · W[K,N]  (+ beta·Y), X as stored for products (`Operand`; rows `lda` values apart, K
    /// unless given).
    public static func xw(
        _ x: Operand, lda: Int? = nil, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, m: Int, k: Int,
        n: Int, beta: Float = 0
    ) {
        let product = Product(x, lda: lda ?? k, w, ldb: n, y, ldc: n, m: m, n: n, k: k)
        group(transA: false, transB: false, shared: .b, [product], beta: beta)
    }

    /// G[K,N] = X[M,K]ᵀ · Y[M,N]  (+ beta·G), X as stored for products (`Operand`; rows `lda` values apart, K
    /// unless given).
    public static func xTy(
        _ x: Operand, lda: Int? = nil, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, m: Int, k: Int,
        n: Int, beta: Float = 0
    ) {
        let product = Product(x, lda: lda ?? k, y, ldb: n, g, ldc: n, m: k, n: n, k: m)
        group(transA: true, transB: false, shared: .b, [product], beta: beta)
    }

    /// Y[M,N] = X[M,K] · W[K,N]  (+ beta·Y). Used for y = x·W layers (W_o, W_oMLP) and P·V.
    @inline(__always)
    public static func xw(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, beta: Float = 0
    ) {
        gemm(transA: false, transB: false, m: m, n: n, k: k, x, lda: k, w, ldb: n, beta: beta, y, ldc: n)
    }

    /// Y[M,N] = X[M,K] · W[N,K]ᵀ  (+ beta·Y), Y's rows `ldc` apart (N unless given). Used for y = x·Wᵀ layers
    /// (q, k, v, u, ν, logits).
    @inline(__always)
    public static func xwT(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, beta: Float = 0, ldc: Int? = nil
    ) {
        gemm(transA: false, transB: true, m: m, n: n, k: k, x, lda: k, w, ldb: k, beta: beta, y, ldc: ldc ?? n)
    }

    /// G[K,N] = X[M,K]ᵀ · Y[M,N]  (+ beta·G). Weight gradients: with beta 1 it accumulates.
    @inline(__always)
    public static func xTy(
        _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, beta: Float = 0
    ) {
        gemm(transA: true, transB: false, m: k, n: n, k: m, x, lda: k, y, ldb: n, beta: beta, g, ldc: n)
    }

    /// Y_g[M,N_g] = X[M,K] · W_g[N_g,K]ᵀ for weights that share their input (q, k and v; SwiGLU's up and gate):
    /// X is packed once for all of them. Each Y_g's rows are `ldc` apart (N_g unless given). The bits of one `xwT`
    /// per weight. (The operands in these tuples are typed mutable only because Swift converts pointers in
    /// arguments but not inside tuples; they are only read.)
    public static func xwT(
        _ x: UnsafePointer<Float>, m: Int, k: Int,
        _ outputs: [(w: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)], ldc: Int? = nil
    ) {
        group(
            transA: false, transB: true, shared: .a,
            outputs.map { Product(x, lda: k, $0.w, ldb: k, $0.y, ldc: ldc ?? $0.n, m: m, n: $0.n, k: k) })
    }

    /// G_g[K_g,N] = X_g[M,K_g]ᵀ · Y[M,N] (+ beta·G_g): the weight gradients of products that share their input Y,
    /// Y packed once for all of them (each X_g as stored for products, rows `lda` values apart: K_g unless given).
    /// The bits of one `xTy` per gradient.
    public static func xTy(
        _ terms: [(x: Operand, g: UnsafeMutablePointer<Float>, k: Int)], _ y: UnsafePointer<Float>, m: Int, n: Int,
        beta: Float = 0, lda: Int? = nil
    ) {
        group(
            transA: true, transB: false, shared: .b,
            terms.map { Product($0.x, lda: lda ?? $0.k, y, ldb: n, $0.g, ldc: n, m: $0.k, n: n, k: m) }, beta: beta)
    }

    /// Y[M,N] = Σ_g X_g[M,K_g] · W_g[K_g,N] (+ beta·Y), added in order: ∂L/∂input of products that share their
    /// input, with one pass over Y (each X_g as stored for products, rows `lda` values apart: K_g unless given).
    /// The bits of one `xw` per term (the first with beta, the others adding).
    public static func xw(
        _ terms: [(x: Operand, w: UnsafeMutablePointer<Float>, k: Int)], _ y: UnsafeMutablePointer<Float>, m: Int,
        n: Int, beta: Float = 0, lda: Int? = nil
    ) {
        group(
            transA: false, transB: false, shared: .sum,
            terms.map { Product($0.x, lda: lda ?? $0.k, $0.w, ldb: n, y, ldc: n, m: m, n: n, k: $0.k) }, beta: beta)
    }

    /// y = alpha · op(A) · x + beta · y, with A stored [rows, cols] (lda) and op(A) = A (y has `rows` entries, x
    /// `cols`) or Aᵀ (y has `cols`, x `rows`). The single-token (KV-cache) path's matrix–vector products.
    ///
    /// Both cases are computed here rather than by BLAS: with OpenBLAS 0.3.21's sgemv, decoding config S ran at
    /// ≈500 tokens/s (its kernels ~80 % of the time); these loops give ≈1,100–1,300 (see `ngpt-bench sample`).
    /// op(A) = A is a row dot product per output, op(A) = Aᵀ a sum of scaled rows (y += x[r]·A[r, :]).
    @inline(__always)
    public static func gemv(
        transpose: Bool, rows: Int, cols: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
        _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>
    ) {
        if rows == 0 || cols == 0 { return }
        if !transpose {
            // On the calling thread: splitting rows over two workers was measured slower here (decoding is bound by
            // streaming the weights from memory, which a second core did not speed up, and each fork costs ~10 µs).
            gemvRows(a, lda: lda, x, cols: cols, alpha: alpha, beta: beta, y, from: 0, to: rows)
            return
        }
        if beta == 0 { y.update(repeating: 0, count: cols) } else if beta != 1 { Kernels.scale(y, beta, y, cols) }
        var r = 0
        // Two rows per pass halve the loads and stores of y.
        while r + 2 <= rows {
            let x0 = F32x16(repeating: alpha * x[r]), x1 = F32x16(repeating: alpha * x[r + 1])
            let a0 = a + r * lda, a1 = a0 + lda
            var c = 0
            while c + 16 <= cols { store16(load16(y + c) + x0 * load16(a0 + c) + x1 * load16(a1 + c), y + c); c += 16 }
            while c < cols { y[c] += alpha * (x[r] * a0[c] + x[r + 1] * a1[c]); c += 1 }
            r += 2
        }
        if r < rows {
            let xr = alpha * x[r], a0 = a + r * lda
            let v = F32x16(repeating: xr)
            var c = 0
            while c + 16 <= cols { store16(load16(y + c) + v * load16(a0 + c), y + c); c += 16 }
            while c < cols { y[c] += xr * a0[c]; c += 1 }
        }
    }

    /// y[r] = alpha·⟨A[r, :], x⟩ + beta·y[r] for r in from..<to. One row at a time: measured faster here than four
    /// interleaved rows (one sequential stream suits the prefetchers; 21 vs 9 GB/s once the matrices leave the cache).
    @inline(__always)
    static func gemvRows(
        _ a: UnsafePointer<Float>, lda: Int, _ x: UnsafePointer<Float>, cols: Int, alpha: Float, beta: Float,
        _ y: UnsafeMutablePointer<Float>, from: Int, to rows: Int
    ) {
        for r in from..<rows {
            let t = alpha * dot(a + r * lda, x, cols)
            y[r] = beta == 0 ? t : t + beta * y[r]
        }
    }
}
