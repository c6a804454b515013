@testable import GPT2KitCLI
import Testing

/// The TTY progress line fits the terminal (a longer line wraps, and `\r` then redraws only its last row).
@Suite struct ProgressLineTests {
    static let fields = [("loss", "11.1304"), ("lr", "5.00e-05"), ("grad", "1.234"), ("tok/s", "1234"), ("eval", "10.7934"), ("ppl", "48699.48")]

    @Test(arguments: [200, 120, 80, 60, 40, 30, 20, 12, 5])
    func barLineFitsTheWidth(columns: Int) {
        for step in [0, 1, 37, 1000] {
            let line = ProgressDisplay.barLine(step: step, total: 1000, fields: Self.fields, eta: "1h02m", columns: columns)
            #expect(line.count <= max(columns - 1, 10), "\(columns) columns: \(line)")
            #expect(!line.contains("\n"))
            if columns >= 20 { #expect(line.contains("\(step)/1000"), "\(line)") }
        }
    }

    @Test func wideTerminalKeepsEveryFieldAndTheFullBar() {
        let line = ProgressDisplay.barLine(step: 500, total: 1000, fields: Self.fields, eta: "5s", columns: 200)
        #expect(line.hasPrefix("[" + String(repeating: "█", count: 12) + String(repeating: "·", count: 12) + "] 500/1000  loss 11.1304"))
        #expect(line.hasSuffix("ppl 48699.48  eta 5s"))
    }

    @Test func narrowTerminalDropsFieldsFromTheRightFirst() {
        let line = ProgressDisplay.barLine(step: 500, total: 1000, fields: Self.fields, eta: "5s", columns: 60)
        #expect(line.contains("loss 11.1304") && line.hasSuffix("eta 5s") && !line.contains("ppl"), "\(line)")
        #expect(line.hasPrefix("[" + String(repeating: "█", count: 12)))
    }

    @Test func phaseStaysBesideTheCounter() {
        let line = ProgressDisplay.barLine(step: 5, total: 20, fields: Self.fields, eta: "3s", columns: 60, phase: "saving checkpoint-5…")
        #expect(line.contains("5/20  saving checkpoint-5…"), "\(line)")
        #expect(line.count <= 59 && line.hasSuffix("eta 3s"), "\(line)")
    }

    @Test func terminalColumnsFallsBackTo80() {
        // Under `swift test` stdout and stderr are usually pipes; on a terminal the width is its own.
        #expect(Console.terminalColumns() > 0)
    }
}

import Foundation
import TestSupport

/// The ETA counts steps and saves at their own mean times; a save shows on the bar while it lasts.
@Suite struct ProgressDisplayTests {
    /// A clock the test moves and the text the display wrote.
    final class Fake: @unchecked Sendable {
        var seconds = 0.0
        var text = ""
        /// What a terminal shows last: the text after the last erase-line.
        var lastDrawn: String { text.components(separatedBy: ProgressDisplay.clearLine).last ?? "" }
    }

    static func display(_ fake: Fake, isTerminal: Bool) -> ProgressDisplay {
        ProgressDisplay(total: 10, logEvery: 1, isTerminal: isTerminal, savesRemaining: { $0 < 5 ? 2 : 1 },
                        now: { Date(timeIntervalSince1970: fake.seconds) }, write: { fake.text += $0 })
    }

    @Test func remainingTimeAddsSavesAtTheirMean() {
        var time = RemainingTime()
        #expect(time.seconds(stepsLeft: 5, savesLeft: 1) == nil)
        time.addStep(seconds: 1)
        time.addStep(seconds: 3)
        #expect(time.seconds(stepsLeft: 10, savesLeft: 2) == 20, "no save timed yet: steps only")
        time.addSave(seconds: 30)
        time.addSave(seconds: 10)
        #expect(time.seconds(stepsLeft: 10, savesLeft: 2) == 60)
        #expect(time.seconds(stepsLeft: -3, savesLeft: -1) == 0)
    }

    @Test func savingShowsOnTheBarAndCountsInTheETA() {
        let fake = Fake()
        let display = Self.display(fake, isTerminal: true)
        for step in 1...4 {
            fake.seconds += 2
            display.update(step: step, fields: [("loss", "1.0")])
        }
        #expect(fake.lastDrawn.hasSuffix("4/10  loss 1.0  eta 12s"), "6 steps of 2 s left, no save timed: \(fake.lastDrawn)")
        display.beginSave("saving checkpoint-4…")
        #expect(fake.lastDrawn.hasSuffix("4/10  saving checkpoint-4…  loss 1.0  eta 12s"), "\(fake.lastDrawn)")
        fake.seconds += 20
        display.endSave(message: "saved run/checkpoint-4")
        #expect(fake.text.contains(ProgressDisplay.clearLine + "saved run/checkpoint-4\n"), "the message has a line of its own")
        #expect(fake.lastDrawn.hasSuffix("4/10  loss 1.0  eta 52s"), "6 steps of 2 s and 2 saves of 20 s: \(fake.lastDrawn)")
        fake.seconds += 2
        display.update(step: 5, fields: [("loss", "0.9")])
        #expect(fake.lastDrawn.hasSuffix("5/10  loss 0.9  eta 30s"), "the save is not a slow step: \(fake.lastDrawn)")
        display.finish()
        #expect(fake.text.hasSuffix("5/10  loss 0.9  eta 30s\n"), "the bar's line is ended")
        display.message("done")
        #expect(fake.text.hasSuffix("\n" + ProgressDisplay.clearLine + "done\n"), "after the ended bar")
    }

