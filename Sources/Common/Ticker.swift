import Dispatch
import Foundation

/// Calls `body(seconds since start)` every `every` seconds on a background queue until stopped.
public final class Ticker: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let lock = NSLock()
    private var stopped = false
    public init(every seconds: Double, _ body: @escaping @Sendable (Double) -> Void) {
        let started = DispatchTime.now().uptimeNanoseconds
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + seconds, repeating: seconds)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            self.lock.lock(); defer { self.lock.unlock() }
            if !self.stopped { body(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
        }
        timer.resume()
    }
    public func stop() {
        lock.lock(); defer { lock.unlock() }
        if !stopped { stopped = true; timer.cancel() }
    }
}

extension String {
    /// The string padded on the left to `width` characters ("00042").
    public func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
