import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GPT2Kit
import Testing
import TestSupport

/// The built `gpt2kit` executable, run as a subprocess on the reference models.
@Suite(.serialized) struct CommandTests {
    struct Result {
        var status: Int32
        var exited: Bool
        var stdout: String
        var stderr: String
        var jsonLines: [[String: Any]] {
            stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], "stdout is not one JSON object: \(stdout)")
        }
    }

    /// The `gpt2kit` product: next to the test bundle (the products directory), else `.build/debug` of the package.
    static let executable: String? = {
        let fm = FileManager.default
        var candidates: [URL] = []
        let argument0 = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0])
        candidates.append(argument0.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        let root = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        candidates.append(root.appendingPathComponent(".build/release"))
        return candidates.map { $0.appendingPathComponent("gpt2kit").path }.first { fm.isExecutableFile(atPath: $0) }
    }()

    /// Runs the built `gpt2kit`; a command still running after `seconds` is killed and recorded as a hang.
    static func run(_ arguments: [String], seconds: Double = 600, sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        guard let executable else {
            Issue.record("gpt2kit executable not found next to the test bundle or in .build/debug; run `swift build --build-tests` first",
                         sourceLocation: sourceLocation)
            throw CancellationError()
        }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outPath = dir + "/stdout", errPath = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let out = try #require(FileHandle(forWritingAtPath: outPath)), err = try #require(FileHandle(forWritingAtPath: errPath))
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("gpt2kit \(arguments.joined(separator: " ")) was still running after \(seconds) s (a hang)", sourceLocation: sourceLocation)
        }
        process.waitUntilExit()
        try out.close(); try err.close()
        return Result(status: process.terminationStatus, exited: process.terminationReason == .exit,
                      stdout: String(decoding: try Data(contentsOf: URL(fileURLWithPath: outPath)), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self))
    }

    /// Runs and expects exit status 0, reporting stderr otherwise.
    @discardableResult
    static func succeed(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        let r = try run(arguments, sourceLocation: sourceLocation)
        #expect(r.exited && r.status == 0, "gpt2kit \(arguments.joined(separator: " ")) exited \(r.status): \(r.stderr)",
                sourceLocation: sourceLocation)
        return r
    }

    static let context = "Harry Potter is a series of", label = "seven fantasy novels"
    static var tokenizer: String { Fixtures.path("gpt2-tokenizer") }

    @Test func executableIsFound() {
        #expect(Self.executable != nil, "gpt2kit executable not found next to the test bundle or in .build/debug")
    }

    @Test(arguments: ["micro-gpt2/model.safetensors", "micro-gpt2"])
    func inspectJSON(relative: String) throws {
        let path = Fixtures.path(relative)
        let o = try Self.succeed(["inspect", "--json", path]).json()
        let location = try ModelLocation(path: path)
        let dict = try ModelIO.readStateDict(location)
        let parameters = try ModelIO.loadParameters(location)
        #expect(o["format"] as? String == "safetensors")
        #expect(o["weights"] as? String == location.weightsPath)
        #expect(o["tensor_count"] as? Int == 28) // 4 global + 12 per block, no lm_head.weight
        #expect(o["tensor_count"] as? Int == dict.count)
        #expect(o["total_bytes"] as? Int == dict.totalByteCount)
        #expect(o["total_bytes"] as? Int == 4 * parameters.layout.totalCount)
        #expect(o["config_check"] as? String == "ok")
        #expect(o["parameter_count"] as? Int == parameters.layout.totalCount)
        #expect((o["tensors"] as? [Any])?.count == 28)
        if relative == "micro-gpt2" {
            let available = try #require(o["available_weights"] as? [String])
            #expect(available.first == location.weightsPath)
            #expect(available.contains { $0.hasSuffix("pytorch_model.bin") } && available.contains { $0.hasSuffix("tf_model.h5") })
        }
    }

    @Test func inspectCorruptFileFailsCleanly() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A safetensors header that claims 1 TiB of JSON.
        let path = dir + "/broken.safetensors"
        var bytes = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { bytes = Array($0) }
        try Data(bytes + Array("{\"a\":1}".utf8)).write(to: URL(fileURLWithPath: path))
        let r = try Self.run(["inspect", path])
        #expect(r.exited, "gpt2kit crashed (signal \(r.status)) on a corrupt file")
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("error:"), "stderr: \(r.stderr)")
        #expect(r.stderr.contains(path), "the error does not name the file: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test(arguments: ExportFormat.allCases)
    func convertToFolderAndFile(format: ExportFormat) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = Fixtures.path("micro-gpt2")
        let reference = try ModelIO.loadParameters(ModelLocation(path: input))
        let folder = dir + "/out"
        let o = try Self.succeed(["convert", input, folder, "--format", format.rawValue, "--json"]).json()
        #expect(o["format"] as? String == format.rawValue)
        #expect(o["dtype"] as? String == DType.f32.rawValue) // the dtype is reported by its safetensors name, "F32"
        let written = try #require(o["written"] as? [String])
        #expect(written.contains(folder + "/" + format.weightsFileName) && written.contains(folder + "/config.json"))
        for w in written { #expect(FileManager.default.fileExists(atPath: w), "\(w) not written") }
        CLIGolden.expectBitIdentical(try ModelIO.loadParameters(ModelLocation(path: folder)), reference, "\(format) folder")

        let file = dir + "/weights." + (format == .pytorch ? "bin" : format == .h5 ? "h5" : "safetensors")
        let f = try Self.succeed(["convert", input, file, "--json"]).json()
        #expect(f["format"] as? String == format.rawValue, "format guessed from the extension")
        #expect(f["written"] as? [String] == [file])
        let back = try ModelIO.loadParameters(ModelLocation(path: file, configPath: input + "/config.json"))
        CLIGolden.expectBitIdentical(back, reference, "\(format) file")
    }

    @Test func tokenizeDetokenizeRoundTrip() throws {
        for (text, ids) in [(Self.context, [18308, 14179, 318, 257, 2168, 286]), (Self.label, [26548, 8842, 16122])] {
            let out = try Self.succeed(["tokenize", "--tokenizer", Self.tokenizer, "--json", text]).stdout
            let parsed = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [Int]
            #expect(parsed == ids, "tokenize \(text): \(out)")
            let back = try Self.succeed(["detokenize", "--tokenizer", Self.tokenizer] + ids.map(String.init)).stdout
            #expect(back == text + "\n")
        }
    }

    @Test func evalMatchesReferenceLoss() throws {
        let g = try CLIGolden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let o = try Self.succeed(["eval", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer,
                                  "--context", Self.context, "--label", Self.label, "--json"]).json()
        // loss: rtol 1e-5 (reference README)
        expectClose(try CLIGolden.double(o["loss"]), try CLIGolden.double(ex["loss"]), rtol: 1e-5, "eval loss")
        #expect(o["label_tokens"] as? Int == 3)
    }

    @Test func finetuneEmitsOneJSONLinePerStep() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let g = try CLIGolden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let seedLosses = try CLIGolden.doubles((g["finetune_seed"] as? [String: Any])?["losses"])
        let r = try Self.succeed(["finetune", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer,
                                  "--context", Self.context, "--label", Self.label, "--steps", "3", "--lr", "5e-4", "--eps", "1e-6",
                                  "--out", dir + "/run", "--json"])
        let lines = r.jsonLines
        #expect(lines.count == 3, "stdout: \(r.stdout)")
        #expect(r.stdout.split(separator: "\n").count == 3, "only JSON on stdout")
        for (i, line) in lines.enumerated() {
            #expect(line["step"] as? Int == i + 1)
            for key in ["loss", "lr", "grad_norm", "tokens_per_s"] { #expect(line[key] is NSNumber, "step \(i + 1): no \(key)") }
            expectClose(try CLIGolden.double(line["lr"]), 5e-4, rtol: 1e-12, "step \(i + 1) lr")
            // The finetune_seed trajectory (same optimizer): rtol 1e-4 (reference README)
            expectClose(try CLIGolden.double(line["loss"]), seedLosses[i], rtol: 1e-4, "step \(i + 1) loss")
        }
        if let first = lines.first {
            expectClose(try CLIGolden.double(first["loss"]), try CLIGolden.double(ex["loss"]), rtol: 1e-5, "step 1 loss")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/run/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: dir + "/run/trainer_state/trainer_state.json"))
    }

    /// `--stop-after` then `--resume` writes the same weights and optimizer state, byte for byte, as one uninterrupted run
    /// (two examples, shuffled, batch 1, dropout 0.1, so data position and dropout seeds must survive the restart).
    @Test func finetuneStopAndResumeIsByteIdentical() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/train.jsonl"
        try Data(("{\"context\": \"\(Self.context)\", \"label\": \"\(Self.label)\"}\n"
                  + "{\"prompt\": \"The capital of France is\", \"completion\": \" Paris\"}\n").utf8).write(to: URL(fileURLWithPath: data))
        let common = ["finetune", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer, "--data", data,
                      "--steps", "4", "--lr", "5e-4", "--eps", "1e-6", "--seed", "3", "--dropout", "0.1", "--json"]
        let straight = try Self.succeed(common + ["--out", dir + "/a"]).jsonLines
        let first = try Self.succeed(common + ["--out", dir + "/b", "--stop-after", "2"]).jsonLines
        // The run's data is not stored (only its fingerprint), so it is named again; the options come from the state.
        let second = try Self.succeed(["finetune", "--resume", dir + "/b", "--out", dir + "/b", "--tokenizer", Self.tokenizer,
                                       "--data", data, "--json"]).jsonLines
        #expect(straight.map { $0["step"] as? Int } == [1, 2, 3, 4])
        #expect((first + second).map { $0["step"] as? Int } == [1, 2, 3, 4])
        let losses = { (lines: [[String: Any]]) in lines.compactMap { ($0["loss"] as? NSNumber)?.doubleValue } }
        #expect(losses(first + second) == losses(straight), "per-step losses")
        for file in ["model.safetensors", "trainer_state/optimizer.safetensors"] {
            let a = FileManager.default.contents(atPath: dir + "/a/" + file), b = FileManager.default.contents(atPath: dir + "/b/" + file)
            #expect(a != nil && a == b, "\(file) differs between the straight and the resumed run")
        }
    }

    @Test func generateGreedyMatchesTransformers() throws {
        let g = try CLIGolden.tiny()
        let greedy = try #require(g["greedy"] as? [String: Any])
        let prompt = try #require(greedy["prompt"] as? String)
        let expected = try CLIGolden.ints(greedy["output_ids"]), promptIDs = try CLIGolden.ints(greedy["prompt_ids"])
        let r = try Self.succeed(["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", Self.tokenizer, "--prompt", prompt,
                                  "--max-new-tokens", String(expected.count - promptIDs.count), "--json"])
        let lines = r.jsonLines
        #expect(lines.count == 1, "stdout: \(r.stdout)")
        #expect(lines.first?["ids"] as? [Int] == expected)
    }
}
