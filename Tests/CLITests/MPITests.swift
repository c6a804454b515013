import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GPT2Kit
import Testing
import TestSupport

/// Data-parallel fine-tuning: `mpirun -np 2 gpt2kit-mpi finetune` against one `gpt2kit finetune` process.
/// Skipped (with the reason printed) where Open MPI's `mpirun` is not installed; `.ci/run` installs it.
@Suite(.serialized) struct MPITests {
    static let tokenizer = Fixtures.path("gpt2-tokenizer")
    static let base = Fixtures.path("tiny-gpt2")

    /// `mpirun` on PATH, or nil.
    static let mpirun: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { $0 + "/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// `gpt2kit-mpi`, built next to `gpt2kit`.
    static let mpiExecutable: String? = CommandTests.executable.map {
        URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("gpt2kit-mpi").path
    }.flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil }

    /// Whether the tests can run; prints why not.
    static func available() -> Bool {
        if mpirun == nil { print("MPITests skipped: mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)"); return false }
        if mpiExecutable == nil { print("MPITests skipped: gpt2kit-mpi is not built (swift build --build-tests)"); return false }
        return true
    }

    /// Eight examples of different lengths (padding, and label tokens that differ between the ranks' halves).
    static func writeData(_ dir: String) throws -> String {
        let lines = [
            #"{"context": "Harry Potter is a series of", "label": "seven fantasy novels"}"#,
            #"{"context": "The capital of France is", "label": "Paris"}"#,
            #"{"text": "Once upon a time there was a small cat who lived in a big house."}"#,
            #"{"context": "Water boils at", "label": "one hundred degrees Celsius at sea level"}"#,
            #"{"prompt": "Translate: hello", "completion": "bonjour"}"#,
            #"{"text": "The quick brown fox jumps over the lazy dog."}"#,
            #"{"context": "Two plus two is", "label": "four"}"#,
            #"{"text": "GPT-2 is a language model trained on web text by OpenAI in 2019."}"#,
        ]
        let path = dir + "/data.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `mpirun -np <processes> gpt2kit-mpi <arguments>` (as root where CI runs it; two ranks may exceed the slots).
    static func mpiArguments(_ processes: Int, _ arguments: [String]) -> [String] {
        (getuid() == 0 ? ["--allow-run-as-root"] : []) + ["--oversubscribe", "-np", "\(processes)", mpiExecutable ?? "gpt2kit-mpi"] + arguments
    }

    /// Starts `executable` with stdout and stderr to files in `dir`.
    static func start(_ executable: String, _ arguments: [String], dir: String, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        for name in ["stdout", "stderr"] { _ = FileManager.default.createFile(atPath: dir + "/" + name, contents: nil) }
        process.standardOutput = FileHandle(forWritingAtPath: dir + "/stdout")
        process.standardError = FileHandle(forWritingAtPath: dir + "/stderr")
        try process.run()
        return process
    }

    /// Runs `mpirun …` to the end (killed after `seconds`) and returns (status, stdout, stderr).
    static func runMPI(_ processes: Int, _ arguments: [String], seconds: Double = 300) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let process = try start(try #require(mpirun), mpiArguments(processes, arguments), dir: dir)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("mpirun \(arguments.joined(separator: " ")) was still running after \(seconds) s (a hang)")
        }
        process.waitUntilExit()
        let read = { (name: String) in String(decoding: FileManager.default.contents(atPath: dir + "/" + name) ?? Data(), as: UTF8.self) }
        return (process.terminationStatus, read("stdout"), read("stderr"))
    }

