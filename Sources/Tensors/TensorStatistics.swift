/// Summary statistics of a tensor, in Double, as the reference goldens record them.
public struct TensorStatistics: Sendable, Equatable {
    public var sum: Double
    public var l2: Double
    public var first: [Double]
    public var elementCount: Int

    public init(_ values: UnsafeBufferPointer<Float>, firstCount: Int = 4) {
        var s = 0.0, q = 0.0
        for v in values { let d = Double(v); s += d; q += d * d }
        sum = s; l2 = q.squareRoot(); elementCount = values.count
        first = values.prefix(firstCount).map(Double.init)
    }

    public init(_ tensor: Tensor, firstCount: Int = 4) {
        let f = tensor.floats()
        self = f.withUnsafeBufferPointer { TensorStatistics($0, firstCount: firstCount) }
    }
}
