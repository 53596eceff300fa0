import Foundation

/// Allocation for the large, long-lived buffers (parameters, gradients, optimiser moments, activations):
/// 64-byte aligned, and for buffers of 2 MiB or more, 2 MiB aligned and advised to use transparent huge
/// pages. With 4 KiB pages a [4096, 256] activation spans 1,024 pages and the row kernels pay TLB misses on
/// them; on this machine (THP in `madvise` mode) huge pages speed the streaming kernels up measurably
/// (see `ngpt-bench kernels`). Allocate once, reuse, then `deallocateFloats`.
public func allocateFloats(_ count: Int, zeroed: Bool = true) -> UnsafeMutablePointer<Float> {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    let hugePage = 2 << 20
    let alignment = bytes >= hugePage ? hugePage : 64
    var raw: UnsafeMutableRawPointer?
    let rounded = (bytes + alignment - 1) / alignment * alignment
    guard posix_memalign(&raw, alignment, rounded) == 0, let memory = raw else {
        fatalError("out of memory allocating \(bytes) bytes")
    }
    #if os(Linux)
        if alignment == hugePage { _ = madvise(memory, rounded, MADV_HUGEPAGE) }
    #endif
    let p = memory.bindMemory(to: Float.self, capacity: max(count, 1))
    if zeroed { p.initialize(repeating: 0, count: max(count, 1)) }
    return p
}

/// Frees a buffer from `allocateFloats`.
public func deallocateFloats(_ p: UnsafeMutablePointer<Float>) {
    free(p)
}
