import ArgumentParser
import Dispatch
import Foundation
import GPT2Kit
import GPT2KitCLI

/// Times the gradient sum of a data-parallel step alone: `--floats` floats summed over every process in the
/// trainer's buckets, as `finetune` does after each backward.
struct AllReduceBenchmarkCommand: DataParallelCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce-benchmark",
        abstract: "Time the per-step gradient all-reduce over the processes (default: GPT-2 124M's 124,439,808 floats).")

    @Option(help: "Floats summed per step (a model's trained parameters; the LoRA adapter's for a LoRA run).") var floats = 124_439_808
    @Option(help: "Timed repetitions (after one warm-up).") var repeats = 5
    @Flag(help: "One JSON object on stdout.") var json = false

    func validate() throws {
        guard floats >= 1 else { throw ValidationError("--floats: must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats: must be at least 1") }
    }

    func run() throws {
        let communicator = CommandEnvironment.communicator
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: floats)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1)
        func reduce() throws {
            var start = 0
            while start < floats {
                let end = min(start + Trainer.gradientBucketSize, floats)
                try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: buffer[start ..< end]))
                start = end
            }
        }
        try reduce()
        var times: [Double] = []
        for _ in 0 ..< repeats {
            try communicator.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try reduce()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        guard communicator.rank == 0 else { return }
        let median = times.sorted()[times.count / 2]
        let bytes = Double(floats * MemoryLayout<Float>.size)
        let n = Double(communicator.size)
        // A ring all-reduce sends and receives 2(n-1)/n of the buffer per process ("bus bandwidth", as nccl-tests report).
        let wire = bytes * 2 * (n - 1) / n
        if json {
            let o: [String: Any] = ["processes": communicator.size, "floats": floats, "megabytes": bytes / 1e6, "seconds_median": median,
                                    "seconds": times, "bus_gigabytes_per_s": wire / median / 1e9]
            if let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
        } else {
            print(String(format: "%d processes: all-reduce of %d floats (%.1f MB) in %.4f s (median of %d); %.1f MB sent and received per process, %.2f GB/s",
                         communicator.size, floats, bytes / 1e6, median, repeats, wire / 1e6, wire / median / 1e9))
        }
    }
}

/// The gpt2kit commands plus the MPI-only benchmark.
struct GPT2KitMPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt2kit-mpi",
        abstract: "gpt2kit under Open MPI: `mpirun -np N gpt2kit-mpi finetune …` trains data-parallel (see docs/distributed.md).",
        version: GPT2KitVersion.current,
        subcommands: GPT2KitCommand.configuration.subcommands + [AllReduceBenchmarkCommand.self])
}
