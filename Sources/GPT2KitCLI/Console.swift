import Foundation

/// Terminal output for the command: progress on a TTY, plain lines otherwise, JSON for machines.
enum Console {
    /// Whether standard error is a terminal (progress bars go there).
    static let stderrIsTerminal: Bool = isatty(2) == 1

    /// Writes a line to standard output.
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Writes text to standard output without a newline, flushed at once (streaming).
    static func outRaw(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a line to standard error.
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Serializes a JSON-compatible value on one line with sorted keys.
    static func json(_ object: Any) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
              let s = String(data: data, encoding: .utf8) else { return "{}" }
        return s
    }

    /// Pretty multi-line JSON with sorted keys.
    static func prettyJSON(_ object: Any) -> String {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]),
              let s = String(data: data, encoding: .utf8) else { return "{}" }
        return s
    }
}

/// A single-line progress display redrawn in place on a TTY, or plain log lines every `logEvery` steps.
struct ProgressDisplay {
    let total: Int
    let logEvery: Int
    let isTerminal: Bool
    private let start = Date()

    init(total: Int, logEvery: Int, isTerminal: Bool = Console.stderrIsTerminal) {
        self.total = total
        self.logEvery = max(1, logEvery)
        self.isTerminal = isTerminal
    }

    /// Shows step `step` of `total` with the given fields (already formatted).
    func update(step: Int, fields: [(String, String)]) {
        let elapsed = Date().timeIntervalSince(start)
        let eta = step > 0 ? elapsed / Double(step) * Double(max(total - step, 0)) : 0
        let text = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
        if isTerminal {
            let width = 24
            let filled = total > 0 ? min(width, width * step / total) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[2K[\(bar)] \(step)/\(total)  \(text)  eta \(Self.duration(eta))".utf8))
            if step == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else if step % logEvery == 0 || step == total || step == 1 {
            Console.err("step \(step)/\(total)  \(text)  eta \(Self.duration(eta))")
        }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
