/// An ordered map from parameter name to tensor, the common currency between file formats and models.
public struct StateDict: Sendable, Sequence {
    /// Tensor names in insertion order (the order files are written in).
    public private(set) var names: [String] = []
    private var tensors: [String: Tensor] = [:]
    /// Free-form string metadata carried by the file (safetensors `__metadata__`, …).
    public var metadata: [String: String] = [:]

    /// An empty state dict.
    public init() {}

    /// Number of tensors.
    public var count: Int { names.count }
    /// Whether it holds no tensor.
    public var isEmpty: Bool { names.isEmpty }

    /// The tensor named `name`; setting appends new names at the end and keeps existing order.
    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set {
            if let t = newValue {
                if tensors.updateValue(t, forKey: name) == nil { names.append(name) }
            } else if tensors.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// Whether a tensor is named `name`.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// Removes and returns the tensor named `name`.
    @discardableResult
    public mutating func remove(_ name: String) -> Tensor? {
        let t = tensors.removeValue(forKey: name)
        if t != nil { names.removeAll { $0 == name } }
        return t
    }

    /// Total bytes of all tensors (shared storage counted once per tensor).
    public var totalByteCount: Int { names.reduce(0) { $0 + (tensors[$1]?.byteCount ?? 0) } }
    /// Total number of elements.
    public var totalElementCount: Int { names.reduce(0) { $0 + (tensors[$1]?.elementCount ?? 0) } }

    /// (name, tensor) pairs in `names` order.
    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> {
        var i = 0
        return AnyIterator {
            while i < names.count {
                let n = names[i]; i += 1
                if let t = tensors[n] { return (n, t) }
            }
            return nil
        }
    }

    /// Every tensor converted to `dtype` (floating-point tensors only; others kept).
    public func converted(to dtype: DType) -> StateDict {
        var out = StateDict()
        out.metadata = metadata
        for (n, t) in self { out[n] = t.dtype.isFloatingPoint ? t.converted(to: dtype) : t }
        return out
    }
}
