import CBLAS
import CGEMM
import CThreadPool

/// The program's one threading policy: a single budget of cores, served by one pool of worker threads
/// (CThreadPool: persistent pthreads that spin ~2 ms for the next job, then sleep).
///
/// - ngpt's own GEMM splits its rows over the pool; with the OpenBLAS fallback, OpenBLAS owns all `count` cores
///   during a product (its thread count is kept equal to the budget).
/// - Our own row kernels split rows over the same cores with `parallelFor` once the work is big enough to pay
///   for a fork (about a microsecond with the pool's workers spinning). Work is counted in "byte-equivalents":
///   bytes touched, times `computeHeavy` for kernels whose time goes into arithmetic rather than memory.
///   Measured here (ngpt-bench kernels, 2 vCPUs): the L2 normalisation of a [4096, 256] activation takes
///   0.108 ms on one thread and 0.053 ms split over two, RMSNorm backward 0.205 → 0.103 ms. (With the
///   Dispatch-based fork this replaced, such splits were slower than one thread, and the bar was 16 MB.)
/// - Batches of small GEMMs (attention per head) run under `parallelForSerialBLAS`: the budget's workers each
///   call single-threaded BLAS, so threads never exceed the budget (no BLAS threads inside Dispatch workers).
public enum Threads {
    /// Cores on this machine; the upper bound for the budget and for per-worker scratch sizing.
    public static let maxWorkers: Int = max(1, Int(openblas_get_num_procs()))

    nonisolated(unsafe) private static var budget: Int = maxWorkers
    /// Inside a share of a pool job (nested calls run serially). Per thread.
    private static var insideParallelRegion: Bool { ngpt_pool_in_job() != 0 }

    /// Work (byte-equivalents) below which a kernel stays on the calling thread.
    public static let minParallelWork = 1 << 20  // 1 MB: a [1024, 256] activation's single pass
    /// Work multiplier for kernels bound by arithmetic (exp, division, scalar rotation) rather than memory.
    public static let computeHeavy = 8

    /// The current budget of cores.
    public static var count: Int { budget }

    /// Sets the budget (nil or 0 means every core) and hands it to OpenBLAS. Call once at start-up.
    /// A request above the cores is capped to them (the start-up line says so): more threads than cores only
    /// make the spinning workers contend.
    public static func configure(threads: Int? = nil) {
        let wanted = threads.flatMap { $0 > 0 ? $0 : nil } ?? maxWorkers
        budget = min(max(1, wanted), maxWorkers)
        cappedRequest = wanted > maxWorkers ? wanted : nil
        openblas_set_num_threads(Int32(budget))
    }

    /// The `--threads` value that was capped to the cores, if one was.
    nonisolated(unsafe) public private(set) static var cappedRequest: Int?

    /// OpenBLAS' kernel family, e.g. "Haswell" or "Cooperlake" (it follows OPENBLAS_CORETYPE when set).
    public static var blasCoreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// One line for the start-up log of every executable: the CPU, the GEMM path and the thread budget.
    public static var startupLine: String {
        "\(GEMM.cpuModel); GEMM \(GEMM.description); thread budget \(budget) of \(maxWorkers) cores"
            + (cappedRequest.map { " (--threads \($0) is more than the cores: capped)" } ?? "")
    }

    /// Runs `body` over contiguous chunks of `0..<count`, in parallel when `count * workPerItem` is at least
    /// `minParallelWork`. `body` gets (chunk index, range); chunk indices are below `Threads.count`.
    /// Nested calls run serially.
    /// `minWork` lowers the bar for kernels measured to gain below it (the decoder's matrix–vector products).
    @inline(__always)
    public static func parallelFor(
        _ count: Int, workPerItem: Int, minWork: Int = minParallelWork, _ body: (Int, Range<Int>) -> Void
    ) {
        let workers = min(budget, count)
        if workers <= 1 || insideParallelRegion || count * workPerItem < minWork {
            body(0, 0..<count)
            return
        }
        fork(count, workers: workers, body)
    }

    /// Runs `body(block, range)` for each fixed block of `blockSize` items covering `0..<count`, in parallel as
    /// `parallelFor` (work counted per item). The blocks do not depend on the thread count: reductions that keep
    /// one partial per block and add the partials in block order give the same bits on any number of threads.
    public static func forEachBlock(_ count: Int, blockSize: Int, workPerItem: Int, _ body: (Int, Range<Int>) -> Void) {
        let blocks = (count + blockSize - 1) / blockSize
        parallelFor(blocks, workPerItem: blockSize * workPerItem) { _, range in
            for b in range { body(b, b * blockSize..<min(count, (b + 1) * blockSize)) }
        }
    }

    /// A column reduction over rows that gives the same bits on any number of threads: each fixed block of
    /// `reductionBlock` rows accumulates into its own zeroed partial vector of `cols` (`body(block's rows, partial)`,
    /// run in parallel as `forEachBlock`), then the partials are added into `out` in block order, times `factor`.
    public static func reduceColumns(
        rows: Int, cols: Int, workPerItem: Int, into out: UnsafeMutablePointer<Float>, factor: Float = 1,
        _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void
    ) {
        let blocks = (rows + reductionBlock - 1) / reductionBlock
        withUnsafeTemporaryAllocation(of: Float.self, capacity: blocks * cols) { partials in
            let partial = partials.baseAddress.unsafelyUnwrapped
            partial.initialize(repeating: 0, count: blocks * cols)
            forEachBlock(rows, blockSize: reductionBlock, workPerItem: workPerItem) { block, range in
                body(range, partial + block * cols)
            }
            for block in 0..<blocks {
                let p = partial + block * cols
                for j in 0..<cols { out[j] += p[j] * factor }
            }
        }
    }

    /// Rows per block of the row kernels' reductions (`forEachBlock`).
    public static let reductionBlock = 256

    /// Runs `body` over chunks of `0..<count` on the budget's workers with OpenBLAS limited to one thread
    /// each, for loops whose items are themselves small GEMMs.
    public static func parallelForSerialBLAS(_ count: Int, _ body: (Int, Range<Int>) -> Void) {
        let workers = min(budget, count)
        if workers <= 1 || insideParallelRegion {
            body(0, 0..<count)
            return
        }
        openblas_set_num_threads(1)
        fork(count, workers: workers, body)
        openblas_set_num_threads(Int32(budget))
    }

    /// Runs `body` with OpenBLAS on one thread: for work made of many small products (single-token decoding),
    /// where waking BLAS threads costs more than it saves.
    public static func withSerialBLAS<R>(_ body: () throws -> R) rethrows -> R {
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(budget)) }
        return try body()
    }

    /// Splits `0..<count` into `workers` contiguous chunks run on the pool (chunk 0 on the calling thread).
    private static func fork(_ count: Int, workers: Int, _ body: (Int, Range<Int>) -> Void) {
        withoutActuallyEscaping(body) { body in
            var job = Job(count: count, workers: workers, precision: ngpt_gemm_thread_precision(), body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                ngpt_pool_run(
                    Int32(workers),
                    { context, w in
                        let job = context.unsafelyUnwrapped.assumingMemoryBound(to: Job.self).pointee
                        // products inside a share use the caller's precision
                        ngpt_gemm_set_thread_precision(job.precision)
                        let worker = Int(w)
                        job.body(worker, job.count * worker / job.workers..<job.count * (worker + 1) / job.workers)
                    }, pointer)
            }
        }
    }

    private struct Job {
        let count: Int, workers: Int
        let precision: Int32
        let body: (Int, Range<Int>) -> Void
    }
}
