import Foundation
import GPT2Kit
import Testing
import TestSupport

/// One error path: every failure, argument errors included, is one `error: <flag or file>: <problem>` line first
/// on stderr and exit status 1; `--help` and `--version` print to stdout with status 0.
@Suite(.serialized) struct ErrorLineTests {
    static var model: String { Fixtures.path("tiny-gpt2") }

    /// Expects status 1, nothing on stdout, and `error: <expected>` as the first stderr line.
    static func expectErrorLine(_ arguments: [String], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try CommandTests.run(arguments, sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(r.exited && r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first == "error: " + expected, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Usage:") && !r.stderr.contains("Error:"), "argument-parser's text: \(r.stderr)", sourceLocation: sourceLocation)
        // At most a hint line after the error line.
        #expect(lines.filter { !$0.isEmpty }.count <= 2, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func argumentErrorsAreOneErrorLineWithStatus1() throws {
        let pair = ["--model", Self.model, "--tokenizer", CommandTests.tokenizer, "--context", "a", "--label", "b"]
        try Self.expectErrorLine(["finetune"] + pair + ["--data", "x.jsonl", "--out", "/nonexistent/run"],
                                 "--data: give either --data or --context/--label, not both")
        try Self.expectErrorLine(["init", "--out", "/nonexistent/x", "--format", "bogus"],
                                 "--format: 'bogus' is not a valid value; expected one of 'safetensors', 'pytorch' or 'h5'")
        try Self.expectErrorLine(["convert", Self.model, "/nonexistent/y", "--format", "bogus"],
                                 "--format: must be safetensors, pytorch, h5, gguf or llmc")
        try Self.expectErrorLine(["finetune", "--model", Self.model], "--out: required option missing")
        try Self.expectErrorLine(["finetune", "--out", "/nonexistent/run", "--lr"], "--lr: missing value")
        try Self.expectErrorLine(["finetune", "--out", "/nonexistent/run", "--lr", "fast"], "--lr: 'fast' is not a valid value")
        try Self.expectErrorLine(["eval", "--model", Self.model, "--contxt", "a"], "--contxt: unknown option (did you mean '--context'?)")
        try Self.expectErrorLine(["inspect"], "<path>: required argument missing")
    }

    /// A negative number is the option's value, so the option's own check names it (not "missing value").
    @Test func negativeNumbersAreValues() throws {
        let pair = ["--model", Self.model, "--tokenizer", CommandTests.tokenizer, "--context", "a", "--label", "b"]
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.expectErrorLine(["finetune"] + pair + ["--out", dir + "/run", "--lr", "-1"], "--lr: -1.0 is not a finite number >= 0")
        try Self.expectErrorLine(["finetune"] + pair + ["--out", dir + "/run", "--warmup", "-3"], "--warmup: -3 is negative")
        try Self.expectErrorLine(["generate", "--model", Self.model, "--tokenizer", CommandTests.tokenizer, "--prompt", "a",
                                  "--no-repeat-ngram-size", "-2"], "--no-repeat-ngram-size: -2 is not an integer >= 0 (0 disables)")
    }

    @Test func mistypedSubcommandSaysSoAndSuggestsTheClosest() throws {
        try Self.expectErrorLine(["finetun", "--model", Self.model], "unknown command 'finetun' (did you mean 'finetune'?)")
        try Self.expectErrorLine(["frobnicate"], "unknown command 'frobnicate'")
        let r = try CommandTests.run(["finetun"])
        #expect(r.stderr.contains("see 'gpt2kit --help'"))
    }

    @Test func versionAndHelpExit0() throws {
        let version = try CommandTests.succeed(["--version"])
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == GPT2KitVersion.current)
        for arguments in [["--help"], ["-h"], ["finetune", "--help"], ["help", "generate"]] {
            let r = try CommandTests.succeed(arguments)
            #expect(r.stdout.contains("USAGE:") && r.stderr.isEmpty, "\(arguments): \(r.stdout) \(r.stderr)")
        }
    }
}
