/// Why a PyTorch checkpoint (zip or legacy), a zip archive or a pickle inside one was refused.
public enum TorchArchiveError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file could not be opened or mapped (the system's reason).
    case cannotOpen(path: String, reason: String)
    /// The first bytes are neither a zip local header nor a legacy torch pickle.
    case unrecognizedFormat(path: String)
    /// A structure ends past the end of the file (or of its enclosing record).
    case truncated(path: String, what: String, offset: Int)
    /// A zip structure is malformed: bad signature, impossible count, inconsistent fields.
    case invalidZip(path: String, reason: String)
    /// An offset or size inside the zip points outside the file.
    case offsetOutOfRange(path: String, what: String, offset: Int, length: Int, fileSize: Int)
    /// A zip entry compressed other than stored (0) or deflate (8).
    case unsupportedCompression(path: String, entry: String, method: Int)
    /// A deflated entry that zlib cannot inflate to its declared size.
    case invalidCompressedData(path: String, entry: String, reason: String)
    /// An inflated entry's CRC-32 differs from the one recorded in the archive.
    case checksumMismatch(path: String, entry: String, expected: UInt32, found: UInt32)
    /// An entry the checkpoint needs (`data.pkl`, a storage) is not in the archive.
    case missingEntry(path: String, entry: String)
    /// Two entries of the same name, or two `data.pkl` files.
    case duplicateEntry(path: String, entry: String)
    /// An opcode the restricted unpickler does not implement, at a byte offset of the pickle.
    case badOpcode(path: String, opcode: UInt8, offset: Int)
    /// A pickle that is malformed at byte `offset` (stack underflow, a wrong argument type, a truncated opcode, …).
    case invalidPickle(path: String, offset: Int, reason: String)
    /// A `GLOBAL`/`STACK_GLOBAL` outside the allow-list; nothing is ever resolved or executed.
    case forbiddenGlobal(path: String, module: String, name: String)
    /// The pickle passes one of the unpickler's bounds (memo size, stack depth, nesting depth).
    case pickleLimitExceeded(path: String, what: String, limit: Int)
    /// The unpickled object is not what a state dict holds.
    case unexpectedObject(path: String, reason: String)
    /// A storage or dtype global with no matching `DType` (`storageType` is `module.name`).
    case unsupportedDType(path: String, storageType: String)
    /// A checkpoint saved big-endian; only little-endian is read.
    case unsupportedByteOrder(path: String, byteOrder: String)
    /// A storage's bytes differ from what its element count needs.
    case storageSizeMismatch(path: String, storage: String, expected: Int, found: Int)
    /// A tensor's offset, size and strides reach past the end of its storage.
    case tensorOutOfStorage(path: String, tensor: String, neededElements: Int, storageElements: Int)
    /// A tensor's size or stride is negative, of another rank than the other, of rank above the limit, or overflows.
    case invalidTensorGeometry(path: String, tensor: String, reason: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open: \(r)"
        case let .unrecognizedFormat(p): return "\(p): not a pytorch checkpoint (neither a zip archive nor a legacy pickle)"
        case let .truncated(p, w, o): return "\(p): truncated: \(w) at offset \(o) runs past the end"
        case let .invalidZip(p, r): return "\(p): invalid zip archive: \(r)"
        case let .offsetOutOfRange(p, w, o, l, f):
            return "\(p): \(w) at offset \(o) with length \(l) lies outside the file of \(f) bytes"
        case let .unsupportedCompression(p, e, m): return "\(p): entry '\(e)': unsupported compression method \(m)"
        case let .invalidCompressedData(p, e, r): return "\(p): entry '\(e)': invalid compressed data: \(r)"
        case let .checksumMismatch(p, e, x, f):
            return "\(p): entry '\(e)': crc32 \(String(f, radix: 16)) does not match the recorded \(String(x, radix: 16))"
        case let .missingEntry(p, e): return "\(p): missing archive entry '\(e)'"
        case let .duplicateEntry(p, e): return "\(p): archive entry '\(e)' appears twice"
        case let .badOpcode(p, op, o): return "\(p): pickle: unsupported opcode 0x\(String(op, radix: 16)) at offset \(o)"
        case let .invalidPickle(p, o, r): return "\(p): pickle: \(r) at offset \(o)"
        case let .forbiddenGlobal(p, m, n): return "\(p): pickle: global '\(m).\(n)' is not allowed"
        case let .pickleLimitExceeded(p, w, l): return "\(p): pickle: \(w) exceeds the limit of \(l)"
        case let .unexpectedObject(p, r): return "\(p): unexpected object: \(r)"
        case let .unsupportedDType(p, s): return "\(p): unsupported storage type '\(s)'"
        case let .unsupportedByteOrder(p, b): return "\(p): byte order '\(b)' is not supported (only little)"
        case let .storageSizeMismatch(p, s, e, f): return "\(p): storage '\(s)': expected \(e) bytes, found \(f)"
        case let .tensorOutOfStorage(p, t, n, s):
            return "\(p): tensor '\(t)': needs \(n) elements of its storage, which holds \(s)"
        case let .invalidTensorGeometry(p, t, r): return "\(p): tensor '\(t)': \(r)"
        case let .writeFailed(p, r): return "\(p): write failed: \(r)"
        }
    }
}
