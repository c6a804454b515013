import Foundation
import Tensors

/// Reads the safetensors format: an 8-byte little-endian header length, a JSON header, then the data
/// section. Everything is validated before any tensor is created; tensors view the memory-mapped file.
public enum SafetensorsReader {
    /// Largest header accepted (the reference library's limit).
    public static let maximumHeaderSize: UInt64 = 100_000_000

    /// One header entry after validation.
    public struct Entry: Sendable, Equatable {
        /// The tensor's name as stored.
        public var name: String
        /// Element type.
        public var dtype: DType
        /// Shape, outermost first.
        public var shape: Shape
        /// Byte range inside the data section.
        public var dataRange: Range<Int>
    }

    /// The validated header of a file: entries in data order, metadata, and the data section's start.
    public struct Header: Sendable {
        /// The tensors, in data-section order.
        public var entries: [Entry]
        /// The `__metadata__` strings (e.g. `format: pt`).
        public var metadata: [String: String]
        /// Where the data section starts in the file: 8 + `headerSize`.
        public var dataOffset: Int
        /// Bytes of the JSON header.
        public var headerSize: Int
    }

    /// Maps `path` and returns its tensors (views into the mapping, no copy) in header order.
    public static func read(path: String) throws(SafetensorsError) -> StateDict {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch { throw .cannotOpen(path: path, reason: error.reason) }
        return try read(mapped: storage, path: path)
    }

    /// The tensors of a safetensors file already mapped as `storage` (views into it), validated as `read(path:)`
    /// validates; `path` names the file in errors.
    package static func read(mapped storage: ByteStorage, path: String) throws(SafetensorsError) -> StateDict {
        tensors(of: try parseHeader(storage.bytes, path: path), in: storage)
    }

    /// The tensors of a mapped stream framed data first: the data section, then the JSON header, then the
    /// header's length as a little-endian `UInt64` (how the libhdf5 helper hands weights back: it reads them
    /// into place before it knows the header). Validated as `read(path:)` validates.
    package static func read(mappedTrailingHeader storage: ByteStorage, path: String) throws(SafetensorsError) -> StateDict {
        let bytes = storage.bytes
        guard bytes.count >= 8 else { throw .fileTooSmall(path: path, size: bytes.count) }
        let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
        guard n <= maximumHeaderSize, n <= UInt64(bytes.count - 8) else {
            throw .headerTooLarge(path: path, headerSize: n, fileSize: bytes.count)
        }
        let dataSize = bytes.count - 8 - Int(n)
        let json = UnsafeRawBufferPointer(rebasing: bytes[dataSize ..< bytes.count - 8])
        return tensors(of: try parseHeader(json: json, dataOffset: 0, dataSize: dataSize, path: path), in: storage)
    }

    private static func tensors(of header: Header, in storage: ByteStorage) -> StateDict {
        var dict = StateDict()
        dict.metadata = header.metadata
        for e in header.entries {
            dict[e.name] = Tensor(dtype: e.dtype, shape: e.shape, storage: storage,
                                  byteOffset: header.dataOffset + e.dataRange.lowerBound)
        }
        return dict
    }

    /// Validates the header of an in-memory safetensors file (`bytes` is the whole file).
    public static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws(SafetensorsError) -> Header {
        guard bytes.count >= 8 else { throw .fileTooSmall(path: path, size: bytes.count) }
        let n = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard n <= maximumHeaderSize, n <= UInt64(bytes.count - 8) else {
            throw .headerTooLarge(path: path, headerSize: n, fileSize: bytes.count)
        }
        let headerSize = Int(n)
        return try parseHeader(json: UnsafeRawBufferPointer(rebasing: bytes[8 ..< 8 + headerSize]),
                               dataOffset: 8 + headerSize, dataSize: bytes.count - 8 - headerSize, path: path)
    }

