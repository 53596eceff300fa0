import CMPI
import Foundation

/// The processes of a data-parallel job started by an MPI launcher (`mpirun -np N`, `srun`): which one this is,
/// how many there are, and the few collectives training needs. Without a launcher there is no world and no MPI
/// call is ever made, so a single process runs exactly as it would without MPI.
///
/// Every collective is called by every process in the same order (the trainer's loop guarantees it). MPI's
/// default error handler aborts the whole job when a peer fails, so a dead process never leaves the others
/// waiting in a collective.
public final class World: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Processes of this job on this host (they share its cores).
    public let localSize: Int
    public let host: String
    public var isRoot: Bool { rank == 0 }

    /// Environment variables by which launchers tell a process it is one of a job: Open MPI, MPICH/Hydra and
    /// Slurm's PMI, PMIx.
    static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]

    /// Whether this process was started by an MPI launcher.
    public static var launched: Bool {
        launcherVariables.contains { ProcessInfo.processInfo.environment[$0] != nil }
    }

    /// Joins the job when started by a launcher (MPI_Init); nil otherwise. Call once, before any thread starts.
    public static func join() -> World? {
        guard launched else { return nil }
        guard ngpt_mpi_init() == MPI_SUCCESS else { return nil }
        return World()
    }

    private init() {
        rank = Int(ngpt_mpi_rank())
        size = Int(ngpt_mpi_size())
        localSize = Int(ngpt_mpi_local_size())
        var name = [CChar](repeating: 0, count: 256)
        ngpt_mpi_host(&name, Int32(name.count))
        host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Leaves the job cleanly (every process calls it once, at the end).
    public func finish() { _ = ngpt_mpi_finalize() }

    /// Ends every process of the job with `code` (after a process's error, so that none waits for it).
    public func abort(code: Int32) -> Never {
        ngpt_mpi_abort(code)
        exit(code)
    }

    public func barrier() { _ = ngpt_mpi_barrier() }

    /// data ← Σ over processes, in place.
    public func sum(_ data: UnsafeMutablePointer<Float>, count: Int) { _ = ngpt_mpi_allreduce_sum_float(data, count) }

    public func sum(_ values: [Double]) -> [Double] {
        var v = values
        _ = ngpt_mpi_allreduce_sum_double(&v, Int32(v.count))
        return v
    }

    public func max(_ values: [Double]) -> [Double] {
        var v = values
        _ = ngpt_mpi_allreduce_max_double(&v, Int32(v.count))
        return v
    }

    public func min(_ values: [Double]) -> [Double] {
        var v = values
        _ = ngpt_mpi_allreduce_min_double(&v, Int32(v.count))
        return v
    }

    /// Rank 0's bytes at `data` to every process.
    public func broadcast(_ data: UnsafeMutableRawPointer, bytes: Int) { _ = ngpt_mpi_broadcast(data, bytes, 0) }

    public func broadcast(_ data: UnsafeMutablePointer<Float>, count: Int) {
        broadcast(UnsafeMutableRawPointer(data), bytes: count * 4)
    }

    /// Rank 0's byte string to every process (the others pass anything).
    public func broadcast(_ bytes: [UInt8]) -> [UInt8] {
        var count = Int64(bytes.count)
        withUnsafeMutableBytes(of: &count) { broadcast($0.baseAddress!, bytes: $0.count) }
        var out = isRoot ? bytes : [UInt8](repeating: 0, count: Int(count))
        out.withUnsafeMutableBytes { if $0.count > 0 { broadcast($0.baseAddress!, bytes: $0.count) } }
        return out
    }

    public func broadcast(_ text: String) -> String { String(decoding: broadcast(Array(text.utf8)), as: UTF8.self) }

    /// Whether any process says yes.
    public func any(_ flag: Bool) -> Bool { max([flag ? 1 : 0])[0] > 0 }
}
