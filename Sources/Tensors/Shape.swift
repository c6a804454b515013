/// The dimensions of a row-major tensor.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// Sizes from outermost to innermost.
    public var dims: [Int]

    /// A shape of `dims`, outermost first.
    public init(_ dims: [Int]) { self.dims = dims }
    /// A shape written as a literal, `[768, 2304]`.
    public init(arrayLiteral elements: Int...) { self.dims = elements }

    /// Number of dimensions.
    public var rank: Int { dims.count }

    /// Product of the dimensions (1 for a scalar), or nil when it overflows `Int` or a dimension is negative.
    public var checkedElementCount: Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Product of the dimensions. Precondition: no overflow (use `checkedElementCount` on untrusted shapes).
    public var elementCount: Int {
        guard let n = checkedElementCount else { preconditionFailure("shape \(dims) overflows") }
        return n
    }

    /// Row-major strides in elements.
    ///
    /// For a shape with elements every stride is at most the element count, so nothing overflows. An empty
    /// shape (a zero dimension) may have other dimensions whose product overflows; its strides are never used
    /// to address memory, and they wrap (as PyTorch's do) instead of trapping on input.
    public var contiguousStrides: [Int] {
        var strides = [Int](repeating: 1, count: dims.count)
        var acc = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            strides[i] = acc
            acc = acc &* dims[i]
        }
        return strides
    }

    /// The dimensions in brackets, `[768, 2304]`.
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}
