import ArgumentParser
import Foundation
import Kernels

/// The executables' one way out: a command's `run()` throws, and a `UserError` becomes one line on stderr,
/// `error: <message>`, with exit status 1. ArgumentParser's own errors (a bad flag, `--help`) keep its handling.
public protocol Tool: ParsableCommand {}

extension Tool {
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as UserError {
            printError("error: \(error.message)")
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

/// A line on stderr (start-up lines, notices, summaries: what is not the program's output).
public func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