    static func losses(_ stdout: String) -> [Double] {
        stdout.split(separator: "\n").compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["loss"] as? Double
        }
    }

    /// Every tensor of two safetensors files agrees within `atol`; returns the largest difference.
    @discardableResult
    static func expectSameWeights(_ a: String, _ b: String, atol: Float, sourceLocation: SourceLocation = #_sourceLocation) throws -> Float {
        let x = try SafetensorsReader.read(path: a), y = try SafetensorsReader.read(path: b)
        #expect(x.names == y.names, sourceLocation: sourceLocation)
        var worst: (Float, String) = (0, "")
        for name in x.names {
            let u = try #require(x[name]).floats(), v = try #require(y[name]).floats()
            for (p, q) in zip(u, v) where abs(p - q) > worst.0 { worst = (abs(p - q), name) }
        }
        #expect(worst.0 <= atol, "largest weight difference \(worst.0) in \(worst.1)", sourceLocation: sourceLocation)
        return worst.0
    }

    static func expectSameLosses(_ one: [Double], _ two: [Double], count: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(one.count == count && two.count == count, "\(one.count) and \(two.count) losses", sourceLocation: sourceLocation)
        for (step, (a, b)) in zip(one, two).enumerated() {
            #expect(abs(a - b) <= 1e-6 * abs(a), "step \(step + 1): one process \(a), two \(b)", sourceLocation: sourceLocation)
        }
    }

    /// The training flags of the comparisons: dropout off, shuffled over five epochs.
    /// AdamW's eps is 1e-6 (the notebook's): the key biases' gradient is zero in exact arithmetic (softmax ignores
    /// a shift of every score), so what the backward leaves there is rounding noise, ~1e-9; with eps 1e-8 Adam's
    /// m/√v turns that noise into steps of ±lr whose signs depend on summation order, and one process with
    /// `--grad-accum 2` differs from `--batch-size 4` by 5e-4 as two processes do. With eps 1e-6 the largest
    /// difference measured is 7e-6 (two processes) and 6e-6 (one process, accumulating).
    static func flags(_ data: String) -> [String] {
        ["finetune", "--model", base, "--tokenizer", tokenizer, "--data", data, "--steps", "10", "--lr", "1e-3", "--eps", "1e-6",
         "--dropout", "0", "--seed", "3", "--json"]
    }

    @Test func twoProcessesOfBatchTwoMatchOneProcessOfBatchFour() throws {
        guard Self.available() else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flags = Self.flags(try Self.writeData(dir))
        let one = try CommandTests.succeed(flags + ["--batch-size", "4", "--out", dir + "/one"])
        let two = try Self.runMPI(2, flags + ["--batch-size", "2", "--out", dir + "/two"])
        #expect(two.status == 0, "\(two.stderr)")
        Self.expectSameLosses(Self.losses(one.stdout), Self.losses(two.stdout), count: 10)
        try Self.expectSameWeights(dir + "/one/model.safetensors", dir + "/two/model.safetensors", atol: 1e-5)
        let state = try TrainingRun.readState(folder: dir + "/two")
        #expect(state.processes == 2 && state.options.batchSize == 2)
    }

    @Test func aLoRARunReducesTheAdapterAlone() throws {
        guard Self.available() else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flags = Self.flags(try Self.writeData(dir)) + ["--lora-rank", "4", "--lora-targets", "c_attn,c_proj,c_fc", "--lr", "1e-2"]
        let one = try CommandTests.succeed(flags + ["--batch-size", "4", "--out", dir + "/one"])
        let two = try Self.runMPI(2, flags + ["--batch-size", "2", "--out", dir + "/two"])
        #expect(two.status == 0, "\(two.stderr)")
        Self.expectSameLosses(Self.losses(one.stdout), Self.losses(two.stdout), count: 10)
        try Self.expectSameWeights(dir + "/one/adapter_model.safetensors", dir + "/two/adapter_model.safetensors", atol: 1e-5)
    }

    @Test func aRunResumesWithAnotherNumberOfProcesses() throws {
        guard Self.available() else { return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.writeData(dir)
        let flags = Self.flags(data)
        let straight = try CommandTests.succeed(flags + ["--batch-size", "4", "--out", dir + "/straight"])
        let first = try Self.runMPI(2, flags + ["--batch-size", "2", "--out", dir + "/run", "--stop-after", "4", "--save-every", "2"])
        #expect(first.status == 0, "\(first.stderr)")
        // The global batch of 4 does not split over 3 processes.
        let refused = try Self.runMPI(3, ["finetune", "--resume", dir + "/run", "--out", dir + "/run", "--tokenizer", Self.tokenizer, "--data", data])
        #expect(refused.status != 0 && refused.stderr.contains("does not split evenly over 3 processes"), "\(refused.stderr)")
        let second = try CommandTests.succeed(["finetune", "--resume", dir + "/run", "--out", dir + "/run", "--tokenizer", Self.tokenizer,
                                               "--data", data, "--json"])
        Self.expectSameLosses(Self.losses(straight.stdout), Self.losses(first.stdout) + Self.losses(second.stdout), count: 10)
        try Self.expectSameWeights(dir + "/straight/model.safetensors", dir + "/run/model.safetensors", atol: 1e-5)
    }

    @Test func aKilledRankEndsTheJobAndLeavesALoadableCheckpoint() throws {
        guard Self.available() else { return }
        // Rank 1 is found through /proc.
        guard FileManager.default.fileExists(atPath: "/proc/self/environ") else { print("MPITests: the kill test needs /proc; skipped"); return }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.writeData(dir)
        let run = dir + "/run"
        let marker = UUID().uuidString
        let process = try Self.start(try #require(Self.mpirun), Self.mpiArguments(2, [
            "finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--data", data, "--steps", "100000", "--batch-size", "2",
            "--save-every", "2", "--save-total-limit", "2", "--out", run, "--json",
        ]), dir: dir, environment: ["GPT2KIT_MPI_TEST_RUN": marker])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: run + "/checkpoint-4"), process.isRunning, Date() < deadline { usleep(50_000) }
        try #require(process.isRunning && FileManager.default.fileExists(atPath: run + "/checkpoint-4"), "the run did not reach step 4")
        let rank1 = try #require(Self.process(environment: ["GPT2KIT_MPI_TEST_RUN=" + marker, "OMPI_COMM_WORLD_RANK=1"]), "rank 1 not found")
        kill(rank1, SIGKILL)
        let killed = Date()
        deadline = killed.addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        let seconds = Date().timeIntervalSince(killed)
        #expect(!process.isRunning, "mpirun still runs 10 s after rank 1 was killed")
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        print("MPITests: the job ended \(String(format: "%.2f", seconds)) s after rank 1 was killed, status \(process.terminationStatus)")
        #expect(process.terminationStatus != 0)
        let stderr = String(decoding: FileManager.default.contents(atPath: dir + "/stderr") ?? Data(), as: UTF8.self)
        #expect(stderr.contains("rank 1"), "\(stderr)")
        // The newest complete checkpoint resumes (checked files) and loads as a model.
        let folder = try TrainingRun.resumableFolder(run)
        #expect(folder.contains("/checkpoint-"), "\(folder)")
        try CommandTests.succeed(["eval", "--model", folder, "--tokenizer", Self.tokenizer, "--data", data, "--json"])
    }

    @Test func theSingleProcessCommandDoesNotLinkMPI() throws {
        let executable = try #require(CommandTests.executable, "gpt2kit is not built")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: executable))
        #expect(bytes.range(of: Data("libmpi.so".utf8)) == nil, "\(executable) names libmpi.so (a dynamic dependency on Open MPI)")
        if let mpi = Self.mpiExecutable {
            #expect(try Data(contentsOf: URL(fileURLWithPath: mpi)).range(of: Data("libmpi.so".utf8)) != nil, "gpt2kit-mpi does not name libmpi.so")
        }
    }

    /// A process whose environment holds every one of `entries` ("NAME=value").
    static func process(environment entries: [String]) -> pid_t? {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let bytes = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            let variables = Set(bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            if entries.allSatisfy(variables.contains) { return pid }
        }
        return nil
    }
}
