import Common
import Foundation

/// The external programs corpus fetching uses (pip, tar, apt-get, dpkg-deb), run with a one-line error naming
/// what failed and how to do without it.
enum Tools {
    /// Runs `arguments` (found on PATH) in `directory`; throws `failure` with the program's last error line.
    static func run(_ arguments: [String], in directory: String? = nil, failure: String) throws {
        _ = try execute(arguments, in: directory, failure: failure)
    }

    /// The standard output of `arguments`, trimmed.
    static func output(_ arguments: [String]) throws -> String {
        try execute(arguments, in: nil, failure: "\(arguments[0]) failed").trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    private static func execute(_ arguments: [String], in directory: String?, failure: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let errors = Pipe(), output = Pipe()
        process.standardError = errors
        process.standardOutput = output
        do { try process.run() } catch {
            throw UserError("\(failure) (\(arguments[0]) could not start: \(error.localizedDescription))")
        }
        // Read both pipes while the program runs, so that neither fills and blocks it.
        nonisolated(unsafe) var stderr = Data()
        let reader = Thread { stderr = errors.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        guard process.terminationStatus == 0 else {
            let last =
                String(decoding: stderr, as: UTF8.self).split(separator: "\n").last.map(String.init)
                ?? "exit \(process.terminationStatus)"
            throw UserError("\(failure) [\(arguments.prefix(3).joined(separator: " ")): \(last)]")
        }
        return String(decoding: stdout, as: UTF8.self)
    }
}
