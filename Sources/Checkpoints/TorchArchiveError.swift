/// Why a PyTorch checkpoint (zip or legacy), a zip archive or a pickle inside one was refused.
public enum TorchArchiveError: Error, Sendable, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    /// The first bytes are neither a zip local header nor a legacy torch pickle.
    case unrecognizedFormat(path: String)
    /// A structure ends past the end of the file (or of its enclosing record).
    case truncated(path: String, what: String, offset: Int)
    /// A zip structure is malformed: bad signature, impossible count, inconsistent fields.
    case invalidZip(path: String, reason: String)
    /// An offset or size inside the zip points outside the file.
    case offsetOutOfRange(path: String, what: String, offset: Int, length: Int, fileSize: Int)
    case unsupportedCompression(path: String, entry: String, method: Int)
    case invalidCompressedData(path: String, entry: String, reason: String)
    case checksumMismatch(path: String, entry: String, expected: UInt32, found: UInt32)
    case missingEntry(path: String, entry: String)
    case duplicateEntry(path: String, entry: String)
    /// An opcode the restricted unpickler does not implement, at a byte offset of the pickle.
    case badOpcode(path: String, opcode: UInt8, offset: Int)
    case invalidPickle(path: String, offset: Int, reason: String)
    /// A `GLOBAL`/`STACK_GLOBAL` outside the allow-list; nothing is ever resolved or executed.
    case forbiddenGlobal(path: String, module: String, name: String)
    case pickleLimitExceeded(path: String, what: String, limit: Int)
    /// The unpickled object is not what a state dict holds.
    case unexpectedObject(path: String, reason: String)
    case unsupportedDType(path: String, storageType: String)
    case unsupportedByteOrder(path: String, byteOrder: String)
    case storageSizeMismatch(path: String, storage: String, expected: Int, found: Int)
    case tensorOutOfStorage(path: String, tensor: String, neededElements: Int, storageElements: Int)
    case invalidTensorGeometry(path: String, tensor: String, reason: String)
    case writeFailed(path: String, reason: String)

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
