import CSignals
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

/// Requests to stop (SIGINT, SIGTERM, SIGUSR1): the trainer finishes its step, checkpoints and exits 0. A second
/// signal exits at once (the last checkpoint stays intact: checkpoints are written by rename). The handlers are C
/// (CSignals): installed synchronously, async-signal-safe, and able to see a signal's sender.
public final class StopRequest: @unchecked Sendable {
    /// What the first signal does, as the message says it.
    private let action: String

    public init(action: String = "finishing this step and writing a checkpoint") { self.action = action }

    public func install() {
        // SIGUSR1 too: Open MPI's mpirun forwards it to every process of a job (SIGINT and SIGTERM to mpirun abort the
        // job).
        let lines = ["SIGINT", "SIGTERM", "SIGUSR1"].map { strdup("\n\($0): \(action) (again to stop at once)\n") }
        var pointers = lines.map { UnsafePointer($0) }
        pointers.withUnsafeMutableBufferPointer { ngpt_signals_install($0.baseAddress) }
        lines.forEach { free($0) }
    }

    /// In a data-parallel job: when the launcher ends the job (another process died), this process cannot finish
    /// its step; it writes `line` (`error: process R of N on HOST: …`) and exits 1 at once.
    public func endOnLauncherSignal(line: String) { ngpt_signals_end_on_launcher_signal(line + "\n") }

    public var requested: String? {
        switch ngpt_signals_received() {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGUSR1: "SIGUSR1"
        default: nil
        }
    }
}

/// Times steps: the mean of the last 20 gives the rate and the ETA.
struct StepTimer {
    private var started: UInt64 = 0
    private var recent: [Double] = []

    mutating func start() { started = DispatchTime.now().uptimeNanoseconds }

    /// Ends the step; returns its seconds.
    mutating func stop() -> Double {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        recent.append(seconds)
        if recent.count > 20 { recent.removeFirst() }
        return seconds
    }

    var recentMean: Double { recent.isEmpty ? 0 : recent.reduce(0, +) / Double(recent.count) }
    func tokensPerSecond(_ tokensPerStep: Int) -> Double { recent.isEmpty ? 0 : Double(tokensPerStep) / recentMean }
}
