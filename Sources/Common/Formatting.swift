import Foundation

// How the tools print sizes, counts and durations.

/// "812 MB", "2.00 GB", "340 kB".
public func formatBytes(_ n: Int) -> String {
    let x = Double(n)
    if x >= 1e9 { return String(format: "%.2f GB", x / 1e9) }
    if x >= 1e6 { return String(format: "%.1f MB", x / 1e6) }
    if x >= 1e3 { return String(format: "%.0f kB", x / 1e3) }
    return "\(n) B"
}

/// "2.50M", "830k".
public func formatCount(_ x: Double) -> String {
    if x >= 1e6 { return String(format: "%.2fM", x / 1e6) }
    if x >= 1e3 { return String(format: "%.0fk", x / 1e3) }
    return String(format: "%.0f", x)
}

/// "42s", "3m05s", "1h02m".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}
