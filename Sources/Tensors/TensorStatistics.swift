/// Summary statistics of a tensor, in Double, as the reference goldens record them.
public struct TensorStatistics: Sendable, Equatable {
    /// Sum of the elements.
    public var sum: Double
    /// L2 norm: √Σx².
    public var l2: Double
    /// The first `firstCount` elements, in row-major order.
    public var first: [Double]
    /// Number of elements.
    public var elementCount: Int

    /// Statistics of `values`, accumulated in Double.
    public init(_ values: UnsafeBufferPointer<Float>, firstCount: Int = 4) {
        var s = 0.0, q = 0.0
        for v in values { let d = Double(v); s += d; q += d * d }
        sum = s; l2 = q.squareRoot(); elementCount = values.count
        first = values.prefix(firstCount).map(Double.init)
    }

    /// Statistics of `tensor`'s elements converted to Float (any dtype).
    public init(_ tensor: Tensor, firstCount: Int = 4) {
        let f = tensor.floats()
        self = f.withUnsafeBufferPointer { TensorStatistics($0, firstCount: firstCount) }
    }
}
