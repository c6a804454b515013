#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Training or evaluation data the `Trainer` reads example by example: JSONL examples held in memory
/// (`[TrainingExample]`) or blocks packed from a token stream (`PackedTokenBlocks`, over memory-mapped shards).
///
/// The trainer shuffles indices, never the data, so a source only has to give example `i` on demand.
public protocol TrainingDataSource {
    /// Number of examples.
    var count: Int { get }
    /// Example `index` (0 ..< count). Throws when the data turns out to be bad only when read
    /// (a token id out of range in a shard, checked lazily).
    func example(at index: Int) throws -> TrainingExample
    /// A hash that changes when the data changes; a resumed run must see the same value. It is computed
    /// without reading the whole corpus into memory (see each source for what it covers).
    var fingerprint: UInt64 { get }
    /// The most tokens one example has (what one batch row needs activations for).
    var longestExample: Int { get }
}

extension Array: TrainingDataSource where Element == TrainingExample {
    /// Example `index`; never throws.
    public func example(at index: Int) throws -> TrainingExample { self[index] }

    /// The most tokens one example has (0 for no examples).
    public var longestExample: Int { map(\.inputIDs.count).max() ?? 0 }

    /// FNV-1a over every example's length, ids and labels.
    public var fingerprint: UInt64 {
        var hash = FNV1a()
        for e in self {
            hash.eat(e.inputIDs.count)
            e.inputIDs.forEach { hash.eat($0) }
            e.labels.forEach { hash.eat($0) }
        }
        return hash.value
    }
}

/// 64-bit FNV-1a, fed little-endian 32-bit words or raw bytes.
struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func eat(_ byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x100_0000_01B3
    }

    /// The four low bytes of `v`, little-endian (the historical fingerprint of JSONL examples).
    mutating func eat(_ v: Int32) {
        for shift in stride(from: 0, to: 32, by: 8) { eat(UInt8(truncatingIfNeeded: UInt32(bitPattern: v) >> UInt32(shift))) }
    }

    mutating func eat(_ v: Int) { eat(Int32(truncatingIfNeeded: v)) }

    mutating func eat(_ bytes: UnsafeRawBufferPointer) { for b in bytes { eat(b) } }
}

/// A run of little-endian `UInt16` token ids: a memory-mapped llm.c shard's token section, or tokens held in memory.
public struct TokenSegment: @unchecked Sendable {
    /// The file the tokens come from (named in errors), or a description such as `"<text corpus>"`.
    public let name: String
    /// Keeps the bytes alive.
    public let storage: ByteStorage
    /// Offset of the first token in `storage`, in bytes.
    public let byteOffset: Int
    /// Number of tokens.
    public let count: Int

    /// A segment of `count` tokens at `byteOffset` of `storage` (which must hold them: checked).
    public init(name: String, storage: ByteStorage, byteOffset: Int, count: Int) {
        precondition(byteOffset >= 0 && count >= 0 && byteOffset <= storage.byteCount && count <= (storage.byteCount - byteOffset) / 2,
                     "segment of \(count) tokens at byte \(byteOffset) of \(storage.byteCount) bytes")
        self.name = name
        self.storage = storage
        self.byteOffset = byteOffset
        self.count = count
    }

