import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GPT2Kit
@testable import GPT2KitCLI
import Testing
import TestSupport

/// Stopping a fine-tuning run on request: the library's `shouldStop` (cancelled after step N → a typed
/// `cancelled` error naming the newest checkpoint, nothing more written), its save schedule for the ETA, and
/// `gpt2kit finetune` under SIGINT (the resume command it prints, exit status 130).
@Suite(.serialized) struct FinetuneInterruptTests {
    static let examples = [TrainingExample(contextIDs: [18308, 14179, 318, 257, 2168, 286], labelIDs: [26548, 8842, 16122]),
                           TrainingExample(contextIDs: [464, 3139, 286, 4881, 318], labelIDs: [6342])]

    static func settings(out: String, steps: Int, saveEvery: Int = 0, resume: String? = nil) -> FineTuningSettings {
        var settings = FineTuningSettings(output: out)
        settings.model = resume == nil ? Fixtures.path("tiny-gpt2") : nil
        settings.resume = resume
        settings.tokenizerFolder = Fixtures.path("gpt2-tokenizer")
        settings.saveEvery = saveEvery
        var options = TrainingOptions()
        options.steps = steps
        options.learningRate = 1e-3
        settings.options = options
        return settings
    }

    static func makeRun(_ settings: FineTuningSettings) throws -> FineTuningRun {
        try FineTuningRun(settings: settings) { _, _ in (Self.examples, [TrainingExample]()) }
    }

    /// Runs with `shouldStop` true once `stopAfterStep` steps have been reported; returns the error and the events.
    static func cancel(_ run: FineTuningRun, afterStep stopAfterStep: Int) -> (error: TrainingRunError?, events: [String]) {
        var steps = 0, events: [String] = []
        do {
            try run.run(shouldStop: { steps >= stopAfterStep }) { event in
                switch event {
                case let .step(report): steps = report.step; events.append("step \(report.step)")
                case let .savingCheckpoint(path): events.append("saving " + (path as NSString).lastPathComponent)
                case let .checkpointSaved(path): events.append("saved " + (path as NSString).lastPathComponent)
                case .savingResult: events.append("saving result")
                default: break
                }
            }
        } catch let error as TrainingRunError {
            return (error, events)
        } catch {
            Issue.record("unexpected error \(error)")
        }
        return (nil, events)
    }

