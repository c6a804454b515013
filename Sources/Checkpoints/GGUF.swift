import Tensors

/// GGUF version 3 (ggml `docs/gguf.md`), the file format of llama.cpp: little-endian; magic `GGUF`, version,
/// tensor count, metadata count; typed key/value pairs; tensor infos (name, dimensions innermost first,
/// ggml type, offset into the data section); the data section aligned to `general.alignment` (default 32).
///
/// The reader checks every count and length against the bytes left before allocating, and every tensor's
/// type, shape, alignment and byte range before use; F32/F16/BF16 tensors are views into the mapped file,
/// Q8_0 tensors are dequantised to F32. The writer writes F32, F16 and Q8_0. Knows no model names.
public enum GGUF {
    /// The magic `GGUF` read as a little-endian UInt32.
    static let magic: UInt32 = 0x4655_4747
    /// The version the writer writes (the reader also accepts 2).
    public static let version: UInt32 = 3
    /// Alignment of the data section and of every tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// The metadata key that sets the alignment (a power of two).
    public static let alignmentKey = "general.alignment"

    /// Metadata value types.
    public enum ValueType: UInt32, Sendable {
        /// `GGUF_TYPE_UINT8`.
        case uint8 = 0
        /// `GGUF_TYPE_INT8`.
        case int8
        /// `GGUF_TYPE_UINT16`.
        case uint16
        /// `GGUF_TYPE_INT16`.
        case int16
        /// `GGUF_TYPE_UINT32`.
        case uint32
        /// `GGUF_TYPE_INT32`.
        case int32
        /// `GGUF_TYPE_FLOAT32`.
        case float32
        /// `GGUF_TYPE_BOOL` (one byte, 0 or 1).
        case bool
        /// `GGUF_TYPE_STRING`: a uint64 byte length, then UTF-8 bytes.
        case string
        /// `GGUF_TYPE_ARRAY`: an element type, a uint64 count, then the elements.
        case array
        /// `GGUF_TYPE_UINT64`.
        case uint64
        /// `GGUF_TYPE_INT64`.
        case int64
        /// `GGUF_TYPE_FLOAT64`.
        case float64

        var fixedSize: Int? {
            switch self {
            case .uint8, .int8, .bool: return 1
            case .uint16, .int16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64: return 8
            case .string, .array: return nil
            }
        }
    }

    /// A metadata value.
    public indirect enum Value: Sendable, Equatable {
        /// A `uint8` value.
        case uint8(UInt8)
        /// An `int8` value.
        case int8(Int8)
        /// A `uint16` value.
        case uint16(UInt16)
        /// An `int16` value.
        case int16(Int16)
        /// A `uint32` value.
        case uint32(UInt32)
        /// An `int32` value.
        case int32(Int32)
        /// A `float32` value.
        case float32(Float)
        /// A `bool` value.
        case bool(Bool)
        /// A UTF-8 string.
        case string(String)
        /// A `uint64` value.
        case uint64(UInt64)
        /// An `int64` value.
        case int64(Int64)
        /// A `float64` value.
        case float64(Double)
        /// An array of one element type (nested arrays are allowed by the format).
        case array(ValueType, [Value])

        /// The value as an integer, when it is one of the integer types (or a whole float).
        public var integer: Int? {
            switch self {
            case let .uint8(v): return Int(v)
            case let .int8(v): return Int(v)
            case let .uint16(v): return Int(v)
            case let .int16(v): return Int(v)
            case let .uint32(v): return Int(v)
            case let .int32(v): return Int(v)
            case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
            case let .int64(v): return Int(v)
            default: return nil
            }
        }

        /// The value as a Double, when it is a number.
        public var number: Double? {
            switch self {
            case let .float32(v): return Double(v)
            case let .float64(v): return v
            default: return integer.map(Double.init)
            }
        }

        /// The value as a String, when it is a string.
        public var string: String? { if case let .string(s) = self { return s } else { return nil } }

        var type: ValueType {
            switch self {
            case .uint8: return .uint8
            case .int8: return .int8
            case .uint16: return .uint16
            case .int16: return .int16
            case .uint32: return .uint32
            case .int32: return .int32
            case .float32: return .float32
            case .bool: return .bool
            case .string: return .string
            case .uint64: return .uint64
            case .int64: return .int64
            case .float64: return .float64
            case .array: return .array
            }
        }
    }

