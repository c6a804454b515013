import CZlib
import Foundation
import Tensors

/// A read-only zip archive over a memory-mapped file: end-of-central-directory (plain and ZIP64),
/// central directory and local headers, every offset and size checked against the file before use.
///
/// Stored entries (method 0) are returned as views of the mapping; deflated entries (method 8) are
/// inflated into owned storage, no larger than their declared size. Declared sizes are bounded per entry
/// and in total (`maximumCompressionRatio` × the file), since entries may share compressed bytes.
package struct ZipArchive: Sendable {
    /// One central-directory record after validation.
    public struct Entry: Sendable, Equatable {
        /// The entry's name, e.g. `archive/data.pkl`.
        public var name: String
        /// 0 stored, 8 deflate.
        public var method: Int
        /// The CRC-32 of the uncompressed bytes, as recorded.
        public var crc32: UInt32
        /// Bytes stored in the file.
        public var compressedSize: Int
        /// Bytes after inflating (equal to `compressedSize` for stored entries).
        public var uncompressedSize: Int
        /// Offset of the entry's local header in the file.
        public var localHeaderOffset: Int
        /// Offset of the entry's (possibly compressed) bytes in the file.
        public var dataOffset: Int
    }

    /// An entry's bytes: `byteCount` bytes of `storage` from `byteOffset`.
    public struct Contents: Sendable {
        /// The storage the bytes are in: the mapped archive for stored entries, owned memory for inflated ones.
        public var storage: ByteStorage
        /// Offset of the first byte in `storage`.
        public var byteOffset: Int
        /// Number of bytes.
        public var byteCount: Int
        /// Calls `body` with the bytes, keeping the storage alive meanwhile.
        public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try withExtendedLifetime(storage) {
                try body(UnsafeRawBufferPointer(rebasing: storage.bytes[byteOffset ..< byteOffset + byteCount]))
            }
        }
        /// A copy of the bytes.
        public var array: [UInt8] { withUnsafeBytes { Array($0) } }
    }

    /// Largest accepted ratio of declared uncompressed to compressed size (deflate cannot exceed ~1032).
    public static let maximumCompressionRatio = 1100

    /// The archive's path (named in errors).
    public let path: String
    /// The mapped archive.
    public let storage: ByteStorage
    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    /// Maps and parses the archive at `path`.
    public init(path: String) throws(TorchArchiveError) {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch { throw .cannotOpen(path: path, reason: error.reason) }
        try self.init(storage: storage, path: path)
    }

    /// Parses an archive held in `storage`; `path` names it in errors.
    public init(storage: ByteStorage, path: String) throws(TorchArchiveError) {
        self.path = path
        self.storage = storage
        let entries = try Self.parse(storage.bytes, path: path)
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() {
            if index.updateValue(i, forKey: e.name) != nil { throw .duplicateEntry(path: path, entry: e.name) }
        }
        self.entries = entries
        self.index = index
    }

    /// The entry named exactly `name`.
    public func entry(named name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The entry's uncompressed bytes (a view of the mapping when stored).
    public func contents(of entry: Entry) throws(TorchArchiveError) -> Contents {
        switch entry.method {
        case 0:
            return Contents(storage: storage, byteOffset: entry.dataOffset, byteCount: entry.uncompressedSize)
        case 8:
            return try inflated(entry)
        default:
            throw .unsupportedCompression(path: path, entry: entry.name, method: entry.method)
        }
    }

    /// The contents of the entry named `name`, or `missingEntry`.
    public func contents(named name: String) throws(TorchArchiveError) -> Contents {
        guard let e = entry(named: name) else { throw .missingEntry(path: path, entry: name) }
        return try contents(of: e)
    }

    @inline(never)
    private func inflated(_ entry: Entry) throws(TorchArchiveError) -> Contents {
        let out = ByteStorage(zeroedByteCount: entry.uncompressedSize)
        let src = UnsafeRawBufferPointer(rebasing: storage.bytes[entry.dataOffset ..< entry.dataOffset + entry.compressedSize])
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .invalidCompressedData(path: path, entry: entry.name, reason: "zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        let dst = out.mutableBytes
        let chunk = 1 << 30
        var inOffset = 0, outOffset = 0
        var spare: UInt8 = 0 // one byte past the declared size reveals data longer than declared
        var status: Int32 = Z_OK
        while true {
            if stream.avail_in == 0 && inOffset < src.count {
                let n = min(chunk, src.count - inOffset)
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.advanced(by: inOffset).assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(n)
                inOffset += n
            }
            if stream.avail_out == 0 {
                if outOffset < dst.count {
                    let n = min(chunk, dst.count - outOffset)
                    stream.next_out = dst.baseAddress!.advanced(by: outOffset).assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(n)
                    outOffset += n
                } else {
                    status = withUnsafeMutablePointer(to: &spare) { p in
                        stream.next_out = p
                        stream.avail_out = 1
                        return inflate(&stream, Z_NO_FLUSH)
                    }
                    if stream.avail_out == 0 || status != Z_STREAM_END {
                        throw .invalidCompressedData(path: path, entry: entry.name,
                                                     reason: status == Z_BUF_ERROR ? "stream ends early" : "inflates past its declared \(entry.uncompressedSize) bytes")
                    }
                    break
                }
            }
            status = inflate(&stream, Z_NO_FLUSH)
            if status == Z_STREAM_END { break }
            if status == Z_BUF_ERROR && stream.avail_in == 0 && inOffset >= src.count {
                throw .invalidCompressedData(path: path, entry: entry.name, reason: "stream ends early")
            }
            if status != Z_OK && status != Z_BUF_ERROR {
                throw .invalidCompressedData(path: path, entry: entry.name, reason: "zlib status \(status)")
            }
        }
        guard Int(stream.total_out) == entry.uncompressedSize else {
            throw .invalidCompressedData(path: path, entry: entry.name, reason: "inflates to \(stream.total_out) bytes, declared \(entry.uncompressedSize)")
        }
        let crc = ZipArchive.crc32(of: UnsafeRawBufferPointer(dst))
        guard crc == entry.crc32 else { throw .checksumMismatch(path: path, entry: entry.name, expected: entry.crc32, found: crc) }
        return Contents(storage: out, byteOffset: 0, byteCount: entry.uncompressedSize)
    }

    /// CRC-32 (zlib) of `bytes`.
    public static func crc32(of bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = uLong(crc)
        var offset = 0
        while offset < bytes.count {
            let n = min(1 << 30, bytes.count - offset)
            c = CZlib.crc32(c, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: c)
    }

    // MARK: Parsing

    static let localHeaderSignature: UInt32 = 0x0403_4B50
    static let centralHeaderSignature: UInt32 = 0x0201_4B50
    static let endSignature: UInt32 = 0x0605_4B50
    static let zip64EndSignature: UInt32 = 0x0606_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50

    /// Bounds-checked little-endian reads over the archive bytes.
    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let path: String

        func require(_ offset: Int, _ length: Int, _ what: String) throws(TorchArchiveError) {
            guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
                throw .offsetOutOfRange(path: path, what: what, offset: offset, length: length, fileSize: bytes.count)
            }
        }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int, _ what: String) throws(TorchArchiveError) -> Int {
            let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            guard v <= UInt64(Int.max) else {
                throw .offsetOutOfRange(path: path, what: what, offset: o, length: 8, fileSize: bytes.count)
            }
            return Int(v)
        }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(TorchArchiveError) -> [Entry] {
        let c = Cursor(bytes: bytes, path: path)
        let size = bytes.count
        guard size >= 22 else { throw .truncated(path: path, what: "end of central directory", offset: 0) }
        // The EOCD record is the last 22 bytes plus a comment of at most 65535 bytes.
        var eocd = -1
        var o = size - 22
        let lowest = max(0, size - 22 - 65535)
        while o >= lowest {
            if c.u32(o) == endSignature && o + 22 + c.u16(o + 20) == size { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw .invalidZip(path: path, reason: "no end-of-central-directory record") }
        var entryCount = c.u16(eocd + 10)
        var cdSize = Int(c.u32(eocd + 12))
        var cdOffset = Int(c.u32(eocd + 16))
        guard c.u16(eocd + 4) == 0, c.u16(eocd + 6) == 0 else { throw .invalidZip(path: path, reason: "multi-disk archives are not supported") }
        if eocd >= 20 && c.u32(eocd - 20) == zip64LocatorSignature {
            let z = try c.u64(eocd - 20 + 8, "zip64 end-of-central-directory offset")
            try c.require(z, 56, "zip64 end-of-central-directory record")
            guard c.u32(z) == zip64EndSignature else { throw .invalidZip(path: path, reason: "bad zip64 end-of-central-directory signature at \(z)") }
            entryCount = try c.u64(z + 32, "zip64 entry count")
            cdSize = try c.u64(z + 40, "zip64 central directory size")
            cdOffset = try c.u64(z + 48, "zip64 central directory offset")
        } else if entryCount == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            throw .invalidZip(path: path, reason: "zip64 values without a zip64 locator")
        }
        try c.require(cdOffset, cdSize, "central directory")
        guard cdOffset + cdSize <= eocd else {
            throw .offsetOutOfRange(path: path, what: "central directory", offset: cdOffset, length: cdSize, fileSize: eocd)
        }
        guard entryCount <= cdSize / 46 else {
            throw .invalidZip(path: path, reason: "\(entryCount) entries cannot fit in a central directory of \(cdSize) bytes")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        // Entries may share compressed bytes, so the ratio bound also holds for their total.
        let (totalBound, boundOverflow) = size.multipliedReportingOverflow(by: maximumCompressionRatio)
        var declaredTotal = 0
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for _ in 0 ..< entryCount {
            guard p + 46 <= cdEnd else { throw .truncated(path: path, what: "central directory record", offset: p) }
            guard c.u32(p) == centralHeaderSignature else {
                throw .invalidZip(path: path, reason: "bad central directory signature at \(p)")
            }
            let flags = c.u16(p + 8)
            let method = c.u16(p + 10)
            let crc = c.u32(p + 16)
            var compressed = Int(c.u32(p + 20))
            var uncompressed = Int(c.u32(p + 24))
            let nameLength = c.u16(p + 28), extraLength = c.u16(p + 30), commentLength = c.u16(p + 32)
            var localOffset = Int(c.u32(p + 42))
            let recordEnd = p + 46 + nameLength + extraLength + commentLength
            guard recordEnd <= cdEnd else { throw .truncated(path: path, what: "central directory record", offset: p) }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[p + 46 ..< p + 46 + nameLength]), as: UTF8.self)
            guard flags & 1 == 0 else { throw .invalidZip(path: path, reason: "entry '\(name)' is encrypted") }
            // ZIP64 extended information: only the fields whose 32-bit value is saturated, in this order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = c.u16(e), length = c.u16(e + 2)
                guard e + 4 + length <= extraEnd else { throw .truncated(path: path, what: "extra field of '\(name)'", offset: e) }
                if id == 0x0001 {
                    var f = e + 4
                    func next(_ what: String) throws(TorchArchiveError) -> Int {
                        guard f + 8 <= e + 4 + length else { throw .truncated(path: path, what: "zip64 field of '\(name)'", offset: f) }
                        defer { f += 8 }
                        return try c.u64(f, what)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next("zip64 uncompressed size") }
                    if compressed == 0xFFFF_FFFF { compressed = try next("zip64 compressed size") }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next("zip64 local header offset") }
                }
                e += 4 + length
            }
            try c.require(localOffset, 30, "local header of '\(name)'")
            guard c.u32(localOffset) == localHeaderSignature else {
                throw .invalidZip(path: path, reason: "bad local header signature for '\(name)' at \(localOffset)")
            }
            let dataOffset = localOffset + 30 + c.u16(localOffset + 26) + c.u16(localOffset + 28)
            try c.require(dataOffset, compressed, "data of '\(name)'")
            guard dataOffset + compressed <= cdOffset else {
                throw .offsetOutOfRange(path: path, what: "data of '\(name)'", offset: dataOffset, length: compressed, fileSize: cdOffset)
            }
            switch method {
            case 0:
                guard compressed == uncompressed else {
                    throw .invalidZip(path: path, reason: "stored entry '\(name)' has compressed size \(compressed) but uncompressed size \(uncompressed)")
                }
            case 8:
                let (bound, overflow) = max(compressed, 1).multipliedReportingOverflow(by: maximumCompressionRatio)
                guard overflow || uncompressed <= bound else {
                    throw .invalidZip(path: path, reason: "entry '\(name)' declares \(uncompressed) bytes from \(compressed) compressed bytes")
                }
            default: break // reported when the contents are asked for
            }
            let (total, totalOverflow) = declaredTotal.addingReportingOverflow(uncompressed)
            guard !totalOverflow, boundOverflow || total <= totalBound else {
                throw .invalidZip(path: path, reason: "entries declare more than \(maximumCompressionRatio) × the file's \(size) bytes in total (at '\(name)')")
            }
            declaredTotal = total
            entries.append(Entry(name: name, method: method, crc32: crc, compressedSize: compressed,
                                 uncompressedSize: uncompressed, localHeaderOffset: localOffset, dataOffset: dataOffset))
            p = recordEnd
        }
        return entries
    }
}
