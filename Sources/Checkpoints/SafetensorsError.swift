/// Why a safetensors file was refused.
public enum SafetensorsError: Error, Sendable, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case fileTooSmall(path: String, size: Int)
    case headerTooLarge(path: String, headerSize: UInt64, fileSize: Int)
    case invalidHeader(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case invalidShape(path: String, tensor: String, shape: String)
    case byteCountMismatch(path: String, tensor: String, expected: Int, found: Int)
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    case overlappingTensors(path: String, first: String, second: String)
    case holeInData(path: String, offset: Int)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open: \(r)"
        case let .fileTooSmall(p, s): return "\(p): file of \(s) bytes is too small to hold a safetensors header"
        case let .headerTooLarge(p, h, f): return "\(p): header claims \(h) bytes but the file holds \(f)"
        case let .invalidHeader(p, r): return "\(p): invalid safetensors header: \(r)"
        case let .unknownDType(p, t, d): return "\(p): tensor '\(t)': unknown dtype '\(d)'"
        case let .invalidShape(p, t, s): return "\(p): tensor '\(t)': invalid shape \(s)"
        case let .byteCountMismatch(p, t, e, f):
            return "\(p): tensor '\(t)': shape and dtype need \(e) bytes, data_offsets span \(f)"
        case let .offsetsOutOfRange(p, t, b, e, d):
            return "\(p): tensor '\(t)': data_offsets [\(b), \(e)] outside the data section of \(d) bytes"
        case let .overlappingTensors(p, a, b): return "\(p): tensors '\(a)' and '\(b)' overlap"
        case let .holeInData(p, o): return "\(p): data section has unused bytes at offset \(o)"
        case let .writeFailed(p, r): return "\(p): write failed: \(r)"
        }
    }
}
