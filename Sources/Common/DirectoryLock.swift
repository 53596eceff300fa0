import Foundation

/// Serialises preparations of one cache directory (two runs starting at once, processes of a job).
public final class DirectoryLock {
    private var fd: Int32
    /// Takes the lock on `directory/.lock`, calling `waiting` first when another process holds it.
    public init(_ directory: String, waiting: () -> Void) throws {
        fd = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)  // a child process must not keep it
        guard fd >= 0 else {
            throw UserError(
                "cannot create \(directory)/.lock: \(String(cString: strerror(errno))); pass a writable --data-dir")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting()
            flock(fd, LOCK_EX)
        }
    }
    public func release() { if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 } }
    deinit { release() }
}
