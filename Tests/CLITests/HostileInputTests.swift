import Foundation
import GPT2Kit
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The classes of failure the first release's probe found (hostile files round two), each through the command
/// or the library call a user reaches it by. Every command must end with a typed error (exit status 1), never a
/// signal, a hang or a touched file outside its output folder.
@Suite(.serialized) struct HostileInputTests {
    static let tokenizer = Fixtures.path("gpt2-tokenizer")

    static func run(_ arguments: [String], seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandTests.Result {
        try CommandTests.run(arguments, seconds: seconds, sourceLocation: sourceLocation)
    }

    /// Expects a clean refusal: the process exited (no signal) with status 1 and one `error:` line mentioning `text`.
    static func expectRefused(_ r: CommandTests.Result, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.exited, "killed by a signal: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("error:") && r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    }

    // MARK: 1. Nothing outside the output folder is removed

    @Test func craftedIndexInOutputFolderCannotRemoveAnythingOutsideIt() throws {
        let parent = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let fm = FileManager.default
        let out = parent + "/out", sibling = parent + "/sibling"
        try fm.createDirectory(atPath: out + "/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: sibling, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: parent + "/keep.txt"))
        try Data("keep".utf8).write(to: URL(fileURLWithPath: sibling + "/keep.txt"))
        try fm.createSymbolicLink(atPath: out + "/link.safetensors", withDestinationPath: parent + "/keep.txt")
        try fm.createSymbolicLink(atPath: out + "/dirlink", withDestinationPath: sibling)
        let shards = ["..", ".", "", "/", "../keep.txt", parent + "/keep.txt", "../sibling", "sub", "sub/..", "./..",
                      "link.safetensors", "dirlink/keep.txt", "sub/../../keep.txt"]
        for index in ["model.safetensors.index.json", "pytorch_model.bin.index.json"] {
            let map = Dictionary(uniqueKeysWithValues: shards.enumerated().map { ("t\($0.offset)", $0.element) })
            try JSONSerialization.data(withJSONObject: ["weight_map": map]).write(to: URL(fileURLWithPath: out + "/" + index))
        }
        for command in [["convert", Fixtures.path("micro-gpt2"), out], ["init", "--config", Fixtures.path("micro-gpt2/config.json"), "--out", out]] {
            let r = try Self.run(command)
            #expect(r.exited && r.status == 0, "\(command[0]): \(r.stderr)")
            #expect(fm.fileExists(atPath: parent + "/keep.txt"), "\(command[0]) removed a file outside its output folder")
            #expect(fm.fileExists(atPath: sibling + "/keep.txt"), "\(command[0]) removed a file outside its output folder")
            #expect(fm.fileExists(atPath: out + "/sub"), "\(command[0]) removed a folder")
            #expect(!fm.fileExists(atPath: out + "/model.safetensors.index.json"), "the stale index is removed")
        }
    }

    @Test func shardNamesAreCheckedTheSameForReading() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let index = dir + "/model.safetensors.index.json"
        for shard in ["..", ".", "a/./b", "../x", "/etc/passwd", "a\u{0}b"] {
            #expect(throws: CheckpointError.self, "\(shard)") { try ShardedCheckpoint.shardPath(indexPath: index, shard: shard) }
        }
    }

    // MARK: 2. Traps on input

    @Test func emptyTensorsWithHugeOtherDimensionsLoadLikeTorch() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var dict = StateDict()
        dict["empty"] = Tensor(zeros: .f32, shape: [0, 1 << 40, 1 << 40])
        dict["other"] = Tensor(zeros: .f32, shape: [1 << 62, 0, 4])
        try TorchCheckpointWriter.write(dict, to: dir + "/empty.bin")
        try SafetensorsWriter.write(dict, to: dir + "/empty.safetensors")
        for file in ["empty.bin", "empty.safetensors"] {
            let read = try CheckpointReader.read(path: dir + "/" + file)
            #expect(read["empty"]?.shape == [0, 1 << 40, 1 << 40])
            #expect(read["other"]?.elementCount == 0)
            let r = try Self.run(["inspect", dir + "/" + file])
            #expect(r.exited && r.status == 0, "\(r.stderr)")
        }
    }

    @Test func editedTrainerStateIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--tokenizer", Self.tokenizer, "--context", "Harry Potter is a series of", "--label", "seven fantasy novels"]
        let first = try Self.run(["finetune", "--model", Fixtures.path("tiny-gpt2"), "--steps", "3", "--stop-after", "2", "--out", dir + "/run"] + common)
        #expect(first.status == 0, "\(first.stderr)")
        let statePath = dir + "/run/trainer_state/trainer_state.json"
        let original = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any])
        func edited(_ change: (inout [String: Any], inout [String: Any], inout [String: Any]) -> Void) -> [String: Any] {
            var state = original
            var progress = state["progress"] as? [String: Any] ?? [:]
            var options = state["options"] as? [String: Any] ?? [:]
            change(&state, &progress, &options)
            state["progress"] = progress
            state["options"] = options
            return state
        }
        let cases: [(String, [String: Any])] = [
            ("epoch", edited { _, p, _ in p["epoch"] = Int.max }),
            ("step", edited { _, p, _ in p["step"] = Int.max }),
            ("losses", edited { _, p, _ in p["losses"] = [] }),
            ("position", edited { _, p, _ in p["positionInEpoch"] = -5 }),
            ("exportFormat", edited { s, _, _ in s["exportFormat"] = "zip" }),
            ("batch", edited { _, _, o in o["batchSize"] = 0 }),
            ("grad-accum", edited { _, _, o in o["gradientAccumulation"] = Int.max }),
            ("lr", edited { _, _, o in o["learningRate"] = -1 }),
            ("dropout", edited { s, _, _ in s["dropout"] = 7 }),
            ("totalSteps", edited { s, _, _ in s["totalSteps"] = -3 }),
            ("formatVersion", edited { s, _, _ in s["formatVersion"] = 99 }),
        ]
        for (what, state) in cases {
            try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: statePath))
            let r = try Self.run(["finetune", "--resume", dir + "/run", "--out", dir + "/run"] + common)
            #expect(r.exited && r.status == 1, "\(what): status \(r.status), \(r.stderr)")
            #expect(r.stderr.contains("error:"), "\(what): \(r.stderr)")
        }
    }

    // MARK: 4. Linear time on long names and many added tokens

    @Test func megabyteTensorNamesAreMatchedInLinearTime() throws {
        let config = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("micro-gpt2/config.json"))))
        // 2.4 MB of "transformer/" took 84 s with the quadratic suffix search.
        let name = String(repeating: "transformer/", count: 200_000) + "wte/weight:0"
        var dict = StateDict()
        dict[name] = Tensor(zeros: .f32, shape: [1])
        #expect(throws: StateDictError.self) { try GPT2Parameters(config: config, stateDict: dict) }
        let bytes = Array(name.utf8)
        var header = Array("{\"".utf8) + bytes + Array("\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".utf8)
        while header.count % 8 != 0 { header.append(32) }
        var file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        file += [0, 0, 0, 0]
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(file).write(to: URL(fileURLWithPath: dir + "/long.safetensors"))
        #expect(throws: SafetensorsError.self) { try SafetensorsReader.read(path: dir + "/long.safetensors") }
    }

    @Test func manyAddedTokensLoadAndEncodeInLinearTime() throws {
        var tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: Self.tokenizer))
        let tokens = (0..<20_000).map { "<tok\($0)>" }
        let ids = try tokenizer.addTokens(tokens)
        #expect(ids.first == 50257 && ids.last == 50257 + 19_999)
        // 100 KB of text full of near-matches and matches.
        var text = ""
        for i in 0..<8_000 { text += "<tok\(i)> <to" }
        let encoded = tokenizer.encode(text)
        #expect(encoded.filter { $0 >= 50257 }.count == 8_000)
        #expect(tokenizer.encode("a<tok19999>b<tok1>") == tokenizer.encode("a") + [50257 + 19_999] + tokenizer.encode("b") + [50258])
        // Leftmost-longest: "<tok1>" and "<tok1>x" both added, the longer wins where it matches.
        let longer = try tokenizer.addTokens(["<tok1>x"])[0]
        #expect(tokenizer.encode("<tok1>x<tok1>") == [longer, 50258])
        #expect(throws: TokenizerError.addedTokenTooLong(bytes: 5000, limit: GPT2Tokenizer.maximumAddedTokenBytes)) {
            try tokenizer.addTokens([String(repeating: "x", count: 5000)])
        }
    }

    // MARK: 5. Only regular files are read

    @Test func fifosWhereFilesAreExpectedAreRefusedAtOnce() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        func folder(_ name: String, fifo: String) throws -> String {
            let path = dir + "/" + name
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            for file in ["config.json", "model.safetensors"] where file != fifo {
                try fm.copyItem(atPath: Fixtures.path("micro-gpt2/" + file), toPath: path + "/" + file)
            }
            for file in ["vocab.json", "merges.txt"] where file != fifo {
                try fm.copyItem(atPath: Self.tokenizer + "/" + file, toPath: path + "/" + file)
            }
            #expect(mkfifo(path + "/" + fifo, 0o644) == 0)
            return path
        }
        let weights = try folder("weights", fifo: "model.safetensors")
        Self.expectRefused(try Self.run(["inspect", weights], seconds: 30), mentioning: "not a regular file")
        Self.expectRefused(try Self.run(["convert", weights, dir + "/out1"], seconds: 30), mentioning: "not a regular file")
        let config = try folder("config", fifo: "config.json")
        Self.expectRefused(try Self.run(["eval", "--model", config, "--context", "a", "--label", "b"], seconds: 30), mentioning: "not a regular file")
        let vocab = try folder("vocab", fifo: "vocab.json")
        Self.expectRefused(try Self.run(["tokenize", "--tokenizer", vocab, "hello"], seconds: 30), mentioning: "not a regular file")
        #expect(mkfifo(dir + "/data.jsonl", 0o644) == 0)
        Self.expectRefused(try Self.run(["finetune", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer,
                                         "--data", dir + "/data.jsonl", "--out", dir + "/run"], seconds: 30), mentioning: "not a regular file")
        // A symlink to a regular file is a regular file.
        try fm.createSymbolicLink(atPath: dir + "/linked.safetensors", withDestinationPath: Fixtures.path("micro-gpt2/model.safetensors"))
        #expect(try CheckpointReader.read(path: dir + "/linked.safetensors").count > 0)
        #expect(throws: InputFileError.self) { try InputFile.readBytes("/dev/zero") }
    }

    // MARK: 6. Allocations beyond the machine are refused with the figure

    @Test func configsBeyondMemoryAreRefusedBeforeAllocating() throws {
        // 14.5 B parameters: 58 GB of weights, within the parameter limit.
        let config: [String: Any] = ["n_embd": 4096, "n_head": 32, "n_layer": 72, "vocab_size": 50257, "n_positions": 1024]
        guard MemoryBudget.availableBytes < 58 << 30 else { return }  // a machine that can hold it would just allocate
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        Self.expectRefused(try Self.run(["init", "--config", dir + "/config.json", "--out", dir + "/big"]), mentioning: "needs")
        #expect(throws: InsufficientMemory.self) { try MemoryBudget.check(bytes: MemoryBudget.availableBytes + 1, for: "a test") }
        #expect(throws: InsufficientMemory.self) { try MemoryBudget.check(bytes: nil, for: "an overflow") }
        try MemoryBudget.check(bytes: 1 << 20, for: "a megabyte")
    }

    @Test func generationBeyondMemoryIsRefused() throws {
        let (model, _) = try ModelIO.loadModel(path: Fixtures.path("tiny-gpt2"), trainsBase: true)
        // 150,000 rows: logits of 150,000 × 50257 floats (30 GB), under the float-count limit of each buffer.
        guard MemoryBudget.availableBytes < 30 << 30 else { return }
        let error = #expect(throws: GenerationError.self) { try KVCacheDecoder(model: model, batchSize: 150_000, capacity: 64) }
        if case let .insufficientMemory(e)? = error {
            #expect(e.neededBytes ?? 0 > MemoryBudget.availableBytes)
        } else {
            Issue.record("expected insufficientMemory, got \(String(describing: error))")
        }
    }

    // MARK: 7. One process per run folder

    @Test func secondRunOnALockedFolderIsRefusedAtOnce() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lock = try RunFolderLock(folder: dir + "/run")
        let start = Date()
        let r = try Self.run(["finetune", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer, "--context", "a",
                              "--label", "b", "--steps", "1", "--out", dir + "/run"], seconds: 30)
        Self.expectRefused(r, mentioning: "locked")
        #expect(Date().timeIntervalSince(start) < 30)
        withExtendedLifetime(lock) {}
        #expect(throws: TrainingRunError.folderInUse(path: dir + "/run")) { try RunFolderLock(folder: dir + "/run") }
    }

    // MARK: 9. A mapped file that shrinks

    @Test func weightsTruncatedWhileInUseEndWithAnErrorLineNotACrash() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let executable = CommandTests.executable else { Issue.record("no gpt2kit executable"); return }
        for (attempt, delay) in [0, 20_000, 60_000, 150_000].enumerated() {
            let folder = dir + "/m\(attempt)"
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gpt2"), toPath: folder)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["eval", "--model", folder, "--tokenizer", Self.tokenizer, "--context", "a", "--label", "b"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(delay))
            #expect(truncate(folder + "/model.safetensors", 4096) == 0)
            process.waitUntilExit()
            // Depending on the moment: refused at open, SIGBUS turned into an error line, or already done.
            #expect(process.terminationReason == .exit && process.terminationStatus <= 1,
                    "delay \(delay) µs: \(process.terminationReason == .exit ? "status" : "signal") \(process.terminationStatus)")
        }
    }

    // MARK: 8. Leftovers of killed runs, and kill-and-resume

    static func leftovers(in run: String) -> [String] {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: run) else { return [] }
        var found: [String] = []
        for case let relative as String in walker {
            let name = (relative as NSString).lastPathComponent
            if AtomicFileWriter.isTemporaryName(name) || name.hasSuffix(".partial") || name.hasSuffix(".replaced") { found.append(relative) }
        }
        return found
    }

    @Test func leftoversOfAnInterruptedSaveAreRemovedOnTheNextStart() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let run = dir + "/run"
        let common = ["--tokenizer", Self.tokenizer, "--context", "Harry Potter is a series of", "--label", "seven fantasy novels"]
        let first = try Self.run(["finetune", "--model", Fixtures.path("tiny-gpt2"), "--steps", "4", "--save-every", "1",
                                  "--stop-after", "2", "--out", run] + common)
        #expect(first.status == 0, "\(first.stderr)")
        try fm.createDirectory(atPath: run + "/.checkpoint-3.partial/trainer_state", withIntermediateDirectories: true)
        for file in ["/.model.safetensors.tmp-Ab12Cd", "/trainer_state/.optimizer.safetensors.tmp-x1y2z3", "/checkpoint-1/.dat.nosyncAbCd.XyZ",
                     "/.tf_model.h5.tmp-123-456"] {
            try Data(count: 100).write(to: URL(fileURLWithPath: run + file))
        }
        // A checkpoint moved aside for its replacement and never replaced is put back, not removed.
        try fm.moveItem(atPath: run + "/checkpoint-1", toPath: run + "/.checkpoint-1.replaced")
        let second = try Self.run(["finetune", "--resume", run, "--out", run] + common)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(Self.leftovers(in: run).isEmpty, "left: \(Self.leftovers(in: run))")
        #expect(fm.fileExists(atPath: run + "/checkpoint-1/model.safetensors"))
    }

    @Test func killedRunsResumeToTheSameBytesAndLeaveNothingBehind() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let executable = CommandTests.executable else { Issue.record("no gpt2kit executable"); return }
        let data = dir + "/train.jsonl"
        try Data(("{\"context\": \"Harry Potter is a series of\", \"label\": \"seven fantasy novels\"}\n"
                  + "{\"prompt\": \"The capital of France is\", \"completion\": \" Paris\"}\n").utf8).write(to: URL(fileURLWithPath: data))
        let steps = 6
        let options = ["--tokenizer", Self.tokenizer, "--data", data, "--lr", "5e-4", "--seed", "3", "--dropout", "0.1"]
        let fresh = ["finetune", "--model", Fixtures.path("tiny-gpt2"), "--steps", String(steps), "--save-every", "1"] + options
        let straight = try Self.run(fresh + ["--out", dir + "/straight"])
        #expect(straight.status == 0, "\(straight.stderr)")
        // Time one run to spread the kill points over it.
        let started = Date()
        _ = try Self.run(fresh + ["--out", dir + "/timing"])
        let duration = Date().timeIntervalSince(started)
        var generator = SeededGenerator(state: 11)
        for attempt in 0..<4 {
            let run = dir + "/killed\(attempt)"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = fresh + ["--out", run]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let fraction = Double(generator.next() % 1000) / 1000
            usleep(UInt32(duration * (0.1 + 0.85 * fraction) * 1_000_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // Resume (or start again when no save was complete), then compare with the uninterrupted run.
            var r = try Self.run(["finetune", "--resume", run, "--out", run] + options)
            if r.status != 0, r.stderr.contains("no trainer_state") { r = try Self.run(fresh + ["--out", run]) }
            #expect(r.status == 0, "attempt \(attempt): \(r.stderr)")
            for file in ["model.safetensors", "trainer_state/optimizer.safetensors"] {
                let a = FileManager.default.contents(atPath: dir + "/straight/" + file), b = FileManager.default.contents(atPath: run + "/" + file)
                #expect(a != nil && a == b, "attempt \(attempt) (killed at \(fraction)): \(file) differs from the uninterrupted run")
            }
            #expect(Self.leftovers(in: run).isEmpty, "attempt \(attempt): left \(Self.leftovers(in: run))")
        }
    }
}
