/// Writes a zip archive of stored (uncompressed) entries the way PyTorch does: each entry's data starts at
/// a multiple of 64 bytes (the local header's extra field is padded with an `FB` record), CRC-32 from zlib,
/// ZIP64 records where sizes or offsets need them, and always a ZIP64 end record as torch writes one.
struct ZipWriter {
    static let alignment = 64

    private struct Record {
        var name: [UInt8]
        var crc: UInt32
        var size: Int
        var offset: Int
    }

    private let file: AtomicFileWriter
    private var records: [Record] = []

    init(file: AtomicFileWriter) { self.file = file }

    /// Appends a stored entry holding `bytes`.
    mutating func add(name: String, bytes: UnsafeRawBufferPointer) throws(FileWriteFailure) {
        let nameBytes = Array(name.utf8)
        let offset = file.offset
        let crc = ZipArchive.crc32(of: bytes)
        let big = bytes.count >= 0xFFFF_FFFF
        var extra: [UInt8] = []
        if big {
            extra.appendLittleEndian16(0x0001); extra.appendLittleEndian16(16); extra.appendLittleEndian64(bytes.count); extra.appendLittleEndian64(bytes.count)
        }
        let unpadded = offset + 30 + nameBytes.count + extra.count
        if unpadded % Self.alignment != 0 {
            let pad = (Self.alignment - (unpadded + 4) % Self.alignment) % Self.alignment
            extra.appendLittleEndian16(0x4246) // "FB"
            extra.appendLittleEndian16(pad)
            extra += [UInt8](repeating: UInt8(ascii: "Z"), count: pad)
        }
        var header: [UInt8] = []
        header.appendLittleEndian32(ZipArchive.localHeaderSignature)
        header.appendLittleEndian16(big ? 45 : 20)
        header.appendLittleEndian16(0)          // flags
        header.appendLittleEndian16(0)          // stored
        header.appendLittleEndian16(0); header.appendLittleEndian16(0x21) // 1980-01-01 00:00
        header.appendLittleEndian32(crc)
        header.appendLittleEndian32(big ? 0xFFFF_FFFF : UInt32(bytes.count))
        header.appendLittleEndian32(big ? 0xFFFF_FFFF : UInt32(bytes.count))
        header.appendLittleEndian16(nameBytes.count)
        header.appendLittleEndian16(extra.count)
        header += nameBytes
        header += extra
        try file.write(header)
        assert(file.offset % Self.alignment == 0)
        try file.write(bytes)
        records.append(Record(name: nameBytes, crc: crc, size: bytes.count, offset: offset))
    }

    /// Appends a stored entry holding `bytes`.
    mutating func add(name: String, bytes: [UInt8]) throws(FileWriteFailure) {
        var copy = self
        let result = bytes.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try copy.add(name: name, bytes: raw) } }
        self = copy
        try result.get()
    }

    /// Writes the central directory and the end records.
    func finish() throws(FileWriteFailure) {
        let cdOffset = file.offset
        for r in records {
            let bigSize = r.size >= 0xFFFF_FFFF, bigOffset = r.offset >= 0xFFFF_FFFF
            var extra: [UInt8] = []
            if bigSize || bigOffset {
                extra.appendLittleEndian16(0x0001)
                extra.appendLittleEndian16((bigSize ? 16 : 0) + (bigOffset ? 8 : 0))
                if bigSize { extra.appendLittleEndian64(r.size); extra.appendLittleEndian64(r.size) }
                if bigOffset { extra.appendLittleEndian64(r.offset) }
            }
            var h: [UInt8] = []
            h.appendLittleEndian32(ZipArchive.centralHeaderSignature)
            h.appendLittleEndian16(extra.isEmpty ? 20 : 45); h.appendLittleEndian16(extra.isEmpty ? 20 : 45)
            h.appendLittleEndian16(0); h.appendLittleEndian16(0); h.appendLittleEndian16(0); h.appendLittleEndian16(0x21)
            h.appendLittleEndian32(r.crc)
            h.appendLittleEndian32(bigSize ? 0xFFFF_FFFF : UInt32(r.size))
            h.appendLittleEndian32(bigSize ? 0xFFFF_FFFF : UInt32(r.size))
            h.appendLittleEndian16(r.name.count); h.appendLittleEndian16(extra.count); h.appendLittleEndian16(0) // comment
            h.appendLittleEndian16(0); h.appendLittleEndian16(0); h.appendLittleEndian32(0)                       // disk, internal and external attributes
            h.appendLittleEndian32(bigOffset ? 0xFFFF_FFFF : UInt32(r.offset))
            h += r.name
            h += extra
            try file.write(h)
        }
        let cdSize = file.offset - cdOffset
        let zip64Offset = file.offset
        var end: [UInt8] = []
        end.appendLittleEndian32(ZipArchive.zip64EndSignature)
        end.appendLittleEndian64(44)
        end.appendLittleEndian16(45); end.appendLittleEndian16(45); end.appendLittleEndian32(0); end.appendLittleEndian32(0)
        end.appendLittleEndian64(records.count); end.appendLittleEndian64(records.count)
        end.appendLittleEndian64(cdSize); end.appendLittleEndian64(cdOffset)
        end.appendLittleEndian32(ZipArchive.zip64LocatorSignature)
        end.appendLittleEndian32(0); end.appendLittleEndian64(zip64Offset); end.appendLittleEndian32(1)
        end.appendLittleEndian32(ZipArchive.endSignature)
        end.appendLittleEndian16(0); end.appendLittleEndian16(0)
        end.appendLittleEndian16(min(records.count, 0xFFFF)); end.appendLittleEndian16(min(records.count, 0xFFFF))
        end.appendLittleEndian32(UInt32(min(cdSize, 0xFFFF_FFFF)))
        end.appendLittleEndian32(UInt32(min(cdOffset, 0xFFFF_FFFF)))
        end.appendLittleEndian16(0)
        try file.write(end)
    }
}

extension [UInt8] {
    mutating func appendLittleEndian16(_ v: Int) { let x = UInt16(truncatingIfNeeded: v); append(UInt8(x & 0xFF)); append(UInt8(x >> 8)) }
    mutating func appendLittleEndian32(_ v: UInt32) { for i in 0 ..< 4 { append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func appendLittleEndian64(_ v: Int) { let x = UInt64(bitPattern: Int64(v)); for i in 0 ..< 8 { append(UInt8(truncatingIfNeeded: x >> (8 * UInt64(i)))) } }
}
