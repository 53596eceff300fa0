import Foundation

/// The directory holding the built executables (next to the test bundle).
public func productsDirectory() -> String {
    for candidate in [Bundle.main.bundlePath, CommandLine.arguments.first ?? ""] {
        var url = URL(fileURLWithPath: candidate)
        for _ in 0..<3 {
            url = url.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("ngpt-train").path) { return url.path }
        }
    }
    return FileManager.default.currentDirectoryPath + "/.build/release"
}

/// Runs a command (a path or a name on PATH) with no standard input; returns (exit status, stdout, stderr).
@discardableResult
public func runProcess(_ arguments: [String], cwd: String? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