    /// The ggml tensor types GPT2Kit reads and writes.
    public enum TensorType: UInt32, Sendable, CaseIterable {
        /// `GGML_TYPE_F32`: 4 bytes per element.
        case f32 = 0
        /// `GGML_TYPE_F16`: IEEE half, 2 bytes per element.
        case f16 = 1
        /// `GGML_TYPE_Q8_0`: blocks of 32 int8 with one f16 scale, 34 bytes per block.
        case q8_0 = 8
        /// `GGML_TYPE_BF16`: bfloat16, 2 bytes per element.
        case bf16 = 30

        /// Elements per block and bytes per block.
        public var block: (elements: Int, bytes: Int) {
            switch self {
            case .f32: return (1, 4)
            case .f16, .bf16: return (1, 2)
            case .q8_0: return (32, 34)
            }
        }

        /// ggml's name of the type: `F32`, `F16`, `Q8_0`, `BF16`.
        public var name: String {
            switch self {
            case .f32: return "F32"
            case .f16: return "F16"
            case .q8_0: return "Q8_0"
            case .bf16: return "BF16"
            }
        }
    }

    /// One tensor's entry in the file.
    public struct TensorInfo: Sendable, Equatable {
        /// The tensor's name as stored (`blk.0.attn_qkv.weight`, …).
        public var name: String
        /// Dimensions innermost first (ggml's `ne`).
        public var dimensions: [Int]
        /// The ggml element type.
        public var type: TensorType
        /// Offset from the start of the data section.
        public var offset: Int
        /// Elements in the tensor (the product of the dimensions).
        public var elementCount: Int
        /// Bytes of the tensor in the data section (whole blocks for Q8_0).
        public var byteCount: Int
        /// The shape outermost first, as the rest of GPT2Kit writes shapes.
        public var shape: Shape { Shape(dimensions.reversed()) }
    }

    /// A parsed GGUF file.
    public struct File {
        /// The file read.
        public let path: String
        /// The file's GGUF version (2 or 3).
        public let version: UInt32
        /// Metadata in file order.
        public let metadata: [(key: String, value: Value)]
        /// Tensor infos in file order.
        public let tensors: [TensorInfo]
        /// The data section's alignment (`general.alignment`, else 32).
        public let alignment: Int
        /// Absolute offset of the data section.
        public let dataOffset: Int
        let storage: ByteStorage
        private let metadataIndex: [String: Int]

        init(path: String, version: UInt32, metadata: [(key: String, value: Value)], tensors: [TensorInfo],
             alignment: Int, dataOffset: Int, storage: ByteStorage) {
            self.path = path; self.version = version; self.metadata = metadata; self.tensors = tensors
            self.alignment = alignment; self.dataOffset = dataOffset; self.storage = storage
            var index: [String: Int] = [:]
            for (i, kv) in metadata.enumerated() { index[kv.key] = i }
            metadataIndex = index
        }

        /// The metadata value of `key`.
        public subscript(key: String) -> Value? { metadataIndex[key].map { metadata[$0].value } }

        /// The tensor `info` as a `Tensor` (shape outermost first): a view for F32/F16/BF16, dequantised F32 for Q8_0.
        public func tensor(_ info: TensorInfo) -> Tensor {
            let start = dataOffset + info.offset
            switch info.type {
            case .f32: return Tensor(dtype: .f32, shape: info.shape, storage: storage, byteOffset: start)
            case .f16: return Tensor(dtype: .f16, shape: info.shape, storage: storage, byteOffset: start)
            case .bf16: return Tensor(dtype: .bf16, shape: info.shape, storage: storage, byteOffset: start)
            case .q8_0:
                var out = Tensor(zeros: .f32, shape: info.shape)
                out.withUnsafeMutableBytes { raw in
                    let dst = raw.bindMemory(to: Float.self)
                    Q8_0.dequantize(UnsafeRawBufferPointer(rebasing: storage.bytes[start ..< start + info.byteCount]), into: dst)
                }
                return out
            }
        }

        /// Every tensor, by its GGUF name, in file order.
        public func stateDict() -> StateDict {
            var dict = StateDict()
            for info in tensors { dict[info.name] = tensor(info) }
            return dict
        }
    }

    // MARK: Reading

