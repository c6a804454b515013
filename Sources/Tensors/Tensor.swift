/// A dense, row-major tensor: a dtype, a shape and a view into `ByteStorage`.
///
/// Value semantics: the bytes are shared between copies (and with a memory-mapped file) until one copy
/// writes through `withUnsafeMutableBytes`, which copies first.
public struct Tensor: @unchecked Sendable {
    /// The element type of the bytes.
    public let dtype: DType
    /// The dimensions, outermost first (row-major, contiguous).
    public let shape: Shape
    /// The bytes viewed (shared between copies until one writes).
    public private(set) var storage: ByteStorage
    /// Offset of the first element inside `storage`.
    public private(set) var byteOffset: Int

    /// A view of `shape.elementCount × dtype.byteSize` bytes of `storage` starting at `byteOffset`.
    /// Precondition: the range lies inside the storage (readers validate untrusted offsets before calling).
    public init(dtype: DType, shape: Shape, storage: ByteStorage, byteOffset: Int = 0) {
        let n = shape.elementCount * dtype.byteSize
        precondition(byteOffset >= 0 && byteOffset + n <= storage.byteCount,
                     "tensor bytes \(byteOffset)..<\(byteOffset + n) outside storage of \(storage.byteCount) bytes")
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// A zero-filled tensor.
    public init(zeros dtype: DType, shape: Shape) {
        self.init(dtype: dtype, shape: shape, storage: ByteStorage(zeroedByteCount: shape.elementCount * dtype.byteSize))
    }

    /// An F32 tensor holding `values`. Precondition: `values.count == shape.elementCount`.
    public init(floats values: [Float], shape: Shape) {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        let storage = values.withUnsafeBytes { ByteStorage(copying: $0) }
        self.init(dtype: .f32, shape: shape, storage: storage)
    }

    /// An F32 tensor holding a copy of `values`.
    public init(floats values: UnsafeBufferPointer<Float>, shape: Shape) {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        self.init(dtype: .f32, shape: shape, storage: ByteStorage(copying: UnsafeRawBufferPointer(values)))
    }

    /// Number of elements.
    public var elementCount: Int { shape.elementCount }
    /// Number of bytes of the elements.
    public var byteCount: Int { shape.elementCount * dtype.byteSize }
    /// Whether the bytes come straight from a memory-mapped file.
    public var isMapped: Bool { storage.backing == .mapped }

    /// Reads the tensor's bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage.bytes[byteOffset ..< byteOffset + byteCount]))
    }

    /// Writes the tensor's bytes, copying them first when they are shared or mapped.
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        if storage.backing == .mapped || !isKnownUniquelyReferenced(&storage) || byteOffset != 0 || storage.byteCount != byteCount {
            let copy = withUnsafeBytes { ByteStorage(copying: $0) }
            storage = copy
            byteOffset = 0
        }
        return try body(storage.mutableBytes)
    }

    /// The same bytes with another shape of equal element count.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.elementCount == elementCount, "cannot reshape \(shape) to \(newShape)")
        return Tensor(dtype: dtype, shape: newShape, storage: storage, byteOffset: byteOffset)
    }

    /// Converts the elements to Float into `out` (any dtype; integers and bools by value).
    /// Precondition: `out.count == elementCount`.
    public func copyFloats(into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == elementCount, "destination holds \(out.count) floats, tensor \(elementCount)")
        withUnsafeBytes { raw in
            let n = elementCount
            switch dtype {
            case .f32:
                if n > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: n * 4) }
            case .f64: for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
            case .f16: for i in 0..<n { out[i] = HalfPrecision.float(fromF16: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            case .bf16: for i in 0..<n { out[i] = HalfPrecision.float(fromBF16: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            case .i64: for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            case .i32: for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
            case .i16: for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
            case .i8: for i in 0..<n { out[i] = Float(Int8(bitPattern: raw[i])) }
            case .u8: for i in 0..<n { out[i] = Float(raw[i]) }
            case .bool: for i in 0..<n { out[i] = raw[i] != 0 ? 1 : 0 }
            }
        }
    }

    /// The elements as Float32 values.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: elementCount) { buf, count in
            copyFloats(into: buf)
            count = elementCount
        }
    }

    /// The tensor with its elements converted to `target` (floating-point targets only; F16/BF16 round to
    /// nearest even). Returns `self` when the dtype already matches.
    public func converted(to target: DType) -> Tensor {
        if target == dtype { return self }
        precondition(target.isFloatingPoint, "conversion to \(target) is not supported")
        let values = floats()
        var result = Tensor(zeros: target, shape: shape)
        result.withUnsafeMutableBytes { raw in
            switch target {
            case .f32: values.withUnsafeBytes { raw.copyMemory(from: $0) }
            case .f64: for (i, v) in values.enumerated() { raw.storeBytes(of: Double(v), toByteOffset: i * 8, as: Double.self) }
            case .f16: for (i, v) in values.enumerated() { raw.storeBytes(of: HalfPrecision.f16(from: v), toByteOffset: i * 2, as: UInt16.self) }
            case .bf16: for (i, v) in values.enumerated() { raw.storeBytes(of: HalfPrecision.bf16(from: v), toByteOffset: i * 2, as: UInt16.self) }
            default: break
            }
        }
        return result
    }

    /// The transpose of a 2-D tensor, (rows, cols) → (cols, rows), as a new row-major tensor of the same dtype.
    public func transposed() -> Tensor {
        precondition(shape.rank == 2, "transposed() needs a 2-D tensor, got \(shape)")
        let rows = shape.dims[0], cols = shape.dims[1], size = dtype.byteSize
        var result = Tensor(zeros: dtype, shape: [cols, rows])
        withUnsafeBytes { src in
            result.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                // Blocks of 32 × 32 elements keep both sides in cache.
                let block = 32
                for r0 in stride(from: 0, to: rows, by: block) {
                    for c0 in stride(from: 0, to: cols, by: block) {
                        for r in r0 ..< min(r0 + block, rows) {
                            for c in c0 ..< min(c0 + block, cols) {
                                (d + (c * rows + r) * size).copyMemory(from: s + (r * cols + c) * size, byteCount: size)
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Whether two tensors have the same dtype, shape and bytes.
    public func isBitwiseEqual(to other: Tensor) -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in a.elementsEqual(b) } }
    }

    /// Whether two tensors view the same bytes of the same storage.
    public func sharesBytes(with other: Tensor) -> Bool {
        storage === other.storage && byteOffset == other.byteOffset && byteCount == other.byteCount
    }
}
