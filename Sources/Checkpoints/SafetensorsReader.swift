import Foundation
import Tensors

/// Reads the safetensors format: an 8-byte little-endian header length, a JSON header, then the data
/// section. Everything is validated before any tensor is created; tensors view the memory-mapped file.
public enum SafetensorsReader {
    /// Largest header accepted (the reference library's limit).
    public static let maximumHeaderSize: UInt64 = 100_000_000

    /// One header entry after validation.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: Shape
        /// Byte range inside the data section.
        public var dataRange: Range<Int>
    }

    /// The validated header of a file: entries in data order, metadata, and the data section's start.
    public struct Header: Sendable {
        public var entries: [Entry]
        public var metadata: [String: String]
        public var dataOffset: Int
        public var headerSize: Int
    }

    /// Maps `path` and returns its tensors (views into the mapping, no copy) in header order.
    public static func read(path: String) throws(SafetensorsError) -> StateDict {
        guard let storage = ByteStorage.mapFile(atPath: path) else {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        let header = try parseHeader(storage.bytes, path: path)
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
        guard headerSize >= 2, bytes[8] == UInt8(ascii: "{") else {
            throw .invalidHeader(path: path, reason: "header does not start with '{'")
        }
        let parsed: HeaderJSON
        do { parsed = try HeaderJSON.parse(UnsafeRawBufferPointer(rebasing: bytes[8 ..< 8 + headerSize])) } catch {
            throw .invalidHeader(path: path, reason: "header is not valid JSON (\(error.reason) at byte \(error.offset))")
        }
        guard case let .object(members) = parsed else {
            throw .invalidHeader(path: path, reason: "header is not a JSON object")
        }
        let dataOffset = 8 + headerSize
        let dataSize = bytes.count - dataOffset
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        var seen = Set<String>()
        for member in members {
            let name = member.key, value = member.value
            guard seen.insert(name).inserted else { throw .invalidHeader(path: path, reason: "duplicate key '\(name)'") }
            if name == "__metadata__" {
                guard case let .object(m) = value else {
                    throw .invalidHeader(path: path, reason: "__metadata__ is not an object")
                }
                for item in m {
                    let k = item.key
                    guard case let .string(s) = item.value else {
                        throw .invalidHeader(path: path, reason: "__metadata__ value of '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard case let .object(fields) = value else {
                throw .invalidHeader(path: path, reason: "entry '\(name)' is not an object")
            }
            func field(_ key: String) -> HeaderJSON? { fields.first { $0.key == key }?.value }
            guard case let .string(dtypeName)? = field("dtype") else {
                throw .invalidHeader(path: path, reason: "entry '\(name)' has no dtype")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw .unknownDType(path: path, tensor: name, dtype: dtypeName)
            }
            guard case let .array(shapeValues)? = field("shape") else {
                throw .invalidHeader(path: path, reason: "entry '\(name)' has no shape")
            }
            var dims: [Int] = []
            dims.reserveCapacity(shapeValues.count)
            for d in shapeValues {
                guard case let .integer(dim) = d, dim >= 0 else {
                    throw .invalidShape(path: path, tensor: name, shape: "[" + shapeValues.map(Self.brief).joined(separator: ", ") + "]")
                }
                dims.append(dim)
            }
            let shape = Shape(dims)
            guard case let .array(offsets)? = field("data_offsets"), offsets.count == 2,
                  case let .integer(begin) = offsets[0], case let .integer(end) = offsets[1] else {
                throw .invalidHeader(path: path, reason: "entry '\(name)' has no valid data_offsets")
            }
            guard begin >= 0, end >= begin, end <= dataSize else {
                throw .offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
            }
            guard let count = shape.checkedElementCount,
                  case let (bytesNeeded, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize), !overflow else {
                throw .invalidShape(path: path, tensor: name, shape: shape.description)
            }
            guard bytesNeeded == end - begin else {
                throw .byteCountMismatch(path: path, tensor: name, expected: bytesNeeded, found: end - begin)
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, dataRange: begin ..< end))
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
