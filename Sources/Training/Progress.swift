import Foundation

/// Where a run's lines go: a live, rewritten line on a terminal; plain periodic lines otherwise.
public final class ProgressPrinter: @unchecked Sendable {
    public let isTerminal: Bool
    private var liveLineShown = false
    /// Prepended to every line (the comparison labels each run's lines).
    public var prefix = ""
    /// Prints nothing (the processes of a data-parallel job other than rank 0).
    public var silent = false

    private let output: FileHandle

    /// Writes to standard output by default; `ngpt-train prepare` writes its progress to standard error.
    public init(output: FileHandle = .standardOutput, isTerminal: Bool? = nil) {
        self.output = output
        self.isTerminal = isTerminal ?? (isatty(output.fileDescriptor) != 0)
    }

    /// A line that stays (config table, evaluation results, messages).
    public func line(_ text: String) {
        if silent { return }
        if liveLineShown { write("\r\u{1B}[2K"); liveLineShown = false }
        write(prefix + text + "\n")
    }

    /// The progress line: rewritten in place on a terminal; printed only when `periodic` otherwise.
    public func progress(_ text: String, periodic: Bool) {
        if silent { return }
        if isTerminal {
            write("\r\u{1B}[2K" + prefix + text)
            liveLineShown = true
        } else if periodic {
            write(prefix + text + "\n")
        }
    }

    public func finish() { if liveLineShown { write("\n"); liveLineShown = false } }

    private func write(_ s: String) {
        output.write(Data(s.utf8))
    }
}

/// True at most once per `seconds` (the first call included): for periodic lines in logs.
public final class Throttle: @unchecked Sendable {
    private let interval: UInt64
    private var last: UInt64?
    private let lock = NSLock()
    public init(seconds: Double) { interval = UInt64(seconds * 1e9) }
    public func due() -> Bool {
        lock.lock(); defer { lock.unlock() }
        let now = DispatchTime.now().uptimeNanoseconds
        if let last, now - last < interval { return false }
        last = now
        return true
    }
}

/// Requests to stop (SIGINT, SIGTERM): the trainer finishes its step, checkpoints and exits 0. A second signal
/// exits at once (the last checkpoint stays intact: checkpoints are written by rename).
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var signalName: String?
    private var sources: [DispatchSourceSignal] = []
    /// What the first signal does, as the message says it.
    private let action: String

    public init(action: String = "finishing this step and writing a checkpoint") { self.action = action }

    public func install() {
        // SIGUSR1 too: Open MPI's mpirun forwards it to every process of a job (SIGINT and SIGTERM to mpirun abort the job).
        for (sig, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGUSR1, "SIGUSR1")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                let second = self.signalName != nil
                self.signalName = name
                self.lock.unlock()
                if second {
                    FileHandle.standardError.write(Data("\n\(name) again: stopping now; the last checkpoint is intact\n".utf8))
                    exit(130)
                }
                FileHandle.standardError.write(Data("\n\(name): \(action) (again to stop at once)\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }

    public var requested: String? {
        lock.lock(); defer { lock.unlock() }
        return signalName
    }
}
