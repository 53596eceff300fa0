/// A problem the person at the terminal can fix: bad input, a missing file, a configuration that cannot work.
/// `message` is one line naming the problem and the fix; every executable prints it as `error: <message>` and
/// exits 1 (ToolSupport's `main`). Programming errors are preconditions, never this.
public struct UserError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
