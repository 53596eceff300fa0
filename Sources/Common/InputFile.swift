import Foundation

/// Reading the files a user names (checkpoints, tokenizers, configurations, prompts, corpora): only regular
/// files, and never more than a stated limit. Opening a FIFO for reading blocks until a writer comes and a
/// device such as /dev/zero never ends, so each is refused with one line before a byte is read (the open itself
/// does not block: O_NONBLOCK, checked with fstat on the descriptor that is then read).
public enum InputFile {
    /// Opens `path` for reading if it is a regular file; returns the descriptor and the file's size. `what` names
    /// the file in messages ("checkpoint", "--config file").
    public static func open(_ path: String, what: String) throws -> (fd: Int32, size: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "not found" : String(cString: strerror(errno))
            throw UserError("cannot read the \(what) \(path): \(reason)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw UserError("cannot read the \(what) \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw UserError("the \(what) \(path) is \(kind(st.st_mode)), not a regular file; pass a regular file")
        }
        // Regular files never block; later reads should wait for the disk as usual.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(st.st_size))
    }

    /// Whether `path` is a regular file (following links), without opening it; nil when it does not exist.
    public static func isRegular(_ path: String) -> Bool? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return st.st_mode & S_IFMT == S_IFREG
    }

    /// "a FIFO", "a directory": what a non-regular file is, for messages.
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    /// The whole file, refused when it is not a regular file or larger than `limit` bytes.
    public static func read(_ path: String, what: String, limit: Int) throws -> [UInt8] {
        let (fd, size) = try open(path, what: what)
        defer { close(fd) }
        guard size <= limit else {
            throw UserError(
                "the \(what) \(path) is \(size) bytes, more than the \(limit / 1_000_000) MB this reader accepts")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { break }  // the file shrank while being read: what is there is what a reader gets
                throw UserError("cannot read the \(what) \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        return done == size ? bytes : Array(bytes[..<done])
    }

    /// The whole file as UTF-8 text (see `read`).
    public static func text(_ path: String, what: String, limit: Int) throws -> String {
        let bytes = try read(path, what: what, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw UserError("the \(what) \(path) is not UTF-8 text")
        }
        return text
    }

    /// Reads a stream (standard input) to its end, refusing more than `limit` bytes. Stops with a `UserError` as
    /// soon as `stopRequested` says so (checked whenever a read returns, and a signal interrupts a blocked read).
    public static func readStream(_ fd: Int32, what: String, limit: Int, stopRequested: () -> Bool = { false }) throws
        -> [UInt8]
    {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if stopRequested() { throw UserError("stopped while reading \(what)") }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw UserError("cannot read \(what): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= limit else {
                throw UserError(
                    "\(what) is longer than \(limit / 1_000_000) MB; pass a shorter text (or a file with --prompt-file)"
                )
            }
            bytes += chunk[..<n]
        }
    }
}
