/// An owned, 64-byte-aligned, zero-initialised block of `Float`s: the backing store of the parameter,
/// gradient, optimizer-state and activation tables (llm.c's `malloc_and_point`). Views into it are
/// handed to kernels as `UnsafeMutableBufferPointer<Float>` slices; they are valid only while the buffer
/// lives, so hold a reference across their use (a stored property, or `withBuffer`/`withExtendedLifetime`).
/// Package-internal: the library's public API hands out copies (`[Float]`) or closure-scoped views only.
package final class FloatBuffer: @unchecked Sendable {
    /// Number of floats.
    package let count: Int
    private let base: UnsafeMutablePointer<Float>

    /// Allocates `count` zeroed floats.
    package init(count: Int) {
        precondition(count >= 0, "negative float count \(count)")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        self.count = count
    }

    deinit { base.deallocate() }

    /// The whole buffer.
    package var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// The floats in `range`. Precondition: the range lies inside the buffer.
    package subscript(range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range \(range) outside buffer of \(count) floats")
        return UnsafeMutableBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// `count` floats starting at `offset`.
    package func slice(_ offset: Int, _ count: Int) -> UnsafeMutableBufferPointer<Float> { self[offset ..< offset + count] }

    /// Calls `body` with the whole buffer, keeping `self` alive for the call.
    package func withBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(buffer) }
    }

    /// A copy of the floats.
    package func toArray() -> [Float] { withBuffer { Array($0) } }

    /// Sets every float to zero (split over the cores for large buffers).
    package func zero() {
        let base = self.base
        Parallel.forEachChunk(count: count, minimumCount: 1 << 20) { _, range in
            (base + range.lowerBound).update(repeating: 0, count: range.count)
        }
    }
}

extension UnsafeMutableBufferPointer where Element == Float {
    /// The base address; precondition: non-empty buffer (kernels never take empty buffers).
    @inline(__always) var ptr: UnsafeMutablePointer<Float> {
        guard let p = baseAddress else { preconditionFailure("empty float buffer passed to a kernel") }
        return p
    }

    /// A read-only view of the same floats.
    public var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(self) }
}

extension UnsafeBufferPointer where Element == Float {
    @inline(__always) var ptr: UnsafePointer<Float> {
        guard let p = baseAddress else { preconditionFailure("empty float buffer passed to a kernel") }
        return p
    }
}

extension UnsafeBufferPointer where Element == Int32 {
    @inline(__always) var ptr: UnsafePointer<Int32> {
        guard let p = baseAddress else { preconditionFailure("empty id buffer passed to a kernel") }
        return p
    }
}

@inline(__always)
func requireCount<E>(_ b: UnsafeBufferPointer<E>, _ n: Int, _ what: StaticString) {
    precondition(b.count >= n, "\(what): buffer holds \(b.count) elements, needs \(n)")
}

@inline(__always)
func requireCount<E>(_ b: UnsafeMutableBufferPointer<E>, _ n: Int, _ what: StaticString) {
    precondition(b.count >= n, "\(what): buffer holds \(b.count) elements, needs \(n)")
}
