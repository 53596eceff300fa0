import Foundation

/// Crash-safe file writing: write a sibling temporary file, fsync it, rename it over the target, fsync the
/// directory. A reader (or a crash) sees the old file or the new one, never a partial one.
public enum AtomicFile {
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw UserError(
                "cannot write \(path): \(String(cString: strerror(errno))) (check the directory exists and is writable)"
            )
        }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress.unsafelyUnwrapped + offset, bytes.count - offset)
            if n <= 0 {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw UserError("writing \(path) failed: \(reason) (is the disk full?)")
            }
            offset += n
        }
        guard fsync(fd) == 0, close(fd) == 0 else {
            throw UserError("writing \(path) failed: \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, path) == 0 else {
            throw UserError("cannot rename into \(path): \(String(cString: strerror(errno)))")
        }
        ok = true
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write($0, to: path) }
    }

    public static func write(_ text: String, to path: String) throws { try write(Array(text.utf8), to: path) }
}

/// A read-only memory map of a file, unmapped on deinit.
public final class MappedFile: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let path: String

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UserError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw UserError("cannot stat \(path)") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let base = p, base != MAP_FAILED else {
            throw UserError("cannot map \(path): \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }

    /// Unmaps the pages from the one holding `range`'s start up to the last whole page before its end, from this
    /// process (they stay in the page cache and come back on the next read): a pass over a large file, handing back
    /// what it has read, need not keep the file resident.
    public func dropPages(_ range: Range<Int>) {
        guard let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page, end = min(range.upperBound, bytes.count) / page * page
        if end > start { madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED) }
    }
}

/// Directories made the way the tools report failures: one line with the system's reason.
public enum Directories {
    /// Creates `path` and any missing parents (like `mkdir -p`). On failure the error names the path, the reason
    /// (from the system call) and `fix`, e.g. "choose a writable --out".
    public static func create(_ path: String, fix: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw UserError("cannot create directory \(path): a file of that name exists; \(fix)")
            }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try create(parent, fix: fix) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw UserError("cannot create directory \(path): \(String(cString: strerror(errno))); \(fix)")
        }
    }

    /// A working folder named `prefix` + this process's id inside `folder` (`folder/.fetch-1234`), emptied and
    /// created. Working folders of processes that are gone (killed mid-work: nothing removed theirs) are removed
    /// first, so they never pile up; those of running processes are left alone.
    public static func working(in folder: String, prefix: String, fix: String) throws -> String {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
            if let pid = Int32(name.dropFirst(prefix.count)), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                try? fm.removeItem(atPath: folder + "/" + name)
            }
        }
        let path = folder + "/" + prefix + "\(getpid())"
        try? fm.removeItem(atPath: path)
        try create(path, fix: fix)
        return path
    }
}