    @Test func cancelAfterAStepNamesTheNewestCheckpoint() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/run"
        let (error, events) = Self.cancel(try Self.makeRun(Self.settings(out: out, steps: 10, saveEvery: 2)), afterStep: 5)
        #expect(error == .cancelled(step: 5, resumeFrom: out + "/checkpoint-4"))
        #expect(events == ["step 1", "step 2", "saving checkpoint-2", "saved checkpoint-2", "step 3", "step 4",
                           "saving checkpoint-4", "saved checkpoint-4", "step 5"])
        // Nothing is written after the request: no result, no loss curve, no checkpoint-5.
        let names = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasPrefix(".") }.sorted()
        #expect(names == ["checkpoint-2", "checkpoint-4"])
        #expect(try TrainingRun.resumableFolder(out) == out + "/checkpoint-4")
    }

    @Test func cancelBeforeAnyCheckpointHasNothingToResume() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (error, events) = Self.cancel(try Self.makeRun(Self.settings(out: dir + "/run", steps: 10, saveEvery: 4)), afterStep: 3)
        #expect(error == .cancelled(step: 3, resumeFrom: nil))
        #expect(events == ["step 1", "step 2", "step 3"])
        // Asked before the first step: no step runs.
        let (before, none) = Self.cancel(try Self.makeRun(Self.settings(out: dir + "/run0", steps: 10)), afterStep: 0)
        #expect(before == .cancelled(step: 0, resumeFrom: nil))
        #expect(none.isEmpty)
    }

    /// A stop asked at the last step is too late to skip anything: the run writes its result as usual.
    @Test func aStopAtTheLastStepStillSavesTheResult() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (error, events) = Self.cancel(try Self.makeRun(Self.settings(out: dir + "/run", steps: 3)), afterStep: 3)
        #expect(error == nil)
        #expect(events.last == "saving result")
        #expect(FileManager.default.fileExists(atPath: dir + "/run/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: dir + "/run/loss_curve.svg"))
    }

    /// Resuming from what `cancelled` names continues bit-identically to a run that was never stopped; a resumed run
    /// stopped before its next checkpoint names the folder it resumed from.
    @Test func theNamedCheckpointResumesBitIdentically() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makeRun(Self.settings(out: dir + "/straight", steps: 6)).run()
        let (error, _) = Self.cancel(try Self.makeRun(Self.settings(out: dir + "/b", steps: 6, saveEvery: 2)), afterStep: 3)
        guard case let .cancelled(_, resumeFrom?) = error else { Issue.record("not cancelled with a checkpoint: \(String(describing: error))"); return }
        #expect(resumeFrom == dir + "/b/checkpoint-2")
        let again = Self.cancel(try Self.makeRun(Self.settings(out: dir + "/b", steps: 6, saveEvery: 4, resume: resumeFrom)), afterStep: 3)
        #expect(again.error == .cancelled(step: 3, resumeFrom: resumeFrom))
        try Self.makeRun(Self.settings(out: dir + "/b", steps: 6, resume: resumeFrom)).run()
        for file in ["model.safetensors", "trainer_state/optimizer.safetensors"] {
            let a = FileManager.default.contents(atPath: dir + "/straight/" + file), b = FileManager.default.contents(atPath: dir + "/b/" + file)
            #expect(a != nil && a == b, "\(file) differs between the straight and the interrupted-and-resumed run")
        }
    }

    @Test func saveScheduleCountsCheckpointsAndTheResult() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try Self.makeRun(Self.settings(out: dir + "/run", steps: 20, saveEvery: 5))
        #expect(run.lastStep == 20)
        // Checkpoints at 5, 10, 15 (not 20, the last step: the result is saved there), plus the result.
        #expect([0, 1, 5, 6, 10, 15, 16, 19, 20].map(run.savesRemaining(after:)) == [4, 4, 4, 3, 3, 2, 1, 1, 1])
        var settings = Self.settings(out: dir + "/run2", steps: 20, saveEvery: 5)
        settings.stopAfter = 12
        let stopping = try Self.makeRun(settings)
        #expect(stopping.lastStep == 12)
        #expect([0, 10, 11, 12].map(stopping.savesRemaining(after:)) == [3, 2, 1, 1])
        let unsaved = try Self.makeRun(Self.settings(out: dir + "/run3", steps: 20))
        #expect([0, 7, 20].map(unsaved.savesRemaining(after:)) == [1, 1, 1])
    }

    // MARK: The command line

    static func finetuneCommand(_ arguments: [String]) throws -> FinetuneCommand {
        try #require(try GPT2KitCommand.parseAsRoot(["finetune"] + arguments) as? FinetuneCommand)
    }

    @Test func interruptedMessageNamesTheResumeCommand() throws {
        let command = try Self.finetuneCommand(["--model", "m", "--out", "runs/x", "--data", "train.jsonl", "--data", "more data.jsonl",
                                                "--eval-data", "val.jsonl", "--tokenizer", "tok", "--steps", "50", "--save-every", "5",
                                                "--lr", "1e-3", "--json"])
        #expect(command.interruptedMessage(step: 7, resumeFrom: "runs/x/checkpoint-5", processes: 1)
                == "interrupted at step 7; resume with: gpt2kit finetune --resume runs/x/checkpoint-5 --out runs/x --tokenizer tok "
                + "--data train.jsonl --data 'more data.jsonl' --eval-data val.jsonl --steps 50 --save-every 5 --json")
        #expect(command.interruptedMessage(step: 3, resumeFrom: nil, processes: 1) == "interrupted at step 3; no checkpoint saved yet; nothing to resume")
        let pair = try Self.finetuneCommand(["--model", "m", "--out", "o", "--context", "it's", "--label", "x y"])
        #expect(pair.resumeCommand(from: "o", processes: 4) == #"mpirun -np 4 gpt2kit-mpi finetune --resume o --out o --context 'it'\''s' --label 'x y'"#)
        #expect(pair.interruptedMessage(step: 3, resumeFrom: nil, processes: 1).hasSuffix("(--save-every N writes checkpoint-N/ folders)"))
    }

    /// SIGINT to `gpt2kit finetune`: it stops at a step boundary, says where to resume from, exits 130, and the
    /// command it prints continues the run.
    @Test func sigintStopsTheCommandAndItsResumeCommandWorks() throws {
        guard let executable = CommandTests.executable else { Issue.record("no gpt2kit executable"); return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/run"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["finetune", "--model", Fixtures.path("tiny-gpt2"), "--context", CommandTests.context, "--label", CommandTests.label,
                             "--steps", "100000", "--save-every", "3", "--save-total-limit", "2", "--out", out, "--json"]
        let stdout = Pipe()
        let errPath = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let err = try #require(FileHandle(forWritingAtPath: errPath))
        process.standardOutput = stdout
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Wait for step 4 (checkpoint-3 is then written or being written), then interrupt.
        var seen = ""
        let deadline = Date().addingTimeInterval(300)
        while !seen.contains("\"step\":4,") && !seen.contains("\"step\":4}") && Date() < deadline {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(process.processIdentifier, SIGINT)
        seen += String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try err.close()
        let stderr = String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self)
        #expect(process.terminationReason == .exit && process.terminationStatus == 130, "status \(process.terminationStatus): \(stderr)")
        let lastStep = seen.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
        }.last ?? -1
        #expect(lastStep >= 4 && lastStep < 100_000, "\(seen.suffix(300))")
        let checkpoint = "\(out)/checkpoint-\(lastStep / 3 * 3)"
        let expected = "interrupted at step \(lastStep); resume with: gpt2kit finetune --resume \(checkpoint) --out \(out) "
            + "--context '\(CommandTests.context)' --label '\(CommandTests.label)' --steps 100000 --save-every 3 --save-total-limit 2 --json"
        let lines = stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains(expected), "stderr: \(stderr)")
        #expect(lines.contains { $0.hasPrefix("interrupt: stopping after the current step") }, "stderr: \(stderr)")

        // The printed command, one step further, continues from the checkpoint it names.
        let resumed = try CommandTests.succeed(["finetune", "--resume", checkpoint, "--out", out, "--context", CommandTests.context,
                                                "--label", CommandTests.label, "--steps", String(lastStep / 3 * 3 + 1), "--json"])
        #expect(resumed.jsonLines.map { $0["step"] as? Int } == [lastStep / 3 * 3 + 1], "\(resumed.stdout)")
    }
}
