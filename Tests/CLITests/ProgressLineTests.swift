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

    @Test func terminalColumnsFallsBackTo80() {
        // Under `swift test` stdout and stderr are usually pipes; on a terminal the width is its own.
        #expect(Console.terminalColumns() > 0)
    }
}

import Foundation
import TestSupport

/// `finetune` on a pseudo-terminal 50 columns wide (util-linux `script`): no drawn line is wider than the
/// terminal, and messages such as `saved …/checkpoint-2` stand on their own lines.
@Suite(.serialized) struct ProgressTerminalTests {
    @Test func finetuneOnANarrowTerminal() throws {
        let script = "/usr/bin/script"
        guard FileManager.default.isExecutableFile(atPath: script), let executable = CommandTests.executable else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let command = ["stty cols 50;", executable, "finetune", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer,
                       "--context", "'\(CommandTests.context)'", "--label", "'\(CommandTests.label)'", "--steps", "4", "--save-every", "2",
                       "--out", dir + "/run"].joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["-qec", command, "/dev/null"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        // What stays on screen: split at line ends, carriage returns and erase-line sequences.
        let segments = output.replacingOccurrences(of: "\u{1B}[2K", with: "\r").split(whereSeparator: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
        let bars = segments.filter { $0.hasPrefix("[") }
        #expect(bars.count >= 4 && bars.allSatisfy { $0.count <= 49 }, "\(bars)")
        #expect(segments.contains { $0 == "saved \(dir)/run/checkpoint-2" }, "\(segments)")
    }
}
