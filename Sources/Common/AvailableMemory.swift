import Foundation

/// The memory this process may still use, and the one check against it that every path creating a model makes
/// before it allocates (training: parameters, optimiser state and activations; loading: the model for sampling).
public enum AvailableMemory {
    /// /proc/meminfo's MemAvailable, capped by a cgroup v2 limit; nil where neither can be read.
    public static func bytes() -> Int? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
        var available: Int?
        if let info = read("/proc/meminfo"),
            let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") })
        {
            available = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        if let max = read("/sys/fs/cgroup/memory.max").flatMap({
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }) {
            let used =
                read("/sys/fs/cgroup/memory.current").flatMap {
                    Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
                } ?? 0
            available = min(available ?? Int.max, max - used)
        }
        return available
    }

    /// "12.3 GB", "340 MB".
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.0f MB", b / 1e6) }
        return String(format: "%.0f kB", b / 1e3)
    }

    /// Throws "`what` needs about X (`parts`) but Y is available; `fix`" when `needed` exceeds what is available.
    public static func check(needed: Int, what: String, parts: String, fix: String, available: Int? = bytes()) throws {
        guard let available, needed > available else { return }
        throw UserError(
            "\(what) needs about \(format(needed)) (\(parts)) but \(format(available)) is available; \(fix)")
    }
}
