// Times checkpoint loading: open → first usable tensor, and open → every tensor touched,
// for model.safetensors and pytorch_model.bin in a folder, against a bare mmap of the same file.
//
// Usage: checkpoint-benchmark DIR [--repeat N] [--json] [--hdf5]
// Make DIR with: gpt2kit init --out DIR && gpt2kit convert DIR DIR/pytorch_model.bin
//
// --hdf5 times DIR/tf_model.h5 instead: reading every tensor (and touching it) and writing the file back,
// with libhdf5 in this process against libhdf5 in the helper process gpt2kit-hdf5 (which must sit next to
// this executable). Make DIR with: gpt2kit init --out D && gpt2kit convert D DIR --format h5
import Checkpoints
import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Median milliseconds of `repeatCount` runs of `body` (after one warm-up run).
func medianMilliseconds(_ repeatCount: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<repeatCount {
        let t0 = now()
        try body()
        times.append(Double(now() - t0) / 1e6)
    }
    times.sort()
    return times[times.count / 2]
}

/// Reads one Float per 4 KiB page of every tensor, so every mapped page is faulted in and read
/// (Benchmarks/checkpoint_reference.py does the same with `t.view(-1)[::1024].sum()`).
@inline(never)
func touchAll(_ dict: StateDict) -> Double {
    var total = 0.0
    for (_, t) in dict {
        t.withUnsafeBytes { raw in
            var s: Float = 0
            var i = 0
            while i + 4 <= raw.count { s += raw.loadUnaligned(fromByteOffset: i, as: Float.self); i += 4096 }
            total += Double(s)
        }
    }
    return total
}

@inline(never)
func firstFloat(_ dict: StateDict, _ name: String) -> Float {
    guard let t = dict[name] else { return .nan }
    return t.withUnsafeBytes { $0.loadUnaligned(as: Float.self) }
}

var args = Array(CommandLine.arguments.dropFirst())
var repeatCount = 9
var json = false
if let i = args.firstIndex(of: "--repeat"), i + 1 < args.count, let n = Int(args[i + 1]) { repeatCount = n; args.removeSubrange(i...i + 1) }
if let i = args.firstIndex(of: "--json") { json = true; args.remove(at: i) }
var hdf5 = false
if let i = args.firstIndex(of: "--hdf5") { hdf5 = true; args.remove(at: i) }
// Internal: read DIR/tf_model.h5 once (in this process or through the helper), touch it, and exit; --hdf5 times
// this in fresh processes, where a one-shot command pays the page faults a repeated in-process read does not.
if let i = args.firstIndex(of: "--hdf5-read-once"), i + 2 < args.count {
    let path = args[i + 1] + "/tf_model.h5"
    do {
        let file = args[i + 2] == "isolated" ? try KerasHDF5.readWeightFile(path: path) : try KerasHDF5.readWeightFileInProcess(path: path)
        exit(touchAll(file.stateDict) == .infinity ? 1 : 0)
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
guard let dir = args.first else {
    FileHandle.standardError.write(Data("usage: checkpoint-benchmark DIR [--repeat N] [--json]\n".utf8))
    exit(2)
}
let safetensorsPath = dir + "/model.safetensors"
let torchPath = dir + "/pytorch_model.bin"
let firstName = "transformer.wte.weight"
var sink = 0.0
var results: [String: Double] = [:]

/// Touches every tensor of a weight file.
func touchAll(_ file: KerasHDF5.WeightFile) -> Double { touchAll(file.stateDict) }

if hdf5 {
    let h5Path = dir + "/tf_model.h5"
    let written = dir + "/.checkpoint-benchmark.h5"
    defer { unlink(written) }
    do {
        results["hdf5_read_in_process_ms"] = try medianMilliseconds(repeatCount) {
            sink += touchAll(try KerasHDF5.readWeightFileInProcess(path: h5Path))
        }
        results["hdf5_read_isolated_ms"] = try medianMilliseconds(repeatCount) {
            sink += touchAll(try KerasHDF5.readWeightFile(path: h5Path))
        }
        for mode in ["in_process", "isolated"] {
            results["hdf5_read_once_\(mode)_ms"] = try medianMilliseconds(repeatCount) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
                process.arguments = ["--hdf5-read-once", dir, mode == "isolated" ? "isolated" : "in-process"]
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
            }
        }
        let file = try KerasHDF5.readWeightFileInProcess(path: h5Path)
        results["hdf5_write_in_process_ms"] = try medianMilliseconds(repeatCount) {
            try KerasHDF5.writeInProcess(file, to: written)
        }
        results["hdf5_write_isolated_ms"] = try medianMilliseconds(repeatCount) {
            try KerasHDF5.write(file, to: written)
        }
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
} else {
do {
    results["mmap_bare_ms"] = medianMilliseconds(repeatCount) {
        guard let s = ByteStorage.mapFile(atPath: safetensorsPath) else { return }
        sink += Double(s.bytes[s.byteCount / 2])
    }
    results["mmap_touch_all_ms"] = medianMilliseconds(repeatCount) {
        guard let s = ByteStorage.mapFile(atPath: safetensorsPath) else { return }
        var acc: UInt8 = 0
        let b = s.bytes
        var i = 0
        while i < b.count { acc &+= b[i]; i += 4096 }
        sink += Double(acc)
    }
    if let mapped = ByteStorage.mapFile(atPath: safetensorsPath) {
        results["safetensors_header_parse_ms"] = try medianMilliseconds(repeatCount) {
            sink += Double(try SafetensorsReader.parseHeader(mapped.bytes, path: safetensorsPath).entries.count)
        }
    }
    results["safetensors_first_tensor_ms"] = try medianMilliseconds(repeatCount) {
        let d = try SafetensorsReader.read(path: safetensorsPath)
        sink += Double(firstFloat(d, firstName))
    }
    results["safetensors_all_touched_ms"] = try medianMilliseconds(repeatCount) {
        sink += touchAll(try SafetensorsReader.read(path: safetensorsPath))
    }
    if FileManager.default.fileExists(atPath: torchPath) {
        results["torch_bin_first_tensor_ms"] = try medianMilliseconds(repeatCount) {
            let d = try TorchCheckpointReader.read(path: torchPath)
            sink += Double(firstFloat(d, firstName))
        }
        results["torch_bin_all_touched_ms"] = try medianMilliseconds(repeatCount) {
            sink += touchAll(try TorchCheckpointReader.read(path: torchPath))
        }
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
} }

if json {
    let data = (try? JSONSerialization.data(withJSONObject: results, options: [.sortedKeys, .prettyPrinted])) ?? Data()
    print(String(decoding: data, as: UTF8.self))
} else {
    for (k, v) in results.sorted(by: { $0.key < $1.key }) { print(k.padding(toLength: 32, withPad: " ", startingAt: 0), String(format: "%9.3f ms", v)) }
}
if sink == .infinity { print(sink) }
