import ArgumentParser
import CBLAS
import CGEMM
import Kernels

/// `ngpt-bench kernels`: each kernel at the shapes of one training step of config S, with the floors the
/// project holds itself to.
struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time every kernel at config S shapes (tokens 4096 = 16×256, d 256, 4 heads, SwiGLU 683, vocab 4096)."
    )

    @OptionGroup var common: CommonOptions

    @Option(parsing: .unconditional, help: "Tokens per step (batch × context).") var tokens: Int = 4096
    @Option(parsing: .unconditional, help: "Context length (rows per sequence for attention and RoPE).") var context:
        Int = 256
    @Option(parsing: .unconditional, help: "Model width d.") var dim: Int = 256
    @Option(parsing: .unconditional, help: "Attention heads.") var heads: Int = 4
    @Option(parsing: .unconditional, help: "SwiGLU hidden width.") var mlpHidden: Int = 683
    @Option(parsing: .unconditional, help: "Vocabulary size.") var vocab: Int = 4096
    @Option(
        parsing: .unconditional,
        help: "Run only the kernels whose name contains this text (e.g. gemm, norm, attention).")
    var only: String?

    func validate() throws {
        for (name, v) in [
            ("tokens", tokens), ("context", context), ("dim", dim), ("heads", heads),
            ("mlp-hidden", mlpHidden), ("vocab", vocab),
        ] where v <= 0 {
            throw ValidationError("--\(name) must be positive, got \(v)")
        }
        guard tokens % context == 0 else { throw ValidationError("--tokens must be a multiple of --context") }
        guard dim % heads == 0, (dim / heads) % 2 == 0 else {
            throw ValidationError("--heads must divide --dim into an even head size (RoPE rotates pairs)")
        }
    }

    func run() throws {
        Threads.configure(threads: common.threads)
        print(Threads.startupLine)
        let reps = common.repetitions
        let n = tokens, d = dim, f = mlpHidden, v = vocab
        var table = Table(header: ["kernel", "shape", "median ms", "rate", "floor", "met"])
        /// One core's multiply-add peak (a probe on the calling thread, best of 5) times the thread budget.
        func measuredPeakGFLOPs(bf16: Bool) -> Double {
            let iterations = 2_000_000, flopsPerIteration = 24.0 * 16 * 2 * (bf16 ? 2 : 1)
            var best = Double.infinity
            for _ in 0..<5 {
                best = min(
                    best, medianMilliseconds(repetitions: 1) { _ = ngpt_gemm_peak_probe(iterations, bf16 ? 1 : 0) })
            }
            return Double(Threads.count) * Double(iterations) * flopsPerIteration / best / 1e6
        }
        func wanted(_ name: String) -> Bool { only.map { name.contains($0) } ?? true }
        func add(_ name: String, _ shape: String, _ ms: Double, rate: String, floor: String = "", met: Bool? = nil) {
            table.rows.append([name, shape, fmt(ms, 3), rate, floor, met.map { $0 ? "yes" : "NO" } ?? ""])
        }
        func gflops(_ flops: Double, _ ms: Double) -> String { fmt(flops / ms / 1e6, 1) + " GFLOP/s" }
        func gbps(_ bytes: Double, _ ms: Double) -> String { fmt(bytes / ms / 1e6, 1) + " GB/s" }

        // GEMM: OpenBLAS, ngpt's fp32 and bf16 kernels on the same operands, with the rate as a share of this CPU's
        // peak (one core's measured multiply-add rate times the thread budget).
        let peak = GEMM.hasAVX512 ? measuredPeakGFLOPs(bf16: false) : nil,
            peakBF16 = GEMM.hasBF16 ? measuredPeakGFLOPs(bf16: true) : nil
        if let peak {
            print(
                "peak (one core's measured multiply-add rate × \(Threads.count) cores): fp32 \(fmt(peak, 0)) GFLOP/s"
                    + (peakBF16.map { ", bf16 \(fmt($0, 0)) GFLOP/s" } ?? ""))
        }
        // The last field: whether a bf16 training step stores this product's A in bf16 (`GEMM.Operand`: SwiGLU's
        // output and its input gradients, the logit gradient), measured that way too.
        let gemmCases: [(String, Bool, Bool, Int, Int, Int, Bool)] = [
            ("X·Wᵀ  q/k/v", false, true, n, d, d, false),
            ("X·Wᵀ  SwiGLU up", false, true, n, f, d, false),
            ("X·W   SwiGLU down", false, false, n, d, f, true),
            ("dY·W  SwiGLU dX", false, false, n, d, f, true),
            ("dYᵀ·X SwiGLU dW", true, false, f, d, n, true),
            ("X·Wᵀ  logits", false, true, n, v, d, false),
            ("dY·W  logits dX", false, false, n, d, v, true),
            ("dYᵀ·X logits dW", true, false, v, d, n, true),
        ]
        var gemmTable = Table(header: [
            "gemm", "m×n×k", "OpenBLAS GFLOP/s", "ngpt fp32", "% peak", "ngpt bf16", "% bf16 peak",
            "A stored bf16", "%",
        ])
        for (name, ta, tb, m, nn, k, storedBF16) in gemmCases where wanted("gemm") {
            let a = Buffer(m * k, seed: 1), b = Buffer(k * nn, seed: 2), c = Buffer(m * nn, seed: 3)
            let lda = ta ? m : k, ldb = tb ? k : nn
            let flops = 2.0 * Double(m * nn * k)
            func native(_ p: GEMM.Precision) {
                GEMM.native(
                    transA: ta, transB: tb, m: m, n: nn, k: k, a.pointer, lda: lda, b.pointer, ldb: ldb, c.pointer,
                    ldc: nn, precision: p)
            }
            let blas = {
                cblas_sgemm(
                    CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(nn), Int32(k), 1, a.pointer, Int32(lda), b.pointer, Int32(ldb), 0, c.pointer,
                    Int32(nn))
            }
            var row = [name, "\(m)×\(nn)×\(k)"]
            if GEMM.hasAVX512 {
                // One variant at a time: OpenBLAS' threads keep spinning after its calls and would slow the next
                // kernel if the variants were interleaved.
                let times = ([blas, { native(.fp32) }] + (GEMM.hasBF16 ? [{ native(.bf16) }] : [])).map {
                    medianMilliseconds(repetitions: reps, $0)
                }
                let rates = times.map { flops / $0 / 1e6 }
                row += [fmt(rates[0], 1), fmt(rates[1], 1), fmt(100 * rates[1] / (peak ?? .nan), 0) + " %"]
                row +=
                    GEMM.hasBF16 ? [fmt(rates[2], 1), fmt(100 * rates[2] / (peakBF16 ?? .nan), 0) + " %"] : ["-", "-"]
                if GEMM.hasBF16 && storedBF16 {
                    // A's values rounded to bf16 and stored so, as the step's producer writes them
                    let stored = Buffer(m * k)
                    let halves = UnsafeMutableRawPointer(stored.pointer).assumingMemoryBound(to: UInt16.self)
                    BFloat16.convert(a.pointer, halves, count: m * k)
                    let product = GEMM.Product(
                        GEMM.Operand(stored.pointer, precision: .bf16), lda: lda, b.pointer, ldb: ldb, c.pointer,
                        ldc: nn, m: m, n: nn, k: k)
                    let t = medianMilliseconds(repetitions: reps) {
                        GEMM.withPrecision(.bf16) {
                            GEMM.group(transA: ta, transB: tb, shared: .b, [product])
                        }
                    }
                    row += [fmt(flops / t / 1e6, 1), fmt(100 * flops / t / 1e6 / (peakBF16 ?? .nan), 0) + " %"]
                } else {
                    row += ["-", "-"]
                }
            } else {
                let t = medianMilliseconds(repetitions: reps, blas)
                row += [fmt(flops / t / 1e6, 1), "-", "-", "-", "-", "-", "-"]
            }
            gemmTable.rows.append(row)
        }
        if wanted("gemm") { print(gemmTable.render()) }

        var ms: Double = 0
        // Matrix–vector products of single-token decoding (weights streamed once per call).
        for (name, rows, cols, transpose) in [
            ("gemv W·x  logits", v, d, false), ("gemv W·x  SwiGLU up", f, d, false),
            ("gemv Wᵀ·x SwiGLU down", f, d, true),
        ] where wanted("gemv") {
            let w = Buffer(rows * cols, seed: 30), x = Buffer(transpose ? rows : cols, seed: 31),
                y = Buffer(transpose ? cols : rows)
            let t = medianMilliseconds(repetitions: reps * 10) {
                GEMM.gemv(transpose: transpose, rows: rows, cols: cols, w.pointer, lda: cols, x.pointer, y.pointer)
            }
            add(name, "\(rows)×\(cols)", t, rate: gbps(Double(rows * cols * 4), t))
            // bf16 weights as the decoder keeps them: every product W·x (W_down stored transposed), through the
            // vdpbf16ps kernel (GEMM.gemvBF16), one stream and a batch of eight sharing each load of W.
            let (outputs, inputs) = transpose ? (cols, rows) : (rows, cols)
            let wb = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * cols)
            let xs = Buffer(8 * inputs, seed: 32), ys = Buffer(8 * outputs), scratch = Buffer(8 * (inputs / 2 + 32))
            defer { wb.deallocate() }
            BFloat16.convert(w.pointer, wb, count: rows * cols)  // read as [outputs, inputs]
            for batch in [1, 8] {
                let tb = medianMilliseconds(repetitions: reps * 10) {
                    GEMM.gemvBF16(
                        rows: outputs, cols: inputs, wb, vectors: batch, xs.pointer, ys.pointer,
                        scratch: scratch.pointer)
                }
                add(
                    (transpose ? "gemv W·x  SwiGLU down, stored Wᵀ" : name) + " (bf16\(batch > 1 ? " ×\(batch)" : ""))",
                    "\(outputs)×\(inputs)", tb, rate: gbps(Double(rows * cols * 2), tb))
            }
        }
        if wanted("gemv") {
            // How fast weights stream once they no longer stay in cache between uses: the single-token decoder reads
            // every weight once per token (16.4 MB at config S).
            for total in [4, 8, 16, 32] {
                let big = Buffer(total * 512 * 512, seed: 40)
                let x = Buffer(512, seed: 2), y = Buffer(512)
                let t = medianMilliseconds(repetitions: reps) {
                    for m in 0..<total {
                        GEMM.gemv(
                            transpose: false, rows: 512, cols: 512, big.pointer + m * 512 * 512, lda: 512, x.pointer,
                            y.pointer)
                    }
                }
                add("gemv sweep over \(total) MB", "\(total)×512×512", t, rate: gbps(Double(total << 20), t))
            }
        }
        let rowBytes = Double(n * d * 4)
        if wanted("norm") {
            // Row normalisations over [tokens, d].
            let x = Buffer(n * d, seed: 4), y = Buffer(n * d, seed: 5), dy = Buffer(n * d, seed: 6),
                dx = Buffer(n * d, seed: 7)
            let inv = Buffer(n), gain = Buffer(d, seed: 8), dgain = Buffer(d)
            ms = medianMilliseconds(repetitions: reps) {
                RowNorm.l2Forward(x.pointer, y.pointer, invNorm: inv.pointer, rows: n, cols: d)
            }
            add(
                "l2 normalise fwd", "\(n)×\(d)", ms, rate: gbps(2 * rowBytes, ms), floor: "≥40 GB/s",
                met: 2 * rowBytes / ms / 1e6 >= 40)
            ms = medianMilliseconds(repetitions: reps) {
                RowNorm.l2Backward(dy.pointer, y: y.pointer, invNorm: inv.pointer, dx.pointer, rows: n, cols: d)
            }
            add(
                "l2 normalise bwd", "\(n)×\(d)", ms, rate: gbps(3 * rowBytes, ms), floor: "≥40 GB/s",
                met: 3 * rowBytes / ms / 1e6 >= 40)
            ms = medianMilliseconds(repetitions: reps) {
                RowNorm.rmsForward(x.pointer, gain: gain.pointer, y.pointer, rstd: inv.pointer, rows: n, cols: d)
            }
            add(
                "rmsnorm fwd", "\(n)×\(d)", ms, rate: gbps(2 * rowBytes, ms), floor: "≥40 GB/s",
                met: 2 * rowBytes / ms / 1e6 >= 40)
            ms = medianMilliseconds(repetitions: reps) {
                RowNorm.rmsBackward(
                    dy.pointer, x: x.pointer, gain: gain.pointer, rstd: inv.pointer, dx.pointer,
                    dgain: dgain.pointer, rows: n, cols: d)
            }
            add(
                "rmsnorm bwd", "\(n)×\(d)", ms, rate: gbps(3 * rowBytes, ms), floor: "≥40 GB/s",
                met: 3 * rowBytes / ms / 1e6 >= 40)
            let emb = Buffer(v * d, seed: 9)
            ms = medianMilliseconds(repetitions: reps) { RowNorm.renormalizeRows(emb.pointer, rows: v, cols: d) }
            add("renormalise rows", "\(v)×\(d)", ms, rate: gbps(2 * Double(v * d * 4), ms))

        }
        if wanted("attention") {
            // Attention over (batch, head) with the nGPT temperature √d_k.
            let shape = AttentionShape(batch: n / context, context: context, heads: heads, headDim: d / heads)
            let q = Buffer(n * d, seed: 10), k = Buffer(n * d, seed: 11), vv = Buffer(n * d, seed: 12)
            let att = Buffer(n * d), probs = Buffer(shape.probsCount), scratch = Buffer(shape.backwardScratchCount)
            let dq = Buffer(n * d), dk = Buffer(n * d), dv = Buffer(n * d), dy = Buffer(n * d, seed: 6)
            let scale = Float(d / heads).squareRoot()
            // QKᵀ and PV, full square
            let attFlops = 4.0 * Double(shape.batch * heads * context * context * (d / heads))
            for precision in GEMM.hasBF16 && GEMM.path == .native ? [GEMM.Precision.fp32, .bf16] : [.fp32] {
                let label = precision == .bf16 ? " (bf16)" : ""
                ms = GEMM.withPrecision(precision) {
                    medianMilliseconds(repetitions: reps) {
                        Attention.forward(
                            q: q.pointer, k: k.pointer, v: vv.pointer, ld: d, y: att.pointer, ldy: d,
                            probs: probs.pointer, shape: shape, scale: scale)
                    }
                }
                add(
                    "attention fwd" + label, "B\(shape.batch) H\(heads) T\(context) dk\(d / heads)", ms,
                    rate: gflops(attFlops, ms), floor: "full-square FLOPs")
                ms = GEMM.withPrecision(precision) {
                    medianMilliseconds(repetitions: reps) {
                        Attention.backward(
                            dy: dy.pointer, ldy: d, q: q.pointer, k: k.pointer, v: vv.pointer, ld: d,
                            probs: probs.pointer, dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, ldg: d,
                            scratch: scratch.pointer, shape: shape, scale: scale)
                    }
                }
                add(
                    "attention bwd" + label, "B\(shape.batch) H\(heads) T\(context) dk\(d / heads)", ms,
                    rate: gflops(2 * attFlops, ms))
            }
        }
        if wanted("attention") {
            // One query against a full cache of `context` positions (single-token decoding), every head.
            let dk = d / heads
            let q = Buffer(d, seed: 13), kc = Buffer(context * d, seed: 14), vc = Buffer(context * d, seed: 15)
            let scores = Buffer(heads * context), y = Buffer(d)
            ms = medianMilliseconds(repetitions: reps * 20) {
                Attention.decode(
                    q: q.pointer, kCache: kc.pointer, vCache: vc.pointer, ld: d, count: context, heads: heads,
                    headDim: dk, scale: Float(dk).squareRoot(), scores: scores.pointer, y: y.pointer)
            }
            add("attention decode", "H\(heads) n\(context) dk\(dk)", ms, rate: gbps(Double(2 * context * d * 4), ms))
        }
        if wanted("rope") {
            let q = Buffer(n * d, seed: 10)
            // RoPE on q (in place; alternating forward and inverse keeps values bounded).
            let table2 = RoPETable(context: context, headDim: d / heads)
            ms = medianMilliseconds(repetitions: reps) {
                RoPE.rotate(q.pointer, ld: d, rows: n, heads: heads, context: context, table: table2)
            }
            add("rope", "\(n)×\(d)", ms, rate: gbps(2 * rowBytes, ms))

        }
        if wanted("swiglu") {
            // SwiGLU over [tokens, F].
            let u = Buffer(n * f, seed: 13), g = Buffer(n * f, seed: 14), o = Buffer(n * f),
                dout = Buffer(n * f, seed: 15)
            let du = Buffer(n * f), dg = Buffer(n * f)
            let fBytes = Double(n * f * 4)
            ms = medianMilliseconds(repetitions: reps) {
                SwiGLU.forward(u: u.pointer, gate: g.pointer, o.pointer, count: n * f)
            }
            add("swiglu fwd", "\(n)×\(f)", ms, rate: gbps(3 * fBytes, ms))
            ms = medianMilliseconds(repetitions: reps) {
                SwiGLU.backward(
                    dout.pointer, u: u.pointer, gate: g.pointer, du: du.pointer, dgate: dg.pointer, count: n * f)
            }
            add("swiglu bwd", "\(n)×\(f)", ms, rate: gbps(5 * fBytes, ms))

        }
        if wanted("xent") {
            // Fused softmax + cross-entropy, loss and gradient, over [tokens, vocab].
            let logits = Buffer(n * v, seed: 16), dlogits = Buffer(n * v)
            let targets = (0..<n).map { Int32(($0 * 7919) % v) }
            ms = targets.withUnsafeBufferPointer { t in
                medianMilliseconds(repetitions: reps) {
                    _ = CrossEntropy.forwardBackward(
                        logits: logits.pointer, targets: t.baseAddress.unsafelyUnwrapped, rows: n,
                        vocab: v, dlogits: dlogits.pointer, gradScale: 1 / Float(n))
                }
            }
            add(
                "softmax+xent fwd+bwd", "\(n)×\(v)", ms, rate: gbps(2 * Double(n * v * 4), ms), floor: "≤15 ms",
                met: ms <= 15)

        }
        if wanted("embedding") {
            let emb = Buffer(v * d, seed: 9)
            // Embedding gather and scatter-add.
            let ids = (0..<n).map { Int32(($0 * 31) % v) }
            let gathered = Buffer(n * d), dEmb = Buffer(v * d)
            ids.withUnsafeBufferPointer { idp in
                let ip = idp.baseAddress.unsafelyUnwrapped
                ms = medianMilliseconds(repetitions: reps) {
                    Embedding.forward(table: emb.pointer, ids: ip, count: n, dim: d, vocab: v, gathered.pointer)
                }
                add("embedding gather", "\(n)×\(d)", ms, rate: gbps(2 * rowBytes, ms))
                ms = medianMilliseconds(repetitions: reps) {
                    Embedding.backward(gathered.pointer, ids: ip, count: n, dim: d, vocab: v, dtable: dEmb.pointer)
                }
                add("embedding scatter-add", "\(n)×\(d)", ms, rate: gbps(3 * rowBytes, ms))
            }

        }
        if wanted("adamw") || wanted("grad norm") {
            // AdamW over the parameter count of config S's nGPT (2·V·d + L·(4d² + 3·F·d)).
            let params = 2 * v * d + 4 * (4 * d * d + 3 * f * d)
            let p = Buffer(params, seed: 17), grad = Buffer(params, seed: 18), m1 = Buffer(params), m2 = Buffer(params)
            m1.pointer.update(repeating: 0, count: params)  // fresh moments, as at step 1 (v must be ≥ 0)
            m2.pointer.update(repeating: 0, count: params)
            var step = 0
            ms = medianMilliseconds(repetitions: reps) {
                step += 1
                Optimizer.adamW(
                    param: p.pointer, grad: grad.pointer, m: m1.pointer, v: m2.pointer, count: params, lr: 1e-3,
                    weightDecay: 0.1, step: step)
            }
            add("adamw", "\(params) params", ms, rate: gbps(7 * Double(params * 4), ms))
            ms = medianMilliseconds(repetitions: reps) {
                _ = Optimizer.globalNorm([(UnsafePointer(grad.pointer), params)])
            }
            add("grad norm", "\(params) params", ms, rate: gbps(Double(params * 4), ms))

        }
        print(table.render())
        let misses = table.rows.filter { $0[5] == "NO" }.map { $0[0] }
        print(misses.isEmpty ? "all floors met" : "floors missed: " + misses.joined(separator: ", "))
    }
}