    /// Validates a JSON header whose data section of `dataSize` bytes starts at `dataOffset` of the stream.
    static func parseHeader(json: UnsafeRawBufferPointer, dataOffset: Int, dataSize: Int,
                            path: String) throws(SafetensorsError) -> Header {
        let headerSize = json.count
        guard headerSize >= 2, json[0] == UInt8(ascii: "{") else {
            throw .invalidHeader(path: path, reason: "header does not start with '{'")
        }
        // Stream the header against its schema (no intermediate JSON tree): { name: {dtype, shape, data_offsets}, "__metadata__": {k: v} }.
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(headerSize / 96)
        var seen = Set<String>()
        var p = HeaderJSON.Parser(bytes: json)
        func syntax(_ e: HeaderJSON.ParseError) -> SafetensorsError {
            .invalidHeader(path: path, reason: "header is not valid JSON (\(e.reason) at byte \(e.offset))")
        }
        do {
            p.skipSpace()
            try p.expect(UInt8(ascii: "{"))
            p.skipSpace()
            var first = true
            while true {
                p.skipSpace()
                if p.peek(UInt8(ascii: "}")) { p.i += 1; break }
                if !first { try p.expect(UInt8(ascii: ",")); p.skipSpace() }
                first = false
                let name = try p.string()
                p.skipSpace()
                try p.expect(UInt8(ascii: ":"))
                p.skipSpace()
                guard name.utf8.count <= InputLimits.maximumTensorNameBytes else {
                    throw SafetensorsError.invalidHeader(path: path, reason: "a tensor name of \(name.utf8.count) bytes (at most \(InputLimits.maximumTensorNameBytes) are accepted)")
                }
                guard seen.insert(name).inserted else { throw SafetensorsError.invalidHeader(path: path, reason: "duplicate key '\(name)'") }
                if name == "__metadata__" {
                    guard case let .object(m) = try p.value(depth: 1) else {
                        throw SafetensorsError.invalidHeader(path: path, reason: "__metadata__ is not an object")
                    }
                    for item in m {
                        guard case let .string(v) = item.value else {
                            throw SafetensorsError.invalidHeader(path: path, reason: "__metadata__ value of '\(item.key)' is not a string")
                        }
                        metadata[item.key] = v
                    }
                    continue
                }
                guard p.peek(UInt8(ascii: "{")) else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' is not an object") }
                p.i += 1
                var dtypeName: String?, dims: [Int]?, offsets: [Int]?
                var firstField = true
                while true {
                    p.skipSpace()
                    if p.peek(UInt8(ascii: "}")) { p.i += 1; break }
                    if !firstField { try p.expect(UInt8(ascii: ",")); p.skipSpace() }
                    firstField = false
                    let key = try p.string()
                    p.skipSpace()
                    try p.expect(UInt8(ascii: ":"))
                    p.skipSpace()
                    switch key {
                    case "dtype":
                        guard p.peek(UInt8(ascii: "\"")) else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no dtype") }
                        dtypeName = try p.string()
                    case "shape":
                        let start = p.i
                        guard p.peek(UInt8(ascii: "[")) else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no shape") }
                        guard let ints = try p.integerArray(), ints.allSatisfy({ $0 >= 0 }) else {
                            let text = String(decoding: UnsafeRawBufferPointer(rebasing: p.bytes[start ..< p.i]), as: UTF8.self)
                            throw SafetensorsError.invalidShape(path: path, tensor: name, shape: text.replacingOccurrences(of: ",", with: ", "))
                        }
                        dims = ints
                    case "data_offsets":
                        guard p.peek(UInt8(ascii: "[")), let ints = try p.integerArray(), ints.count == 2 else {
                            throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no valid data_offsets")
                        }
                        offsets = ints
                    default:
                        _ = try p.value(depth: 2) // unknown fields are ignored, as the reference library does
                    }
                }
                guard let dtypeName else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no dtype") }
                guard let dtype = DType(rawValue: dtypeName) else {
                    throw SafetensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
                }
                guard let dims else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no shape") }
                guard let offsets else { throw SafetensorsError.invalidHeader(path: path, reason: "entry '\(name)' has no valid data_offsets") }
                let shape = Shape(dims)
                let begin = offsets[0], end = offsets[1]
                guard begin >= 0, end >= begin, end <= dataSize else {
                    throw SafetensorsError.offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
                }
                guard let count = shape.checkedElementCount,
                      case let (bytesNeeded, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize), !overflow else {
                    throw SafetensorsError.invalidShape(path: path, tensor: name, shape: shape.description)
                }
                guard bytesNeeded == end - begin else {
                    throw SafetensorsError.byteCountMismatch(path: path, tensor: name, expected: bytesNeeded, found: end - begin)
                }
                entries.append(Entry(name: name, dtype: dtype, shape: shape, dataRange: begin ..< end))
            }
            p.skipSpace()
            guard p.i == p.bytes.count else { throw HeaderJSON.ParseError(reason: "trailing characters", offset: p.i) }
        } catch let e as HeaderJSON.ParseError {
            throw syntax(e)
        } catch let e as SafetensorsError {
            throw e
        } catch {
            throw .invalidHeader(path: path, reason: "\(error)")
        }
        // Order by offset (ties by name so empty tensors sort stably), then require the ranges to tile the data section.
        entries.sort { ($0.dataRange.lowerBound, $0.dataRange.upperBound, $0.name) < ($1.dataRange.lowerBound, $1.dataRange.upperBound, $1.name) }
        var cursor = 0
        for (i, e) in entries.enumerated() {
            if e.dataRange.lowerBound < cursor {
                throw .overlappingTensors(path: path, first: entries[i - 1].name, second: e.name)
            }
            if e.dataRange.lowerBound > cursor { throw .holeInData(path: path, offset: cursor) }
            cursor = e.dataRange.upperBound
        }
        if cursor != dataSize { throw .holeInData(path: path, offset: cursor) }
        return Header(entries: entries, metadata: metadata, dataOffset: dataOffset, headerSize: headerSize)
    }

    /// A short rendering of a JSON value for error messages.
    static func brief(_ v: HeaderJSON) -> String {
        switch v {
        case let .integer(i): return String(i)
        case let .double(d): return String(d)
        case let .string(s): return "\"" + s.prefix(32) + "\""
        case let .bool(b): return String(b)
        case .null: return "null"
        case .array: return "[…]"
        case .object: return "{…}"
        }
    }
}
