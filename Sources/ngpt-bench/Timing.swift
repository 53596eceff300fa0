import Dispatch
import Foundation
import Kernels

/// Median wall time in milliseconds of `repetitions` runs of `body`, after two warm-up runs.
func medianMilliseconds(repetitions: Int, _ body: () -> Void) -> Double {
    body()
    body()
    var times: [Double] = []
    times.reserveCapacity(repetitions)
    for _ in 0..<repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    times.sort()
    return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
}

/// Milliseconds on a monotonic clock.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

/// Medians of two bodies timed alternately (a, b, a, b, …), so both see the same machine load.
func medianMilliseconds(repetitions: Int, _ a: () -> Void, _ b: () -> Void) -> (Double, Double) {
    a(); b()
    var ta: [Double] = [], tb: [Double] = []
    for _ in 0..<repetitions {
        var start = DispatchTime.now().uptimeNanoseconds
        a()
        ta.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        start = DispatchTime.now().uptimeNanoseconds
        b()
        tb.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return (median(ta), median(tb))
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// A Float buffer of deterministic pseudo-random values in [-1, 1), freed explicitly.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int, seed: UInt64 = 1) {
        self.count = count
        pointer = allocateFloats(count, zeroed: false)
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for i in 0..<count {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            pointer[i] = Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000 - 1
        }
    }

    deinit { deallocateFloats(pointer) }
}

/// A fixed-width text table.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        return
            ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
            + rows.map(line)).joined(separator: "\n")
    }
}

func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// Medians of several bodies timed in turn, round after round (each sees the same machine load).
func medianMilliseconds(repetitions: Int, _ bodies: [() -> Void]) -> [Double] {
    bodies.forEach { $0() }
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<repetitions {
        for (i, body) in bodies.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
    }
    return times.map(median)
}
