import Kernels
import Tensors

/// The four Conv1D projections of a GPT-2 block that LoRA can adapt, by their module path inside the block.
public enum LoRAModuleKind: Int, Sendable, CaseIterable, Codable {
    /// `attn.c_attn`: the query/key/value projection, C → 3C.
    case attention
    /// `attn.c_proj`: the attention output projection, C → C.
    case attentionProjection
    /// `mlp.c_fc`: the MLP's up projection, C → F.
    case feedForward
    /// `mlp.c_proj`: the MLP's down projection, F → C.
    case feedForwardProjection

    /// Module path inside block `h.N` (PEFT matches targets against the full module name by suffix).
    public var path: String {
        switch self {
        case .attention: return "attn.c_attn"
        case .attentionProjection: return "attn.c_proj"
        case .feedForward: return "mlp.c_fc"
        case .feedForwardProjection: return "mlp.c_proj"
        }
    }

    /// The base weight this module adapts.
    public var weight: GPT2ParameterLayout.LayerTensor {
        switch self {
        case .attention: return .attnWeight
        case .attentionProjection: return .attnProjWeight
        case .feedForward: return .fcWeight
        case .feedForwardProjection: return .fcProjWeight
        }
    }

    /// (in, out) features of the module for `config`.
    public func features(_ config: GPT2Config) -> (input: Int, output: Int) {
        let C = config.embeddingSize, F = config.feedForwardSize
        switch self {
        case .attention: return (C, 3 * C)
        case .attentionProjection: return (C, C)
        case .feedForward: return (C, F)
        case .feedForwardProjection: return (F, C)
        }
    }
}

/// LoRA hyper-parameters with PEFT's meaning (`LoraConfig`).
public struct LoRAConfiguration: Sendable, Equatable, Codable {
    /// Rank r.
    public var rank: Int
    /// lora_alpha; the update is scaled by alpha / r (alpha / √r with rsLoRA).
    public var alpha: Double
    /// Dropout on the adapter's input during training.
    public var dropout: Double
    /// PEFT's `target_modules`: a module matches when its full name equals a target or ends with "." + target.
    public var targetModules: [String]
    /// rsLoRA scaling (alpha / √r).
    public var useRSLoRA: Bool

    /// A configuration with PEFT's meanings; `alpha` defaults to `rank` (scale 1), targets to `c_attn`.
    public init(rank: Int, alpha: Double? = nil, dropout: Double = 0, targetModules: [String] = ["c_attn"], useRSLoRA: Bool = false) {
        self.rank = rank
        self.alpha = alpha ?? Double(rank)
        self.dropout = dropout
        self.targetModules = targetModules
        self.useRSLoRA = useRSLoRA
    }

    /// The factor applied to B·A·x.
    public var scale: Float { Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }

    /// Checks the values (not the targets, which need a model).
    public func validate() throws(LoRAError) {
        guard rank >= 1, rank <= 1 << 16 else { throw .invalidValue(field: "r", value: "\(rank)", expected: "an integer in 1...65536") }
        guard alpha.isFinite else { throw .invalidValue(field: "lora_alpha", value: "\(alpha)", expected: "a finite number") }
        guard dropout >= 0, dropout < 1 else { throw .invalidValue(field: "lora_dropout", value: "\(dropout)", expected: "a number in [0, 1)") }
        guard !targetModules.isEmpty else { throw .invalidValue(field: "target_modules", value: "[]", expected: "at least one module name") }
    }

    /// The (layer, kind) modules of a model with `layerCount` blocks that the targets select, in layer then
    /// kind order. Throws for a target that selects nothing (PEFT refuses those too).
    public func modules(layerCount: Int) throws(LoRAError) -> [(layer: Int, kind: LoRAModuleKind)] {
        var selected: [(Int, LoRAModuleKind)] = []
        var used = Set<String>()
        for layer in 0..<layerCount {
            for kind in LoRAModuleKind.allCases {
                let name = "transformer.h.\(layer).\(kind.path)"
                let hits = targetModules.filter { name == $0 || name.hasSuffix("." + $0) }
                if !hits.isEmpty { selected.append((layer, kind)); used.formUnion(hits) }
            }
        }
        if let unused = targetModules.first(where: { !used.contains($0) }) {
            throw .unknownTarget(unused)
        }
        return selected
    }
}

