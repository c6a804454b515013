import Tensors

/// How the tensors of a state dict line up with the parameter table of a config: the one name mapping behind
/// `GPT2Parameters.init(config:stateDict:)`, also used on its own to compare checkpoints tensor by tensor.
public struct StateDictMatch: Sendable {
    /// The table the names were matched against.
    public let layout: GPT2ParameterLayout
    /// The naming scheme detected.
    public let format: GPT2Parameters.KeyFormat
    /// For every entry of `layout` (in order), the name of the tensor found for it, or nil.
    public let sourceNames: [String?]
    /// For every entry, the shape its tensor must have in the file (TensorFlow stores Conv1D biases as (1, n)).
    public let expectedShapes: [Shape]
    /// The source keys of entries not found, in the detected naming.
    public let missing: [String]
    /// Names that are no parameter (nor the tied output weight or an ignored buffer), and duplicates.
    public let unexpected: [String]
    /// Found tensors whose shape is not the expected one.
    public let wrongShapes: [StateDictError.ShapeMismatch]
    /// Found tensors (and `lm_head.weight`) whose dtype is not floating point.
    public let nonFloat: [String]
    /// `lm_head.weight`, when the file holds it (GPT-2 ties it to `wte`).
    public let outputWeight: Tensor?

    /// The error loading these tensors as parameters meets: nil when every name, shape and dtype fits.
    public var mismatch: StateDictError? {
        guard !missing.isEmpty || !unexpected.isEmpty || !wrongShapes.isEmpty || !nonFloat.isEmpty else { return nil }
        return .mismatch(missing: missing, unexpected: unexpected, wrongShapes: wrongShapes, nonFloat: nonFloat)
    }

    /// The tensor found for entry `index` of `layout` in `stateDict` (the dict that was matched), in the table's
    /// shape when it has the expected stored shape (a TensorFlow (1, n) bias becomes (n)); as stored otherwise.
    public func tensor(at index: Int, in stateDict: StateDict) -> Tensor? {
        guard let name = sourceNames[index], let tensor = stateDict[name] else { return nil }
        return tensor.shape == expectedShapes[index] ? tensor.reshaped(layout.entries[index].shape) : tensor
    }
}

extension GPT2Parameters {
    /// Matches the names of `stateDict` (any `KeyFormat`) against the parameter table of `config`, reporting
    /// every problem instead of stopping at the first. Nothing is copied or converted.
    public static func match(_ stateDict: StateDict, config: GPT2Config) -> StateDictMatch {
        let layout = GPT2ParameterLayout(config: config)
        let format = detectFormat(of: stateDict)
        // source key → entry index
        var wanted: [String: Int] = [:]
        for (i, e) in layout.entries.enumerated() {
            for k in sourceKeys(for: e, format: format).keys { wanted[k] = i }
        }
        let longestWantedKey = wanted.keys.map(\.utf8.count).max() ?? 0
        var ignored: Set<String> = []
        if format != .tensorFlow {
            let prefix = format == .huggingFace ? "transformer." : ""
            for l in 0..<config.layerCount { for b in ignoredBlockBuffers { ignored.insert("\(prefix)h.\(l).\(b)") } }
        }
        let expectedShapes = layout.entries.map { sourceKeys(for: $0, format: format).shape }
        var found = [String?](repeating: nil, count: layout.entries.count)
        var unexpected: [String] = [], wrongShapes: [StateDictError.ShapeMismatch] = [], nonFloat: [String] = []
        var outputWeight: Tensor?
        for (name, tensor) in stateDict {
            let index = format == .tensorFlow
                ? tensorFlowEntry(named: name, wanted: wanted, longestKey: longestWantedKey) : wanted[name]
            guard let i = index else {
                if format != .tensorFlow, name == outputWeightName { outputWeight = tensor; continue }
                if ignored.contains(name) { continue }
                unexpected.append(name)
                continue
            }
            if let previous = found[i] { unexpected.append(previous == name ? name : "\(name) (duplicate of '\(previous)')"); continue }
            found[i] = name
            if tensor.shape != expectedShapes[i] { wrongShapes.append(.init(name: name, expected: expectedShapes[i], found: tensor.shape)) }
            if !tensor.dtype.isFloatingPoint { nonFloat.append(name) }
        }
        var missing: [String] = []
        for (i, e) in layout.entries.enumerated() where found[i] == nil {
            missing.append(sourceKeys(for: e, format: format).keys[0])
        }
        if let outputWeight, let wte = layout.entries.first {
            if outputWeight.shape != wte.shape {
                wrongShapes.append(.init(name: outputWeightName, expected: wte.shape, found: outputWeight.shape))
            }
            if !outputWeight.dtype.isFloatingPoint { nonFloat.append(outputWeightName) }
        }
        return StateDictMatch(layout: layout, format: format, sourceNames: found, expectedShapes: expectedShapes, missing: missing,
                              unexpected: unexpected, wrongShapes: wrongShapes, nonFloat: nonFloat, outputWeight: outputWeight)
    }
}
