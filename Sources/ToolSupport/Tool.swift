import ArgumentParser
import Common
import Foundation
import Kernels

/// The executables' one way out: every error, from a command's `run()` or from parsing its flags, is one line on
/// stderr, `error: <message>`, with exit status 1. A `UserError` carries its own message; the argument parser's
/// range and parse errors (a `ValidationError` from `validate()`, a value that is not a number) give theirs. Only
/// a flag the tool does not know adds the usage line (the user may have meant another); `--help` prints help and
/// exits 0.
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
            guard exitCode(for: error) != .success else { exit(withError: error) }  // --help, --version
            let message = self.message(for: error)
            printError("error: " + message)
            if message.hasPrefix("Unknown option") || message.hasPrefix("Unexpected argument") {
                // the parser's own usage block and help hint, without its first line (the message again)
                let rest = fullMessage(for: error).split(separator: "\n", omittingEmptySubsequences: false).drop {
                    !$0.hasPrefix("Usage")
                }
                if !rest.isEmpty { printError(rest.joined(separator: "\n")) }
            }
            Foundation.exit(1)
        }
    }
}

/// A line on stderr (start-up lines, notices, summaries: what is not the program's output).
public func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