/// Why an adapter cannot be built, read or applied.
public enum LoRAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A configuration value out of range (`field` in `adapter_config.json` naming).
    case invalidValue(field: String, value: String, expected: String)
    /// A target module that matches no Conv1D of the model.
    case unknownTarget(String)
    /// An adapter feature GPT2Kit does not implement (another PEFT type, biases, …) or a file it cannot read.
    case unsupported(field: String, reason: String)
    /// An adapted module's A or B is not in the weights (or there is no weights file).
    case missingTensor(String)
    /// A tensor that belongs to no adapted module, or appears twice.
    case unexpectedTensor(String)
    /// A tensor of the wrong shape or not floating point (an adapter of another base model?).
    case wrongShape(tensor: String, expected: Shape, found: Shape)

    /// The message `gpt2kit` prints, naming the field or tensor.
    public var description: String {
        switch self {
        case let .invalidValue(f, v, e): return "'\(f)': \(v) is not \(e)"
        case let .unknownTarget(t):
            return "target module '\(t)' matches no Conv1D of GPT-2 (c_attn, c_proj, c_fc, attn.c_proj, mlp.c_proj, …)"
        case let .unsupported(f, r): return "'\(f)': \(r)"
        case let .missingTensor(n): return "tensor '\(n)' is missing"
        case let .unexpectedTensor(n): return "tensor '\(n)' belongs to no adapted module"
        case let .wrongShape(n, e, f): return "tensor '\(n)': expected \(e), found \(f) (an adapter of another base model?)"
        }
    }
}

/// The A and B matrices of every adapted module in one flat buffer (one table, as the base parameters).
public final class LoRAAdapter {
    /// One adapted module: where its A (r, in) and B (out, r) live in `storage`.
    public struct Module: Sendable, Equatable {
        /// Position in `modules` (and of its activations in the model's adapter buffers).
        public var index: Int
        /// The block index (`h.N`).
        public var layer: Int
        /// Which projection of the block it adapts.
        public var kind: LoRAModuleKind
        /// The projection's input width `in`.
        public var inputFeatures: Int
        /// The projection's output width `out`.
        public var outputFeatures: Int
        /// A, (r, in) row-major, in `storage` (PEFT's `lora_A.weight`).
        public var a: Range<Int>
        /// B, (out, r) row-major, in `storage` (PEFT's `lora_B.weight`).
        public var b: Range<Int>
        /// PEFT's module name, e.g. `transformer.h.0.attn.c_attn`.
        public var name: String { "transformer.h.\(layer).\(kind.path)" }
    }

    /// Rank, alpha, dropout and targets.
    public let configuration: LoRAConfiguration
    /// Every adapted module, in layer then kind order.
    public let modules: [Module]
    /// index of the module at (layer, kind), or -1.
    private let moduleIndex: [[Int]]
    /// A and B of every module, in module order.
    package let storage: FloatBuffer
    /// Floats in every A and B together (the trained parameters of a LoRA run).
    public var parameterCount: Int { storage.count }

    /// Zero-filled matrices for `config`'s blocks selected by `configuration` (use `initialize(seed:)` for
    /// PEFT's initialisation).
    public init(configuration: LoRAConfiguration, modelConfig: GPT2Config) throws(LoRAError) {
        try configuration.validate()
        let selected = try configuration.modules(layerCount: modelConfig.layerCount)
        let r = configuration.rank
        var modules: [Module] = []
        var offset = 0
        var index = [[Int]](repeating: [Int](repeating: -1, count: LoRAModuleKind.allCases.count), count: modelConfig.layerCount)
        for (layer, kind) in selected {
            let (input, output) = kind.features(modelConfig)
            let a = offset ..< offset + r * input
            let b = a.upperBound ..< a.upperBound + output * r
            offset = b.upperBound
            index[layer][kind.rawValue] = modules.count
            modules.append(Module(index: modules.count, layer: layer, kind: kind, inputFeatures: input, outputFeatures: output, a: a, b: b))
        }
        self.configuration = configuration
        self.modules = modules
        self.moduleIndex = index
        self.storage = FloatBuffer(count: offset)
    }

