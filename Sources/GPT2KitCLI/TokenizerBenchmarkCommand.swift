import ArgumentParser
import Foundation
import GPT2Kit

/// `gpt2kit bench-tokenizer`: encode/decode throughput on a corpus (hidden; see docs/benchmarks.md).
///
/// The corpus is cut at line ends into chunks of at least `--chunk-bytes`; single-thread
/// encoding runs over the chunks in order, the batch API over all chunks at once, so both
/// give the same ids (written with `--ids-out` as little-endian Int32 for
/// Benchmarks/tokenizer_reference.py to compare with tiktoken and tokenizers).
struct TokenizerBenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure tokenizer encode/decode throughput on a corpus.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Folder with vocab.json + merges.txt, or tokenizer.json.")
    var tokenizer: String

    @Option(name: .long, help: "UTF-8 corpus file (scripts/make-tokenizer-corpus.py).")
    var corpus: String

    @Option(name: .long, parsing: .unconditional, help: "Threads for the batch API.")
    var threads = 2

    @Option(name: .long, parsing: .unconditional, help: "Timed repetitions (the best is reported).")
    var `repeat` = 3

    @Option(name: .long, parsing: .unconditional, help: "Chunk size in bytes (chunks end at a newline).")
    var chunkBytes = 65536

    @Option(name: .long, help: "Write the ids as little-endian Int32 to this file.")
    var idsOut: String?

    @Flag(name: .long, help: "Print the results as one JSON object.")
    var json = false

    func run() throws {
        do {
            try measure()
        } catch {
            throw reportFailure(error)
        }
    }

    private func measure() throws {
        let data = try readBytes(path: corpus)
        _ = try GPT2Tokenizer.text(fromUTF8: data)  // reject bad input before timing
        let chunks = Self.chunks(of: data, minimumBytes: chunkBytes)
        let byteCount = Double(data.count)
        let megabytes = byteCount / 1_000_000

        var start = Date()
        let tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: self.tokenizer))
        let loadSeconds = Date().timeIntervalSince(start)

        func timed(_ body: () throws -> Void) rethrows -> Double {
            let begin = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
        }

        // Cold: the first pass, with empty word caches.
        var ids: [[Int]] = []
        let coldSeconds = timed { ids = chunks.map { tokenizer.encode($0, allowSpecial: false) } }
        var warmSeconds = Double.infinity
        for _ in 0..<max(1, self.repeat) {
            warmSeconds = min(warmSeconds, timed { ids = chunks.map { tokenizer.encode($0, allowSpecial: false) } })
        }
        var batchSeconds = Double.infinity
        var batchIDs: [[Int]] = []
        for _ in 0..<max(1, self.repeat) {
            let fresh = tokenizer  // copies share the cache pool; the batch's second worker starts cold on pass one
            batchSeconds = min(batchSeconds, timed { batchIDs = fresh.encode(batch: chunks, allowSpecial: false, threadCount: threads) })
        }
        guard batchIDs == ids else { throw BenchmarkError.batchMismatch }
        // One String holding the whole corpus: one thread, then cut across `threads`.
        let whole = String(decoding: data, as: UTF8.self)
        var wholeIDs: [Int] = []
        var wholeSeconds = Double.infinity
        var parallelSeconds = Double.infinity
        var parallelIDs: [Int] = []
        for _ in 0..<max(1, self.repeat) {
            wholeSeconds = min(wholeSeconds, timed { wholeIDs = tokenizer.encode(whole, allowSpecial: false) })
            parallelSeconds = min(parallelSeconds, timed {
                parallelIDs = tokenizer.encode(whole, allowSpecial: false, threadCount: threads)
            })
        }
        guard parallelIDs == wholeIDs else { throw BenchmarkError.batchMismatch }
        var decodeSeconds = Double.infinity
        var decodedBytes = 0
        for _ in 0..<max(1, self.repeat) {
            var total = 0
            let seconds = try timed {
                for chunkIDs in ids { total += try tokenizer.decode(chunkIDs).utf8.count }
            }
            decodeSeconds = min(decodeSeconds, seconds)
            decodedBytes = total
        }
        guard decodedBytes == data.count else { throw BenchmarkError.roundTripMismatch }
        let tokenCount = ids.reduce(0) { $0 + $1.count }
        if let idsOut {
            var raw = Data(capacity: tokenCount * 4)
            for chunkIDs in ids {
                for id in chunkIDs { withUnsafeBytes(of: Int32(id).littleEndian) { raw.append(contentsOf: $0) } }
            }
            try ModelIO.writeAtomically(raw, to: idsOut)
        }
        start = Date()
        let results: [(String, Any)] = [
            ("corpus_bytes", data.count), ("chunks", chunks.count), ("tokens", tokenCount),
            ("load_seconds", loadSeconds),
            ("encode_cold_mb_s", megabytes / coldSeconds),
            ("encode_mb_s", megabytes / warmSeconds),
            ("batch_threads", threads),
            ("batch_encode_mb_s", megabytes / batchSeconds),
            ("whole_text_encode_mb_s", megabytes / wholeSeconds),
            ("whole_text_parallel_encode_mb_s", megabytes / parallelSeconds),
            ("decode_mb_s", megabytes / decodeSeconds),
        ]
        if json {
            let fields = results.map { key, value in
                let text = (value as? Double).map { String(format: "%.3f", $0) } ?? "\(value)"
                return "\"\(key)\": \(text)"
            }
            writeStandardOutput("{" + fields.joined(separator: ", ") + "}\n")
        } else {
            for (key, value) in results {
                let text = (value as? Double).map { String(format: "%.2f", $0) } ?? "\(value)"
                writeStandardOutput("\(key): \(text)\n")
            }
        }
    }

    /// The corpus cut after a newline once a chunk holds at least `minimumBytes`.
    static func chunks(of data: Data, minimumBytes: Int) -> [String] {
        var chunks: [String] = []
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            var i = 0
            while i < bytes.count {
                if bytes[i] == 0x0A, i + 1 - start >= minimumBytes {
                    chunks.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start...i]), as: UTF8.self))
                    start = i + 1
                }
                i += 1
            }
            if start < bytes.count {
                chunks.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start...]), as: UTF8.self))
            }
        }
        return chunks
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case batchMismatch
    case roundTripMismatch

    var description: String {
        switch self {
        case .batchMismatch: return "multi-thread ids differ from single-thread ids"
        case .roundTripMismatch: return "decoded byte count differs from the corpus"
        }
    }
}