    @Test func plainLinesShowNoPhase() {
        let fake = Fake()
        let display = Self.display(fake, isTerminal: false)
        fake.seconds += 1
        display.update(step: 1, fields: [("loss", "1.0")])
        display.beginSave("saving checkpoint-1…")
        fake.seconds += 5
        display.endSave(message: "saved run/checkpoint-1")
        display.finish()
        #expect(fake.text == "step 1/10  loss 1.0  eta 9s\nsaved run/checkpoint-1\n")
    }
}

/// `finetune` on a pseudo-terminal 50 columns wide (util-linux `script`): no drawn line is wider than the
/// terminal, and messages such as `saved …/checkpoint-2` stand on their own lines.
@Suite(.serialized) struct ProgressTerminalTests {
    /// Runs `words` (shell words, already quoted) in a pseudo-terminal `columns` wide and returns what stays on
    /// screen: the output split at line ends, carriage returns and erase-line sequences. Expects exit status 0.
    static func runInTerminal(script: String, columns: Int, _ words: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws -> [Substring] {
        let (status, output) = try runChildProcess(script, ["-qec", (["stty cols \(columns);"] + words).joined(separator: " "), "/dev/null"])
        #expect(status == 0, "\(output)", sourceLocation: sourceLocation)
        return output.replacingOccurrences(of: "\u{1B}[2K", with: "\r").split(whereSeparator: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
    }

    @Test func finetuneOnANarrowTerminal() throws {
        let script = "/usr/bin/script"
        guard FileManager.default.isExecutableFile(atPath: script), let executable = CommandTests.executable else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let segments = try Self.runInTerminal(script: script, columns: 50, [executable, "finetune", "--model", Fixtures.path("tiny-gpt2"),
            "--tokenizer", CommandTests.tokenizer, "--context", "'\(CommandTests.context)'", "--label", "'\(CommandTests.label)'",
            "--steps", "4", "--save-every", "2", "--out", dir + "/run"])
        let bars = segments.filter { $0.hasPrefix("[") }
        #expect(bars.count >= 4 && bars.allSatisfy { $0.count <= 49 }, "\(bars)")
        #expect(segments.contains { $0 == "saved \(dir)/run/checkpoint-2" }, "\(segments)")
    }

    /// On a wide terminal the bar shows the save under way and keeps the last eval loss after an evaluation.
    @Test func finetuneShowsSavingAndKeepsTheEvalLoss() throws {
        let script = "/usr/bin/script"
        guard FileManager.default.isExecutableFile(atPath: script), let executable = CommandTests.executable else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("{\"context\": \"\(CommandTests.context)\", \"label\": \"\(CommandTests.label)\"}\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/eval.jsonl"))
        let segments = try Self.runInTerminal(script: script, columns: 150, [executable, "finetune", "--model", Fixtures.path("tiny-gpt2"),
            "--context", "'\(CommandTests.context)'", "--label", "'\(CommandTests.label)'", "--steps", "5", "--save-every", "2",
            "--eval-data", dir + "/eval.jsonl", "--eval-every", "2", "--out", dir + "/run"])
        let bars = segments.filter { $0.hasPrefix("[") }
        #expect(bars.contains { $0.contains("2/5  saving checkpoint-2…") }, "\(bars)")
        #expect(bars.contains { $0.contains("5/5  saving \(dir)/run…") }, "the final save: \(bars)")
        #expect(segments.contains { $0.hasPrefix("step 2: eval loss ") }, "\(segments)")
        // Step 3 did not evaluate; its bar still shows step 2's eval loss.
        let third = try #require(bars.first { $0.contains(" 3/5  loss ") }, "\(bars)")
        #expect(third.contains("  eval "), "\(third)")
        #expect(!bars.contains { $0.contains(" 1/5  ") && $0.contains(" eval ") }, "no eval before the first evaluation")
        // The bar's line ends before the summary.
        #expect(segments.last?.hasPrefix("loss ") == true, "\(segments.suffix(3))")
    }
}