    /// Maps and parses `path`.
    public static func read(path: String) throws(GGUFError) -> File {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch { throw .cannotOpen(path: path, reason: error.reason) }
        var r = Reader(bytes: storage.bytes, path: path)
        guard try r.u32("magic") == magic else { throw .notGGUF(path: path) }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(path: path, version: version) }
        let tensorCount = try r.count("tensor count", minimumBytesEach: 8 + 4 + 8 + 4 + 8)
        let metadataCount = try r.count("metadata count", minimumBytesEach: 8 + 4 + 1)
        var metadata: [(key: String, value: Value)] = []
        metadata.reserveCapacity(metadataCount)
        var seen = Set<String>()
        for _ in 0..<metadataCount {
            let key = try r.string("metadata key")
            guard seen.insert(key).inserted else { throw .invalid(path: path, what: "metadata key '\(key)' appears twice") }
            let type = try r.valueType("value type of '\(key)'")
            metadata.append((key, try r.value(type, key: key, depth: 0)))
        }
        var alignment = defaultAlignment
        if let a = metadata.first(where: { $0.key == alignmentKey })?.value {
            guard let n = a.integer, n > 0, n <= 1 << 20, n & (n - 1) == 0 else {
                throw .invalid(path: path, what: "\(alignmentKey) is not a power of two up to 2^20")
            }
            alignment = n
        }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(tensorCount)
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try r.string("tensor name")
            guard name.utf8.count <= InputLimits.maximumTensorNameBytes else {
                throw .invalid(path: path, what: "a tensor name of \(name.utf8.count) bytes")
            }
            guard names.insert(name).inserted else { throw .invalid(path: path, what: "tensor '\(name)' appears twice") }
            let rank = Int(try r.u32("dimension count of '\(name)'"))
            guard (1...4).contains(rank) else { throw .invalidTensor(path: path, tensor: name, reason: "\(rank) dimensions (1 to 4 allowed)") }
            var dims: [Int] = []
            for _ in 0..<rank {
                let d = try r.u64("a dimension of '\(name)'")
                guard d <= UInt64(Int.max) else { throw .invalidTensor(path: path, tensor: name, reason: "dimension \(d) overflows") }
                dims.append(Int(d))
            }
            let rawType = try r.u32("type of '\(name)'")
            guard let type = TensorType(rawValue: rawType) else { throw .unsupportedTensorType(path: path, tensor: name, type: rawType) }
            let offset = try r.u64("offset of '\(name)'")
            guard let count = Shape(dims).checkedElementCount else {
                throw .invalidTensor(path: path, tensor: name, reason: "dimensions \(dims) overflow")
            }
            guard dims[0] % type.block.elements == 0 else {
                throw .invalidTensor(path: path, tensor: name, reason: "rows of \(dims[0]) elements are not whole \(type.name) blocks of \(type.block.elements)")
            }
            let (bytes, overflow) = (count / type.block.elements).multipliedReportingOverflow(by: type.block.bytes)
            guard !overflow, offset <= UInt64(Int.max), Int(offset) % alignment == 0 else {
                throw .invalidTensor(path: path, tensor: name, reason: "offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            infos.append(TensorInfo(name: name, dimensions: dims, type: type, offset: Int(offset), elementCount: count, byteCount: bytes))
        }
        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        guard dataOffset <= storage.byteCount else { throw .truncated(path: path, what: "padding before the tensor data", offset: r.offset) }
        let dataSize = storage.byteCount - dataOffset
        // Every tensor inside the data section, no two overlapping.
        for info in infos {
            guard info.offset <= dataSize, info.byteCount <= dataSize - info.offset else {
                throw .invalidTensor(path: path, tensor: info.name,
                                     reason: "bytes \(info.offset)..<\(info.offset + info.byteCount) pass the end of the \(dataSize)-byte data section")
            }
        }
        let sorted = infos.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw .invalid(path: path, what: "tensors '\(a.name)' and '\(b.name)' overlap")
        }
        return File(path: path, version: version, metadata: metadata, tensors: infos, alignment: alignment,
                    dataOffset: dataOffset, storage: storage)
    }

    /// A bounds-checked little-endian cursor.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var offset = 0

        var remaining: Int { bytes.count - offset }

        mutating func take(_ n: Int, _ what: String) throws(GGUFError) -> UnsafeRawBufferPointer {
            guard n >= 0, n <= remaining else { throw .truncated(path: path, what: what, offset: offset) }
            defer { offset += n }
            return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n])
        }

        mutating func u32(_ what: String) throws(GGUFError) -> UInt32 {
            UInt32(littleEndian: try take(4, what).loadUnaligned(as: UInt32.self))
        }

        mutating func u64(_ what: String) throws(GGUFError) -> UInt64 {
            UInt64(littleEndian: try take(8, what).loadUnaligned(as: UInt64.self))
        }

        /// A count whose items need at least `minimumBytesEach` bytes: larger than what is left is a lie.
        mutating func count(_ what: String, minimumBytesEach: Int) throws(GGUFError) -> Int {
            let n = try u64(what)
            guard n <= UInt64(remaining / max(minimumBytesEach, 1)) else {
                throw .invalid(path: path, what: "\(what) \(n) does not fit in the \(remaining) bytes left")
            }
            return Int(n)
        }

        mutating func string(_ what: String) throws(GGUFError) -> String {
            let n = try u64("length of \(what)")
            guard n <= UInt64(remaining) else { throw .truncated(path: path, what: what, offset: offset) }
            let raw = try take(Int(n), what)
            guard let s = String(validating: raw, as: UTF8.self) else { throw .invalid(path: path, what: "\(what) is not UTF-8") }
            return s
        }

        mutating func valueType(_ what: String) throws(GGUFError) -> ValueType {
            let raw = try u32(what)
            guard let t = ValueType(rawValue: raw) else { throw .invalid(path: path, what: "\(what): unknown type \(raw)") }
            return t
        }

        mutating func value(_ type: ValueType, key: String, depth: Int) throws(GGUFError) -> Value {
            switch type {
            case .uint8: return .uint8(try take(1, key)[0])
            case .int8: return .int8(Int8(bitPattern: try take(1, key)[0]))
            case .bool:
                let b = try take(1, key)[0]
                guard b <= 1 else { throw .invalid(path: path, what: "'\(key)': bool byte \(b)") }
                return .bool(b == 1)
            case .uint16: return .uint16(UInt16(littleEndian: try take(2, key).loadUnaligned(as: UInt16.self)))
            case .int16: return .int16(Int16(littleEndian: try take(2, key).loadUnaligned(as: Int16.self)))
            case .uint32: return .uint32(try u32(key))
            case .int32: return .int32(Int32(bitPattern: try u32(key)))
            case .float32: return .float32(Float(bitPattern: try u32(key)))
            case .uint64: return .uint64(try u64(key))
            case .int64: return .int64(Int64(bitPattern: try u64(key)))
            case .float64: return .float64(Double(bitPattern: try u64(key)))
            case .string: return .string(try string("value of '\(key)'"))
            case .array:
                guard depth < 8 else { throw .invalid(path: path, what: "'\(key)': arrays nested deeper than 8") }
                let elementType = try valueType("element type of '\(key)'")
                let n = try count("element count of '\(key)'", minimumBytesEach: elementType.fixedSize ?? 8)
                var items: [Value] = []
                items.reserveCapacity(n)
                for _ in 0..<n { items.append(try value(elementType, key: key, depth: depth + 1)) }
                return .array(elementType, items)
            }
        }
    }

    // MARK: Writing

    /// Writes a GGUF v3 file: `metadata` in order (an alignment entry is added when missing), then the tensors in
    /// order, each converted to its `type` (a tensor of shape outermost first; rows are its last dimension).
    /// Q8_0 needs rows that are whole blocks of 32. The file is replaced atomically.
    public static func write(metadata: [(key: String, value: Value)], tensors: [(name: String, tensor: Tensor, type: TensorType)],
                             to path: String) throws(GGUFError) {
        var meta = metadata
        if !meta.contains(where: { $0.key == alignmentKey }) { meta.append((alignmentKey, .uint32(UInt32(defaultAlignment)))) }
        let alignment = meta.first { $0.key == alignmentKey }?.value.integer ?? defaultAlignment
        var header: [UInt8] = []
        header.appendLE(magic); header.appendLE(version)
        header.appendLE(UInt64(tensors.count)); header.appendLE(UInt64(meta.count))
        for (key, value) in meta {
            header.appendGGUFString(key)
            header.appendLE(value.type.rawValue)
            header.appendGGUFValue(value)
        }
        var offset = 0
        for (name, tensor, type) in tensors {
            let dims = Array(tensor.shape.dims.reversed())
            guard let rows = dims.first, rows % type.block.elements == 0 else {
                throw .invalidTensor(path: path, tensor: name, reason: "rows of \(dims.first ?? 0) elements are not whole \(type.name) blocks")
            }
            header.appendGGUFString(name)
            header.appendLE(UInt32(dims.count))
            for d in dims { header.appendLE(UInt64(d)) }
            header.appendLE(type.rawValue)
            header.appendLE(UInt64(offset))
            let bytes = tensor.elementCount / type.block.elements * type.block.bytes
            offset += (bytes + alignment - 1) / alignment * alignment
        }
        header += [UInt8](repeating: 0, count: (alignment - header.count % alignment) % alignment)
        let file: AtomicFileWriter
        do { file = try AtomicFileWriter(path: path) } catch { throw .writeFailed(path: path, reason: error.reason) }
        do {
            try file.write(header)
            for (_, tensor, type) in tensors {
                let start = file.offset
                switch type {
                case .q8_0:
                    try file.write(tensor.floats().withUnsafeBufferPointer { Q8_0.quantize($0) })
                case .f32, .f16, .bf16:
                    let converted = tensor.converted(to: type == .f32 ? .f32 : type == .f16 ? .f16 : .bf16)
                    try converted.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try file.write(raw) } }.get()
                }
                let written = file.offset - start
                try file.write([UInt8](repeating: 0, count: (alignment - written % alignment) % alignment))
            }
            try file.commit()
        } catch {
            file.abandon()
            throw .writeFailed(path: path, reason: error.reason)
        }
    }
}

private extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }

    mutating func appendGGUFString(_ s: String) {
        appendLE(UInt64(s.utf8.count))
        append(contentsOf: s.utf8)
    }

    mutating func appendGGUFValue(_ value: GGUF.Value) {
        switch value {
        case let .uint8(v): append(v)
        case let .int8(v): append(UInt8(bitPattern: v))
        case let .bool(v): append(v ? 1 : 0)
        case let .uint16(v): appendLE(v)
        case let .int16(v): appendLE(v)
        case let .uint32(v): appendLE(v)
        case let .int32(v): appendLE(v)
        case let .float32(v): appendLE(v.bitPattern)
        case let .uint64(v): appendLE(v)
        case let .int64(v): appendLE(v)
        case let .float64(v): appendLE(v.bitPattern)
        case let .string(s): appendGGUFString(s)
        case let .array(type, items):
            appendLE(type.rawValue)
            appendLE(UInt64(items.count))
            for item in items { appendGGUFValue(item) }
        }
    }
}

/// Why a GGUF file cannot be read or written.
public enum GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or mapped (the system's reason).
    case cannotOpen(path: String, reason: String)
    /// The file does not start with the magic `GGUF`.
    case notGGUF(path: String)
    /// A GGUF version other than 2 or 3.
    case unsupportedVersion(path: String, version: UInt32)
    /// `what`, at byte `offset`, runs past the end of the file.
    case truncated(path: String, what: String, offset: Int)
    /// A malformed header: a duplicate key, a bad alignment, overlapping tensors, a string that is not UTF-8, ….
    case invalid(path: String, what: String)
    /// A tensor info that cannot be used: rank, dimensions, alignment, byte range, or rows not whole blocks.
    case invalidTensor(path: String, tensor: String, reason: String)
    /// A ggml tensor type other than F32, F16, BF16 and Q8_0 (`type` is its number).
    case unsupportedTensorType(path: String, tensor: String, type: UInt32)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open: \(r)"
        case let .notGGUF(p): return "\(p): not a GGUF file (no GGUF magic)"
        case let .unsupportedVersion(p, v): return "\(p): GGUF version \(v) (2 and 3 are supported)"
        case let .truncated(p, w, o): return "\(p): truncated: \(w) at byte \(o) passes the end of the file"
        case let .invalid(p, w): return "\(p): \(w)"
        case let .invalidTensor(p, t, r): return "\(p): tensor '\(t)': \(r)"
        case let .unsupportedTensorType(p, t, type):
            return "\(p): tensor '\(t)': ggml type \(type) is not supported (F32, F16, BF16 and Q8_0 are)"
        case let .writeFailed(p, r): return "\(p): cannot write: \(r)"
        }
    }
}
