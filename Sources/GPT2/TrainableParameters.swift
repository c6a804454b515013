/// Which base parameters a model trains. Their gradients (and the optimizer's moments) are packed in layout
/// order into one buffer; frozen tensors have no gradient storage and their weight products are skipped in
/// backward. Training everything gives the packed layout equal to the parameter layout.
public struct TrainableParameters: Sendable, Equatable {
    /// Per layout entry, its range in the packed gradient buffer (nil: frozen).
    public let packedRanges: [Range<Int>?]
    /// Floats trained.
    public let count: Int

    /// Trains the entries for which `isTrained(entry)` holds.
    public init(layout: GPT2ParameterLayout, where isTrained: (GPT2ParameterLayout.Entry) -> Bool) {
        var ranges: [Range<Int>?] = []
        var offset = 0
        for e in layout.entries {
            if isTrained(e) {
                ranges.append(offset ..< offset + e.range.count)
                offset += e.range.count
            } else {
                ranges.append(nil)
            }
        }
        packedRanges = ranges
        count = offset
    }

    /// Every parameter (full fine-tuning).
    public static func all(_ layout: GPT2ParameterLayout) -> TrainableParameters { TrainableParameters(layout: layout) { _ in true } }

    /// No base parameter (adapter training).
    public static func none(_ layout: GPT2ParameterLayout) -> TrainableParameters { TrainableParameters(layout: layout) { _ in false } }

    /// Whether every parameter is trained.
    public var isAll: Bool { packedRanges.allSatisfy { $0 != nil } }

    /// The contiguous runs of trained floats: (range in the parameter buffer, range in the packed buffer).
    public func runs(_ layout: GPT2ParameterLayout) -> [(parameters: Range<Int>, packed: Range<Int>)] {
        var out: [(Range<Int>, Range<Int>)] = []
        for (e, packed) in zip(layout.entries, packedRanges) {
            guard let packed else { continue }
            if let last = out.last, last.0.upperBound == e.range.lowerBound, last.1.upperBound == packed.lowerBound {
                out[out.count - 1] = (last.0.lowerBound ..< e.range.upperBound, last.1.lowerBound ..< packed.upperBound)
            } else {
                out.append((e.range, packed))
            }
        }
        return out
    }
}
