import CGEMM
import CThreadPool
import Foundation

/// Where a stretch of work spends its threads' time (`ngpt-bench train`), as shares of threads × wall time:
/// GEMM micro-kernels and operand packing (counted inside ngpt's GEMM, attention's tiles included), waits inside
/// parallel jobs (a thread done with its share before the others), cores idle while one thread runs serial code
/// (outside any job), and the rest: row kernels, attention's softmax, the loss, the optimiser. Counted with the
/// time-stamp counter by CGEMM and CThreadPool while profiling is on; off, they cost one branch per packed panel and
/// per share. The counters are process-wide: they describe a stretch in which nothing else in the process runs
/// products (a benchmark).
public struct WorkProfile: Sendable {
    public var wallSeconds = 0.0
    public var threads = 1
    /// Thread-seconds in each part.
    public var gemmKernels = 0.0, packing = 0.0, poolWaits = 0.0, serialIdle = 0.0
    /// The part of `packing` spent on op(B), the operand every worker packs whole (the weights, in the forward).
    public var packingB = 0.0
    public var total: Double { wallSeconds * Double(threads) }
    public var rest: Double { max(0, total - gemmKernels - packing - poolWaits - serialIdle) }

    /// Runs `body` with the counters on.
    public static func measure(_ body: () throws -> Void) rethrows -> WorkProfile {
        _ = ngpt_gemm_profile_read(1)
        _ = ngpt_pool_profile_read(1)
        ngpt_gemm_profile_enable(1)
        ngpt_pool_profile_enable(1)
        let t0 = ngpt_ticks(), w0 = DispatchTime.now().uptimeNanoseconds
        try body()
        let t1 = ngpt_ticks(), w1 = DispatchTime.now().uptimeNanoseconds
        ngpt_gemm_profile_enable(0)
        ngpt_pool_profile_enable(0)
        let gemm = ngpt_gemm_profile_read(1), pool = ngpt_pool_profile_read(1)
        let wall = Double(w1 - w0) / 1e9
        let secondsPerTick = wall / Double(max(1, t1 - t0))
        var p = WorkProfile()
        p.wallSeconds = wall
        p.threads = Threads.count
        p.gemmKernels = Double(gemm.kernel) * secondsPerTick
        p.packing = Double(gemm.pack) * secondsPerTick
        p.packingB = Double(gemm.pack_b) * secondsPerTick
        p.poolWaits = Double(pool.wait) * secondsPerTick
        let outsideJobs = max(0, Double(t1 - t0) - Double(pool.span)) * secondsPerTick
        p.serialIdle = Double(p.threads - 1) * outsideJobs
        return p
    }

    /// A part as a percentage of threads × wall time.
    public func percent(_ part: Double) -> Double { total > 0 ? 100 * part / total : 0 }
}
