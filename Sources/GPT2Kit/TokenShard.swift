#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// llm.c's token shard (`dev/data/data_common.py` `write_datafile`, read by `llmc/dataloader.h`), which
/// nanoGPT-style loaders read too: a header of 256 little-endian int32 — [0] magic 20240520, [1] version 1,
/// [2] token count, the rest 0 — then `count` little-endian uint16 token ids. The file is exactly
/// 1024 + 2·count bytes. llm.c's fineweb shards start every document with the end-of-text token (50256),
/// and documents run on across shard boundaries; GPT2Kit writes its shards the same way.
public enum TokenShard {
    /// The header's first int32, which marks an llm.c token shard.
    public static let magic: Int32 = 20240520
    /// The header's second int32: 1 means uint16 token ids.
    public static let version: Int32 = 1
    /// The header's length in int32.
    public static let headerInts = 256
    /// The header's length in bytes (256 × 4); the tokens start here.
    public static let headerBytes = 1024
    /// Token ids must fit uint16.
    public static let maximumVocabularySize = 1 << 16
    /// Tokens per shard when `--shard-tokens` is not given (llm.c's fineweb.py uses 10⁸).
    public static let defaultShardTokens = 100_000_000
    /// Shard `index`'s file name: `shard_000000.bin`, `shard_000001.bin`, ….
    public static func fileName(index: Int) -> String {
        let digits = String(index)
        return "shard_" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".bin"
    }

    /// The header for `count` tokens.
    public static func header(tokenCount count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerBytes)
        for (i, v) in [magic, version, Int32(truncatingIfNeeded: count)].enumerated() {
            withUnsafeBytes(of: v.littleEndian) { for k in 0 ..< 4 { bytes[4 * i + k] = $0[k] } }
        }
        return bytes
    }

    /// Memory-maps a shard read-only after checking its header and size (the token ids are checked against the
    /// model's vocabulary later, as blocks are read). Only regular files are opened; a FIFO is refused without
    /// blocking.
    public static func open(path: String) throws(CorpusError) -> TokenSegment {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch {
            throw .cannotRead(path: path, reason: error.reason)
        }
        let bytes = storage.bytes
        guard bytes.count >= headerBytes else {
            throw .invalidShard(path: path, problem: "\(bytes.count) bytes, shorter than the 1024-byte header")
        }
        func int(_ i: Int) -> Int32 { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        guard int(0) == magic else {
            throw .invalidShard(path: path, problem: "magic \(int(0)) is not llm.c's token shard magic \(magic)")
        }
        guard int(1) == version else {
            throw .invalidShard(path: path, problem: "version \(int(1)) is not 1 (uint16 tokens)")
        }
        let count = Int(int(2))
        guard count >= 0 else { throw .invalidShard(path: path, problem: "negative token count \(count)") }
        let expected = headerBytes + 2 * count
        guard bytes.count == expected else {
            throw .invalidShard(path: path, problem: "header says \(count) tokens (\(expected) bytes), the file has \(bytes.count) bytes")
        }
        return TokenSegment(name: path, storage: storage, byteOffset: headerBytes, count: count)
    }
}

/// Writes a token stream as consecutive llm.c shards `folder/shard_NNNNNN.bin` of `shardTokens` tokens (the last
/// one shorter), each written atomically; memory stays bounded by what one `append` passes.
public final class TokenShardWriter {
    /// The folder the shards are written into.
    public let folder: String
    /// Tokens per shard (the last shard may hold fewer).
    public let shardTokens: Int
    /// Paths of the shards written so far.
    public private(set) var shards: [String] = []
    /// Tokens written so far.
    public private(set) var tokenCount = 0
    private var current: AtomicFileWriter?
    private var currentCount = 0
    private var buffer: [UInt8] = []

    /// Prepares to write into `folder` (created if needed). Refuses a folder that already holds shards (a
    /// shorter corpus would leave stale ones that a loader reads too) and `shardTokens` outside 1...Int32.max.
    public init(folder: String, shardTokens: Int = TokenShard.defaultShardTokens) throws(CorpusError) {
        guard (1 ... Int(Int32.max)).contains(shardTokens) else {
            throw .invalidSetting("--shard-tokens: \(shardTokens) is not an integer in 1...\(Int32.max)")
        }
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw .cannotWrite(path: folder, reason: error.localizedDescription)
        }
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix("shard_") && $0.hasSuffix(".bin") }
        guard existing.isEmpty else {
            throw .invalidSetting("\(folder): already holds \(existing.count) shard file\(existing.count == 1 ? "" : "s") (shard_*.bin); "
                                  + "write into an empty folder or remove them")
        }
        self.folder = folder
        self.shardTokens = shardTokens
    }

    deinit { current?.abandon() }

    /// Appends tokens, starting a new shard whenever the current one is full.
    public func append(_ tokens: UnsafeBufferPointer<UInt16>) throws(CorpusError) {
        var i = 0
        while i < tokens.count {
            if current == nil { try startShard() }
            let n = min(tokens.count - i, shardTokens - currentCount)
            guard let writer = current else { return }
            let part = UnsafeBufferPointer(rebasing: tokens[i ..< i + n])
            do {
                #if _endian(little)
                try writer.write(UnsafeRawBufferPointer(part))
                #else
                buffer.removeAll(keepingCapacity: true)
                for t in part { buffer.append(UInt8(truncatingIfNeeded: t)); buffer.append(UInt8(truncatingIfNeeded: t >> 8)) }
                try writer.write(buffer)
                #endif
            } catch { throw .cannotWrite(path: writer.path, reason: error.reason) }
            currentCount += n
            tokenCount += n
            i += n
            if currentCount == shardTokens { try finishShard() }
        }
    }

    /// Completes the last shard. Returns the shard paths.
    @discardableResult
    public func finish() throws(CorpusError) -> [String] {
        if current != nil { try finishShard() }
        return shards
    }

    private func startShard() throws(CorpusError) {
        let path = folder + "/" + TokenShard.fileName(index: shards.count)
        do {
            let writer = try AtomicFileWriter(path: path)
            try writer.write(TokenShard.header(tokenCount: 0))
            current = writer
        } catch { throw .cannotWrite(path: path, reason: error.reason) }
        currentCount = 0
    }

    private func finishShard() throws(CorpusError) {
        guard let writer = current else { return }
        let header = TokenShard.header(tokenCount: currentCount)
        do {
            try header.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try writer.rewrite(raw, at: 0) } }.get()
            try writer.commit()
        } catch { throw .cannotWrite(path: writer.path, reason: error.reason) }
        shards.append(writer.path)
        current = nil
    }
}