    /// Tokens held in memory.
    public init(name: String, tokens: [UInt16]) {
        let storage = tokens.withUnsafeBytes { raw in
            let s = ByteStorage(zeroedByteCount: raw.count)
            let out = s.mutableBytes
            for (i, t) in tokens.enumerated() { out.storeBytes(of: t.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            return s
        }
        self.init(name: name, storage: storage, byteOffset: 0, count: tokens.count)
    }

    /// Token `index` of the segment.
    @inline(__always)
    func token(_ index: Int) -> UInt16 {
        UInt16(littleEndian: storage.bytes.loadUnaligned(fromByteOffset: byteOffset + 2 * index, as: UInt16.self))
    }
}

/// Causal-language-modelling blocks cut from a token stream, as transformers' `run_clm` groups texts: the
/// segments are read as one stream (documents inside it are already separated by the end-of-text token), which
/// is cut into consecutive blocks of `blockSize` tokens. Every token is a label (the model shifts them, so a
/// block gives `blockSize - 1` predictions). The tail shorter than a block is dropped, as `run_clm` drops it.
///
/// Token ids are checked against `vocabularySize` lazily, when a block is read: a bad id throws
/// `TrainingDataError.tokenOutOfRange` naming the segment's file and position. Memory-mapped pages around a
/// block are handed back to the kernel after it is copied, so reading a corpus keeps memory flat.
public struct PackedTokenBlocks: TrainingDataSource, @unchecked Sendable {
    /// The token runs read as one stream, in order (shards, or a text corpus tokenized in memory).
    public let segments: [TokenSegment]
    /// Tokens per block (at least 2).
    public let blockSize: Int
    /// Every block has `blockSize` tokens.
    public var longestExample: Int { blockSize }
    /// The model's vocabulary size: every id read must be below it.
    public let vocabularySize: Int
    /// Tokens in the stream.
    public let tokenCount: Int
    /// Number of blocks (`tokenCount / blockSize`).
    public let count: Int
    /// First stream position of each segment, and `tokenCount` at the end.
    private let starts: [Int]
    /// FNV-1a of the block size, the segments' token counts and their tokens (or, for mapped segments, their first
    /// and last `fingerprintSampleBytes`).
    public let fingerprint: UInt64

    /// Bytes of the start and end of every mapped segment that enter the fingerprint.
    public static let fingerprintSampleBytes = 4096

    /// Packs `segments` into blocks of `blockSize` (at least 2) tokens; throws when not one block fits.
    ///
    /// The fingerprint covers the block size, every segment's token count, all tokens of segments held in
    /// memory, and the first and last `fingerprintSampleBytes` of mapped segments (a resume must not read a
    /// whole corpus to recognise it; a shard rewritten with other tokens of the same count and the same ends
    /// would pass unnoticed).
    public init(segments: [TokenSegment], blockSize: Int, vocabularySize: Int, source: String) throws(TrainingDataError) {
        guard blockSize >= 2 else { throw .invalidBlockSize(blockSize, maximum: nil) }
        var starts: [Int] = []
        var total = 0
        for s in segments {
            starts.append(total)
            total += s.count
        }
        starts.append(total)
        guard total >= blockSize else { throw .corpusTooSmall(path: source, tokens: total, blockSize: blockSize) }
        self.segments = segments
        self.blockSize = blockSize
        self.vocabularySize = vocabularySize
        self.tokenCount = total
        self.count = total / blockSize
        self.starts = starts
        var hash = FNV1a()
        hash.eat(blockSize)
        hash.eat(segments.count)
        for s in segments {
            hash.eat(s.count)
            hash.eat(s.count >> 32)
            let bytes = UnsafeRawBufferPointer(rebasing: s.storage.bytes[s.byteOffset ..< s.byteOffset + 2 * s.count])
            if s.storage.backing == .heap || bytes.count <= 2 * Self.fingerprintSampleBytes {
                hash.eat(bytes)
            } else {
                hash.eat(UnsafeRawBufferPointer(rebasing: bytes.prefix(Self.fingerprintSampleBytes)))
                hash.eat(UnsafeRawBufferPointer(rebasing: bytes.suffix(Self.fingerprintSampleBytes)))
            }
        }
        fingerprint = hash.value
    }

    /// Tokens dropped at the end (fewer than one block).
    public var droppedTokenCount: Int { tokenCount - count * blockSize }

    /// The tokens of block `index` as ids.
    public func tokens(ofBlock index: Int) throws(TrainingDataError) -> [TokenID] {
        precondition(index >= 0 && index < count, "block \(index) of \(count)")
        var out = [TokenID](repeating: 0, count: blockSize)
        var position = index * blockSize
        let end = position + blockSize
        // The last segment that starts at or before `position`.
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= position { lo = mid } else { hi = mid - 1 }
        }
        var segmentIndex = lo
        var filled = 0
        while position < end {
            let segment = segments[segmentIndex]
            let local = position - starts[segmentIndex]
            let n = min(segment.count - local, end - position)
            if n > 0 {
                for k in 0 ..< n {
                    let id = segment.token(local + k)
                    guard Int(id) < vocabularySize else {
                        throw .tokenOutOfRange(path: segment.name, position: local + k, id: Int(id), vocabularySize: vocabularySize)
                    }
                    out[filled + k] = TokenID(id)
                }
                if segment.storage.backing == .mapped { Self.release(segment, fromToken: local, count: n) }
                filled += n
                position += n
            }
            segmentIndex += 1
        }
        return out
    }

    /// Block `index` as an example whose every token is a label; throws `TrainingDataError.tokenOutOfRange` for an id
    /// outside the vocabulary.
    public func example(at index: Int) throws -> TrainingExample {
        let ids = try tokens(ofBlock: index)
        return TrainingExample(inputIDs: ids, labels: ids)
    }

    /// Bytes around a block whose mapped pages are handed back after it is read: the kernel maps file pages
    /// around a fault in windows of up to 64 KiB (`fault_around_bytes`), more than a block holds.
    static let releaseWindow = 1 << 16

    /// Tells the kernel that the mapped pages around the tokens just read are not needed (they are clean,
    /// file-backed and read again on demand), so resident memory does not grow with the part of the corpus seen.
    private static func release(_ segment: TokenSegment, fromToken start: Int, count: Int) {
        guard let base = segment.storage.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let window = max(page, releaseWindow)
        let mapStart = Int(bitPattern: base)  // page-aligned (mmap)
        let mapEnd = (mapStart + segment.storage.byteCount + page - 1) / page * page
        let from = mapStart + segment.byteOffset + 2 * start
        let to = from + 2 * count
        let first = max(mapStart, from / window * window), last = min(mapEnd, (to + window - 1) / window * window)
        guard last > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(p, last - first, Int32(MADV_DONTNEED))
    }
}
