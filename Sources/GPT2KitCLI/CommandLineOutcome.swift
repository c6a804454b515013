import ArgumentParser
import Foundation

/// How a command line ended, for the executable to print and exit with: `--help` and `--version` text on
/// stdout with status 0, or one `error: <flag or file>: <problem>` line on stderr with status 1 — argument
/// errors included (argument-parser's own would print the usage and exit 64). Usage errors add a second line
/// that points at `--help`.
public struct CommandLineOutcome: Sendable {
    /// The exit status.
    public var status: Int32
    /// Help or version text for standard output.
    public var output: String?
    /// Lines for standard error; the first is the `error:` line.
    public var errorLines: [String]

    public static let success = CommandLineOutcome(status: 0, output: nil, errorLines: [])

    init(status: Int32, output: String?, errorLines: [String]) {
        self.status = status
        self.output = output
        self.errorLines = errorLines
    }

    /// The outcome of an error thrown while parsing `arguments` with `root` or running the command.
    public init(error: any Error, root: any ParsableCommand.Type, arguments: [String]) {
        if let unknown = error as? UnknownCommandError {
            self.init(status: 1, output: nil, errorLines: ["error: \(unknown)", "see '\(root._commandName) --help'"])
            return
        }
        if let code = error as? ExitCode {
            // The command has reported its error already (or finished early on purpose).
            self.init(status: code.rawValue, output: nil, errorLines: [])
            return
        }
        let code = root.exitCode(for: error)
        if code.isSuccess {
            let text = root.fullMessage(for: error, columns: nil)
            self.init(status: 0, output: text.isEmpty ? nil : text, errorLines: [])
            return
        }
        let message = Self.problem(fromParserMessage: root.message(for: error))
        var lines = ["error: " + message]
        if code == .validationFailure {
            let subcommand = arguments.first.flatMap { name in Self.subcommandNames(of: root).contains(name) ? name : nil }
            lines.append("see '" + ([root._commandName] + (subcommand.map { [$0] } ?? [])).joined(separator: " ") + " --help'")
        }
        self.init(status: 1, output: nil, errorLines: lines)
    }

    /// Writes the text and lines (the exit status is the caller's to use).
    public func print() {
        if let output { Console.out(output) }
        errorLines.forEach(Console.err)
    }

    /// Throws an `UnknownCommandError` when the first argument names no subcommand of `root` (a typo such as
    /// `finetun`), so the error says so instead of "unexpected argument".
    public static func checkSubcommand(_ arguments: [String], root: any ParsableCommand.Type) throws {
        guard let first = arguments.first, !first.hasPrefix("-") else { return }
        let names = subcommandNames(of: root)
        guard !names.isEmpty, !names.contains(first), first != "help" else { return }
        let closest = names.map { ($0, editDistance(first, $0)) }.min { $0.1 < $1.1 }
        let suggestion = closest.flatMap { $0.1 <= max(2, first.count / 3) || $0.0.hasPrefix(first) ? $0.0 : nil }
        throw UnknownCommandError(name: first, suggestion: suggestion)
    }

    static func subcommandNames(of root: any ParsableCommand.Type) -> [String] {
        root.configuration.subcommands.map { $0._commandName }
    }

    /// argument-parser's message rewritten as `<flag>: <problem>` (a lowercase fragment, one line).
    static func problem(fromParserMessage message: String) -> String {
        /// The quoted text after `prefix` (the flag's synopsis with its `<value>` removed) and what follows it.
        func quoted(after prefix: String, in text: Substring) -> (name: String, rest: Substring)? {
            guard text.hasPrefix(prefix) else { return nil }
            let body = text.dropFirst(prefix.count)
            guard let end = body.firstIndex(of: "'") else { return nil }
            let synopsis = body[..<end]
            let name = synopsis.split(separator: " <").first.map(String.init) ?? String(synopsis)
            return (name, body[body.index(after: end)...])
        }
        let text = Substring(message.trimmingCharacters(in: .whitespacesAndNewlines))
        if let (name, rest) = quoted(after: "Unknown option '", in: text) {
            if let (suggestion, _) = quoted(after: ". Did you mean '", in: rest) {
                return "\(name): unknown option (did you mean '\(suggestion)'?)"
            }
            return "\(name): unknown option"
        }
        if let (name, _) = quoted(after: "Missing value for '", in: text) {
            return "\(name): missing value"
        }
        if let (name, _) = quoted(after: "Missing expected argument '", in: text) {
            return name.hasPrefix("-") ? "\(name): required option missing" : "\(name): required argument missing"
        }
        if text.hasPrefix("Missing one of: ") {
            return "missing one of " + text.dropFirst("Missing one of: ".count)
        }
        if let (value, rest) = quoted(after: "The value '", in: text),
           let (name, detail) = quoted(after: " is invalid for '", in: rest) {
            var line = "\(name): '\(value)' is not a valid value"
            if detail.hasPrefix(": ") {
                line += ": " + detail.dropFirst(2)
            } else if detail.hasPrefix(". Please provide one of ") {
                line += "; expected one of " + detail.dropFirst(". Please provide one of ".count).trimmingCharacters(in: CharacterSet(charactersIn: "."))
            } else if !detail.isEmpty {
                line += "; expected one of " + detail.split(separator: "\n").filter { $0.hasPrefix("  - ") }.map { "'\($0.dropFirst(4))'" }.joined(separator: ", ")
            }
            return line
        }
        if let (value, _) = quoted(after: "Unexpected argument '", in: text) {
            return "'\(value)': unexpected argument"
        }
        if let (name, rest) = quoted(after: "The option '", in: text), let (value, _) = quoted(after: " does not take any value, but '", in: rest) {
            return "\(name): takes no value, but '\(value)' was given"
        }
        // Anything else (our own ValidationErrors are lowercase fragments already): one line, lowercase start.
        let line = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
        guard let first = line.first, first.isUppercase, !line.dropFirst().prefix(1).allSatisfy(\.isUppercase) else { return line }
        return first.lowercased() + line.dropFirst()
    }

    /// Levenshtein distance, for the closest subcommand name.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

/// A first argument that names no subcommand.
struct UnknownCommandError: Error, CustomStringConvertible {
    var name: String
    var suggestion: String?

    var description: String {
        "unknown command '\(name)'" + (suggestion.map { " (did you mean '\($0)'?)" } ?? "")
    }
}
