import Foundation
import Kernels
import Tensors

/// All GPT-2 parameters in one flat Float allocation, laid out by `GPT2ParameterLayout`.
public final class GPT2Parameters: @unchecked Sendable {
    /// The hyper-parameters the layout was made for.
    public let config: GPT2Config
    /// Names, shapes and offsets.
    public let layout: GPT2ParameterLayout
    /// The floats (count `layout.totalCount`).
    package let storage: FloatBuffer

    /// Zero-filled parameters for `config`.
    public init(config: GPT2Config) {
        self.config = config
        self.layout = GPT2ParameterLayout(config: config)
        self.storage = FloatBuffer(count: layout.totalCount)
    }

    /// A global tensor's floats (valid while `self` lives).
    package func view(_ t: GPT2ParameterLayout.GlobalTensor) -> UnsafeMutableBufferPointer<Float> { storage[layout.range(t)] }
    /// A block tensor's floats (valid while `self` lives).
    package func view(layer: Int, _ t: GPT2ParameterLayout.LayerTensor) -> UnsafeMutableBufferPointer<Float> {
        storage[layout.range(layer: layer, t)]
    }
    /// The floats of the parameter named `name` (Hugging Face name), or nil (valid while `self` lives).
    package func view(named name: String) -> UnsafeMutableBufferPointer<Float>? {
        layout.entry(named: name).map { storage[$0.range] }
    }

    /// The Hugging Face names of every parameter, in layout order (`transformer.wte.weight`, …).
    public var names: [String] { layout.entries.map(\.name) }

    /// A copy of the floats of the parameter named `name` (row-major in its GPT2Kit shape), or nil for an
    /// unknown name.
    public func values(named name: String) -> [Float]? {
        withExtendedLifetime(self) { view(named: name).map { Array($0) } }
    }

    /// Overwrites the parameter named `name` with `values`.
    /// - Throws: `ParameterAccessError` for an unknown name or a count that does not match.
    public func setValues(_ values: [Float], named name: String) throws(ParameterAccessError) {
        guard let target = view(named: name) else { throw .unknownName(name) }
        guard target.count == values.count else { throw .countMismatch(name: name, expected: target.count, found: values.count) }
        withExtendedLifetime(self) { _ = target.update(from: values) }
    }

