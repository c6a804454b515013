import Foundation

/// Terminal output for the command: progress on a TTY, plain lines otherwise, JSON for machines.
enum Console {
    /// Whether standard error is a terminal (progress bars go there).
    static let stderrIsTerminal: Bool = isatty(2) == 1

    /// The terminal's width in columns (standard error's, else standard output's), 80 when neither is a
    /// terminal or the size is unknown. Asked on every redraw, so a resized window is followed.
    static func terminalColumns() -> Int {
        for fd in [Int32(2), 1] {
            var size = winsize()
            if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        }
        return 80
    }

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
/// On a TTY the line is cut to the terminal's width (a line longer than the terminal wraps, and `\r` then
/// redraws only its last row, leaving half lines behind), and one-off messages go on a line of their own
/// above the bar (`message(_:)`).
final class ProgressDisplay {
    let total: Int
    let logEvery: Int
    let isTerminal: Bool
    private let start = Date()
    /// The bar as last drawn (redrawn after a message), nil once it is finished or before the first step.
    private var bar: String?

    init(total: Int, logEvery: Int, isTerminal: Bool = Console.stderrIsTerminal) {
        self.total = total
        self.logEvery = max(1, logEvery)
        self.isTerminal = isTerminal
    }

    /// Shows step `step` of `total` with the given fields (already formatted).
    func update(step: Int, fields: [(String, String)]) {
        let elapsed = Date().timeIntervalSince(start)
        let eta = step > 0 ? elapsed / Double(step) * Double(max(total - step, 0)) : 0
        if isTerminal {
            let line = Self.barLine(step: step, total: total, fields: fields, eta: Self.duration(eta), columns: Console.terminalColumns())
            FileHandle.standardError.write(Data((Self.clearLine + line + (step == total ? "\n" : "")).utf8))
            bar = step == total ? nil : line
        } else if step % logEvery == 0 || step == total || step == 1 {
            let text = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
            Console.err("step \(step)/\(total)  \(text)  eta \(Self.duration(eta))")
        }
    }

    /// Prints a one-off line (a saved checkpoint, eval results): on a TTY the bar is cleared, the line printed
    /// on its own, and the bar drawn again below it; otherwise a plain line.
    func message(_ line: String) {
        guard isTerminal else { return Console.err(line) }
        FileHandle.standardError.write(Data((Self.clearLine + line + "\n" + (bar ?? "")).utf8))
    }

    /// Return to the start of the line and erase it.
    static let clearLine = "\r\u{1B}[2K"

    /// `[bar] step/total  fields  eta …` in at most `columns - 1` characters (the last column is left free
    /// so that the cursor never wraps): fields that do not fit are dropped from the right, then the bar narrows,
    /// then the text is cut.
    static func barLine(step: Int, total: Int, fields: [(String, String)], eta: String, columns: Int) -> String {
        let room = max(columns - 1, 10)
        let counter = "\(step)/\(total)"
        var parts = fields.map { "\($0.0) \($0.1)" } + ["eta \(eta)"]
        func line(barWidth: Int) -> String {
            let filled = total > 0 ? min(barWidth, barWidth * max(step, 0) / total) : 0
            let bar = barWidth > 0 ? "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: barWidth - filled) + "] " : ""
            return ([bar + counter] + parts).joined(separator: "  ")
        }
        // Fields go first (eta last of all), then the bar shrinks from 24 to 8 cells, then goes.
        while line(barWidth: 24).count > room && parts.count > 1 { parts.remove(at: parts.count - 2) }
        if line(barWidth: 24).count > room && !parts.isEmpty { parts.removeLast() }
        for width in [24, 16, 8, 0] where line(barWidth: width).count <= room { return line(barWidth: width) }
        return String(line(barWidth: 0).prefix(room))
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