    /// The module adapting `kind` of block `layer`, if any.
    @inline(__always) public func module(layer: Int, _ kind: LoRAModuleKind) -> Module? {
        let i = moduleIndex[layer][kind.rawValue]
        return i >= 0 ? modules[i] : nil
    }

    /// PEFT's initialisation: A kaiming-uniform with a = √5 (uniform in ±1/√in), B = 0, so the adapted model
    /// starts equal to the base.
    public func initialize(seed: UInt64) {
        var generator = SplitMix64(state: seed)
        let p = storage.buffer
        for m in modules {
            let bound = 1 / Float(m.inputFeatures).squareRoot()
            for i in m.a { p[i] = (Float(generator.next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
            for i in m.b { p[i] = 0 }
        }
    }

    /// PEFT's state-dict key of a module's A or B.
    public static func key(module: String, isA: Bool) -> String {
        "base_model.model.\(module).lora_\(isA ? "A" : "B").weight"
    }

    /// (name, shape, range) of every matrix, in module order, named as PEFT saves them.
    public var namedTensors: [(name: String, shape: Shape, range: Range<Int>)] {
        modules.flatMap { m in
            [(Self.key(module: m.name, isA: true), Shape([configuration.rank, m.inputFeatures]), m.a),
             (Self.key(module: m.name, isA: false), Shape([m.outputFeatures, configuration.rank]), m.b)]
        }
    }

    /// The matrices as a state dict with PEFT's names (F32).
    public func stateDict() -> StateDict {
        var dict = StateDict()
        for (name, shape, range) in namedTensors {
            dict[name] = Tensor(floats: UnsafeBufferPointer(storage[range]), shape: shape)
        }
        return dict
    }

    /// Loads the matrices from a state dict with PEFT's names (any float dtype; the adapter-name infix
    /// `.default` that PEFT uses in memory is accepted too). Every module's A and B must be present with
    /// their shapes, and nothing else.
    public func load(_ dict: StateDict) throws(LoRAError) {
        var byName: [String: (Shape, Range<Int>)] = [:]
        for (name, shape, range) in namedTensors { byName[name] = (shape, range) }
        var found = Set<String>()
        for (rawName, tensor) in dict {
            let name = rawName.replacingOccurrences(of: ".lora_A.default.weight", with: ".lora_A.weight")
                .replacingOccurrences(of: ".lora_B.default.weight", with: ".lora_B.weight")
            guard let (shape, range) = byName[name] else { throw .unexpectedTensor(rawName) }
            guard tensor.shape == shape, tensor.dtype.isFloatingPoint else { throw .wrongShape(tensor: rawName, expected: shape, found: tensor.shape) }
            guard found.insert(name).inserted else { throw .unexpectedTensor(rawName) }
            tensor.copyFloats(into: storage[range])
        }
        if let missing = namedTensors.first(where: { !found.contains($0.name) }) { throw .missingTensor(missing.name) }
    }

    /// Adds every module's update into the base weights (PEFT's `merge_and_unload` for Conv1D: W += (B·A)ᵀ·scale).
    public func merge(into parameters: GPT2Parameters) {
        let r = configuration.rank, scale = configuration.scale
        let p = storage.buffer
        for m in modules {
            LowRankAdapter.merge(weight: parameters.view(layer: m.layer, m.kind.weight),
                                 a: UnsafeBufferPointer(rebasing: p[m.a]), b: UnsafeBufferPointer(rebasing: p[m.b]),
                                 C: m.inputFeatures, OC: m.outputFeatures, r: r, scale: scale)
        }
    }
}
