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

/// The time a run has left: the mean time of a step (saves left out) times the steps left, plus the mean time
/// of a save times the saves left. Saves are timed apart because they are few and long (a checkpoint of a large
/// model takes many steps' time), so averaging them into the steps would mislead.
struct RemainingTime: Equatable {
    private(set) var stepSeconds = 0.0, stepsTimed = 0
    private(set) var saveSeconds = 0.0, savesTimed = 0

    mutating func addStep(seconds: Double) { stepSeconds += max(seconds, 0); stepsTimed += 1 }
    mutating func addSave(seconds: Double) { saveSeconds += max(seconds, 0); savesTimed += 1 }

    /// Seconds left, nil before a step has been timed; saves count once one has been timed.
    func seconds(stepsLeft: Int, savesLeft: Int) -> Double? {
        guard stepsTimed > 0 else { return nil }
        var left = stepSeconds / Double(stepsTimed) * Double(max(stepsLeft, 0))
        if savesTimed > 0 { left += saveSeconds / Double(savesTimed) * Double(max(savesLeft, 0)) }
        return left
    }
}

/// A single-line progress display redrawn in place on a TTY, or plain log lines every `logEvery` steps.
/// On a TTY the line is cut to the terminal's width (a line longer than the terminal wraps, and `\r` then
/// redraws only its last row, leaving half lines behind), one-off messages go on a line of their own
/// above the bar (`message(_:)`), and a phase such as "saving checkpoint-5…" shows on the bar while it lasts.
/// The ETA counts the steps left at their mean time and the saves left at theirs (`RemainingTime`).
/// Safe to call from several threads (a signal handler's message while the run draws).
final class ProgressDisplay: @unchecked Sendable {
    let total: Int
    let logEvery: Int
    let isTerminal: Bool
    /// The step the run stops after (`total`, or earlier with `--stop-after`).
    let lastStep: Int
    /// Saves still to come once a step has run (its own checkpoint included).
    private let savesRemaining: (Int) -> Int
    private let now: () -> Date
    private let write: (String) -> Void
    private let lock = NSLock()
    private var timing = RemainingTime()
    /// When the last step or save ended: the next step is timed from here.
    private var mark: Date
    private var saveStart: Date?
    private var phase: String?
    /// What the bar shows (set by the last `update`).
    private var step: Int?
    private var fields: [(String, String)] = []
    private var eta = "?"
    /// Whether the bar is on screen (a line without its newline yet).
    private var isDrawn = false

    init(total: Int, lastStep: Int? = nil, logEvery: Int, isTerminal: Bool = Console.stderrIsTerminal,
         savesRemaining: @escaping (Int) -> Int = { _ in 0 }, now: @escaping () -> Date = Date.init,
         write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.total = total
        self.lastStep = lastStep ?? total
        self.logEvery = max(1, logEvery)
        self.isTerminal = isTerminal
        self.savesRemaining = savesRemaining
        self.now = now
        self.write = write
        mark = now()
    }

    /// The ETA after `step`, as text.
    private func remaining(after step: Int) -> String {
        timing.seconds(stepsLeft: lastStep - step, savesLeft: savesRemaining(step)).map(Self.duration) ?? "?"
    }

    /// Shows step `step` of `total` with the given fields (already formatted).
    func update(step: Int, fields: [(String, String)]) {
        lock.lock(); defer { lock.unlock() }
        let time = now()
        timing.addStep(seconds: time.timeIntervalSince(mark))
        mark = time
        self.step = step
        self.fields = fields
        phase = nil
        eta = remaining(after: step)
        if isTerminal {
            draw()
        } else if step % logEvery == 0 || step == total || step == lastStep || step == 1 {
            let text = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
            write("step \(step)/\(total)  \(text)  eta \(eta)\n")
        }
    }

    /// A save begins: `what` ("saving checkpoint-5…") shows on the bar until `endSave`; its time is measured.
    func beginSave(_ what: String) {
        lock.lock(); defer { lock.unlock() }
        saveStart = now()
        phase = what
        if isTerminal { draw() }
    }

    /// The save begun by `beginSave` is done: its time joins the ETA's mean save, and `message` (if any) is printed.
    func endSave(message line: String?) {
        lock.lock(); defer { lock.unlock() }
        let time = now()
        if let saveStart { timing.addSave(seconds: time.timeIntervalSince(saveStart)) }
        saveStart = nil
        phase = nil
        mark = time
        if let step { eta = remaining(after: step) }
        if let line { printLine(line) } else if isTerminal { draw() }
    }

    /// Prints a one-off line (a saved checkpoint, eval results): on a TTY the bar is cleared, the line printed
    /// on its own, and the bar drawn again below it; otherwise a plain line.
    func message(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        printLine(line)
    }

    /// Ends the bar: on a TTY it is drawn a last time (without a phase) and its line ended, so that what follows
    /// starts on a line of its own. Later messages are plain lines.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        phase = nil
        if isTerminal, isDrawn { draw(); write("\n") }
        isDrawn = false
        step = nil
    }

    private func printLine(_ line: String) {
        guard isTerminal else { return write(line + "\n") }
        write(Self.clearLine + line + "\n")
        isDrawn = false
        if step != nil { draw() }
    }

    private func draw() {
        guard let step else { return }
        let line = Self.barLine(step: step, total: total, fields: fields, eta: eta, columns: Console.terminalColumns(), phase: phase)
        write(Self.clearLine + line)
        isDrawn = true
    }

    /// Return to the start of the line and erase it.
    static let clearLine = "\r\u{1B}[2K"

    /// `[bar] step/total  phase  fields  eta …` in at most `columns - 1` characters (the last column is left free
    /// so that the cursor never wraps): fields that do not fit are dropped from the right, then the bar narrows,
    /// then the eta goes, then the text is cut. The phase (a save under way) stays beside the counter.
    static func barLine(step: Int, total: Int, fields: [(String, String)], eta: String, columns: Int, phase: String? = nil) -> String {
        let room = max(columns - 1, 10)
        let counter = "\(step)/\(total)" + (phase.map { "  " + $0 } ?? "")
        var parts = fields.map { "\($0.0) \($0.1)" } + ["eta \(eta)"]
        func line(barWidth: Int) -> String {
            let filled = total > 0 ? min(barWidth, barWidth * max(step, 0) / total) : 0
            let bar = barWidth > 0 ? "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: barWidth - filled) + "] " : ""
            return ([bar + counter] + parts).joined(separator: "  ")
        }
        // Fields go first, then the bar shrinks from 24 to 8 cells, then goes; then the eta.
        while line(barWidth: 24).count > room && parts.count > 1 { parts.remove(at: parts.count - 2) }
        for width in [24, 16, 8, 0] where line(barWidth: width).count <= room { return line(barWidth: width) }
        parts.removeAll()
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
