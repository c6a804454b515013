/// Why a safetensors file was refused.
public enum SafetensorsError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file could not be opened or mapped (the system's reason).
    case cannotOpen(path: String, reason: String)
    /// Fewer than the 8 bytes of the header length.
    case fileTooSmall(path: String, size: Int)
    /// The header length passes the end of the file or `SafetensorsReader.maximumHeaderSize`.
    case headerTooLarge(path: String, headerSize: UInt64, fileSize: Int)
    /// The header is not valid JSON of the safetensors schema
    /// (`{name: {dtype, shape, data_offsets}, "__metadata__": {…}}`).
    case invalidHeader(path: String, reason: String)
    /// A dtype string that is not one of `DType`'s.
    case unknownDType(path: String, tensor: String, dtype: String)
    /// A shape that is not a list of non-negative integers, or whose element count overflows.
    case invalidShape(path: String, tensor: String, shape: String)
    /// `data_offsets` span another number of bytes than shape × dtype size.
    case byteCountMismatch(path: String, tensor: String, expected: Int, found: Int)
    /// `data_offsets` [begin, end) do not lie inside the data section.
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// Two tensors share bytes of the data section.
    case overlappingTensors(path: String, first: String, second: String)
    /// Bytes of the data section that belong to no tensor, from `offset` (the reference library refuses them too).
    case holeInData(path: String, offset: Int)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)

    /// The message `gpt2kit` prints, starting with the path.
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