    /// Calls `body` with the floats of the parameter named `name` (mutable, valid only inside `body`), or
    /// returns nil for an unknown name. For in-place work on large tensors without a copy.
    public func withValues<R>(named name: String, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R? {
        guard let target = view(named: name) else { return nil }
        return try withExtendedLifetime(self) { try body(target) }
    }

    /// A copy of every float, in layout order (`layout.totalCount` of them).
    public func allValues() -> [Float] { storage.toArray() }

    /// An independent copy (same config, same floats).
    public func copy() -> GPT2Parameters {
        let other = GPT2Parameters(config: config)
        withExtendedLifetime(self) { _ = other.storage.buffer.update(from: storage.buffer) }
        return other
    }

    // MARK: - Key mapping

    /// The naming schemes GPT-2 checkpoints use.
    public enum KeyFormat: Sendable, Equatable {
        /// `save_pretrained`: `transformer.h.0.attn.c_attn.weight`, optional tied `lm_head.weight`.
        case huggingFace
        /// The 2019 hub files: no `transformer.` prefix, plus `h.N.attn.bias` / `masked_bias` buffers.
        case hubStyle
        /// TF/Keras: `<scope>/transformer/h_._0/attn/c_attn/weight:0`, `ln_1/gamma:0`, biases shaped (1, n).
        case tensorFlow
    }

    /// The tied output projection's Hugging Face name.
    public static let outputWeightName = "lm_head.weight"
    /// Non-parameter buffers some checkpoints carry per block (the causal mask and its fill value); ignored.
    public static let ignoredBlockBuffers = ["attn.bias", "attn.masked_bias"]
    /// Default scope of exported TensorFlow names.
    public static let defaultTensorFlowScope = "tfgpt2lm_head_model"

    /// Which naming scheme `stateDict` uses: a `transformer.`-prefixed key means Hugging Face, a `:0`
    /// suffix TensorFlow, otherwise the hub layout. Mixed files then fail the key check.
    public static func detectFormat(of stateDict: StateDict) -> KeyFormat {
        if stateDict.names.contains(where: { $0.hasPrefix("transformer.") }) { return .huggingFace }
        if stateDict.names.contains(where: { $0.hasSuffix(":0") }) { return .tensorFlow }
        return .hubStyle
    }

    /// The source key (in `format`, without any TF scope) and stored shape of every parameter.
    static func sourceKeys(for entry: GPT2ParameterLayout.Entry, format: KeyFormat) -> (keys: [String], shape: Shape) {
        switch (format, entry.role) {
        case (.huggingFace, _): return ([entry.name], entry.shape)
        case (.hubStyle, _): return ([String(entry.name.dropFirst("transformer.".count))], entry.shape)
        case (.tensorFlow, .global(let g)): return (g.tensorFlowKeys.map { "transformer/" + $0 }, entry.shape)
        case (.tensorFlow, .layer(let l, let t)):
            let shape = t.isConvBias ? Shape([1] + entry.shape.dims) : entry.shape
            return (["transformer/h_._\(l)/" + t.tensorFlowKey], shape)
        }
    }

    /// The entry a TensorFlow weight name stands for, whatever scope precedes it: the shortest suffix that starts
    /// at a `transformer/` component and is a wanted key. Only the last `longestKey` bytes can hold such a
    /// suffix, so the work is bounded whatever the name's length (a crafted header may hold megabyte names).
    static func tensorFlowEntry(named name: String, wanted: [String: Int], longestKey: Int) -> Int? {
        let bytes = Array(name.utf8)
        let marker = Array("transformer/".utf8)
        var start = bytes.count - marker.count
        let lowest = max(0, bytes.count - longestKey)
        while start >= lowest {
            if start == 0 || bytes[start - 1] == UInt8(ascii: "/"), bytes[start...].starts(with: marker),
               let i = wanted[String(decoding: bytes[start...], as: UTF8.self)] {
                return i
            }
            start -= 1
        }
        return nil
    }

    /// Loads parameters from a state dict in any of the `KeyFormat`s, converting F16/BF16/F64 to F32.
    ///
    /// Names are matched through the mapping table: every parameter must be present exactly once with its
    /// shape, and only the tied `lm_head.weight` (which must equal `wte`) and the buffers in
    /// `ignoredBlockBuffers` may be extra. All problems are reported together in one `StateDictError`
    /// (`match(_:config:)` gives them without loading).
    public convenience init(config: GPT2Config, stateDict: StateDict) throws(StateDictError) {
        // Every name and shape is checked before the parameter buffer is allocated, so a config far larger
        // than the weights fails here instead of allocating its size.
        let match = GPT2Parameters.match(stateDict, config: config)
        if let mismatch = match.mismatch { throw mismatch }
        self.init(config: config)
        for (i, e) in match.layout.entries.enumerated() {
            guard let name = match.sourceNames[i], let tensor = stateDict[name] else { continue }
            tensor.copyFloats(into: storage[e.range])
        }
        if let outputWeight = match.outputWeight {
            let wteName = GPT2Parameters.sourceKeys(for: match.layout.entries[0], format: match.format).keys[0]
            let wte = storage[match.layout.entries[0].range]
            let tied = outputWeight.sharesBytes(with: stateDict[match.sourceNames[0] ?? ""] ?? outputWeight) && outputWeight.dtype == .f32
            if !tied {
                let converted = outputWeight.floats()
                var equal = true
                for i in 0..<converted.count where converted[i] != wte[i] { equal = false; break }
                if !equal { throw .untiedOutputWeight(name: GPT2Parameters.outputWeightName, tiedTo: wteName) }
            }
        }
    }

    /// The parameters as a state dict named in `format`, all F32. `includeOutputWeight` adds `lm_head.weight`
    /// sharing wte's bytes (ignored for TensorFlow, which has no such tensor). Tensors are copies of the
    /// current values.
    public func stateDict(format: KeyFormat = .huggingFace, includeOutputWeight: Bool = false,
                          tensorFlowScope: String = GPT2Parameters.defaultTensorFlowScope) -> StateDict {
        var dict = StateDict()
        for e in layout.entries {
            let (keys, shape) = Self.sourceKeys(for: e, format: format)
            let name = format == .tensorFlow && !tensorFlowScope.isEmpty ? tensorFlowScope + "/" + keys[0] : keys[0]
            dict[name] = Tensor(floats: UnsafeBufferPointer(storage[e.range]), shape: shape)
        }
        if includeOutputWeight, format != .tensorFlow {
            let wteName = Self.sourceKeys(for: layout.entries[0], format: format).keys[0]
            dict[Self.outputWeightName] = dict[wteName]
        }
        return dict
    }
}

/// A parameter read or written by name that is not there, or values of the wrong count.
public enum ParameterAccessError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No parameter has this Hugging Face name (`transformer.h.0.attn.c_attn.weight`, …).
    case unknownName(String)
    /// The values given for `name` are not as many as its elements.
    case countMismatch(name: String, expected: Int, found: Int)

    /// The message `gpt2kit` prints.
    public var description: String {
        switch self {
        case let .unknownName(name): return "no parameter named \(name)"
        case let .countMismatch(name, expected, found): return "\(name) holds \(expected) floats, not \(found)"
        }
    }
}
