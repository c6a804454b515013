import Foundation
import Kernels

/// GPT-2 hyper-parameters with transformers' `GPT2Config` key names and defaults.
///
/// Keys this type does not interpret are kept in `extraKeys` so `jsonData()` writes them back.
public struct GPT2Config: Sendable, Equatable {
    /// `vocab_size`.
    public var vocabularySize: Int = 50257
    /// `n_positions` (`n_ctx` in old configs): the longest sequence.
    public var maxPositions: Int = 1024
    /// `n_embd`.
    public var embeddingSize: Int = 768
    /// `n_layer`.
    public var layerCount: Int = 12
    /// `n_head`.
    public var headCount: Int = 12
    /// `n_inner`; nil means 4 · `n_embd`.
    public var innerSize: Int? = nil
    /// `activation_function`, one of `Activation`'s raw values.
    public var activationFunction: String = "gelu_new"
    /// `resid_pdrop`.
    public var residualDropout: Double = 0.1
    /// `embd_pdrop`.
    public var embeddingDropout: Double = 0.1
    /// `attn_pdrop`.
    public var attentionDropout: Double = 0.1
    /// `layer_norm_epsilon`.
    public var layerNormEpsilon: Double = 1e-5
    /// `initializer_range`.
    public var initializerRange: Double = 0.02
    /// `scale_attn_weights`: divide scores by √(head size).
    public var scaleAttentionWeights: Bool = true
    /// `scale_attn_by_inverse_layer_idx`: also divide layer i's scores by i + 1.
    public var scaleAttentionByInverseLayerIndex: Bool = false
    /// `reorder_and_upcast_attn` (no numerical effect in float32).
    public var reorderAndUpcastAttention: Bool = false
    /// `bos_token_id`.
    public var bosTokenID: Int? = 50256
    /// `eos_token_id`.
    public var eosTokenID: Int? = 50256
    /// Every key of the source JSON not listed above, written back unchanged.
    public var extraKeys: [String: JSONValue] = [:]

    /// transformers' defaults (GPT-2 124M).
    public init() {}

    /// The shapes of the released GPT-2 checkpoints.
    public enum Preset: String, Sendable, CaseIterable {
        /// GPT-2 small, 124M parameters: 12 layers, 12 heads, width 768 (`gpt2`).
        case gpt2
        /// GPT-2 medium, 355M parameters: 24 layers, 16 heads, width 1024.
        case gpt2Medium = "gpt2-medium"
        /// GPT-2 large, 774M parameters: 36 layers, 20 heads, width 1280.
        case gpt2Large = "gpt2-large"
        /// GPT-2 XL, 1.5B parameters: 48 layers, 25 heads, width 1600.
        case gpt2XL = "gpt2-xl"
    }

    /// The config of a released GPT-2 shape (50257 tokens, 1024 positions; 124M, 355M, 774M, 1.5B parameters),
    /// with transformers' defaults otherwise.
    public init(preset: Preset) {
        self.init()
        switch preset {
        case .gpt2: (embeddingSize, layerCount, headCount) = (768, 12, 12)
        case .gpt2Medium: (embeddingSize, layerCount, headCount) = (1024, 24, 16)
        case .gpt2Large: (embeddingSize, layerCount, headCount) = (1280, 36, 20)
        case .gpt2XL: (embeddingSize, layerCount, headCount) = (1600, 48, 25)
        }
    }

    /// A config with the given sizes and transformers' defaults elsewhere.
    public init(vocabularySize: Int, maxPositions: Int, embeddingSize: Int, layerCount: Int, headCount: Int,
                innerSize: Int? = nil, activationFunction: String = "gelu_new", dropout: Double = 0.1) {
        self.vocabularySize = vocabularySize
        self.maxPositions = maxPositions
        self.embeddingSize = embeddingSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.innerSize = innerSize
        self.activationFunction = activationFunction
        residualDropout = dropout; embeddingDropout = dropout; attentionDropout = dropout
    }

    /// The MLP width: `n_inner` or 4 · `n_embd`.
    public var feedForwardSize: Int { innerSize ?? 4 * embeddingSize }
    /// `n_embd / n_head`.
    public var headSize: Int { embeddingSize / headCount }

    /// The activation kernel for `activationFunction`. Throws for names this library does not implement.
    public func activation() throws(ConfigError) -> Activation {
        guard let a = Activation(rawValue: activationFunction) else {
            throw .invalidValue(key: "activation_function", value: "\"\(activationFunction)\"",
                                reason: "is not supported (supported: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))",
                                path: nil)
        }
        return a
    }

    /// The most blocks a config may declare (gpt2-xl has 48).
    public static let maximumLayerCount = 10_000
    /// The most parameters a config may describe: 2³⁴ floats (64 GiB), far above gpt2-xl's 1.5e9.
    public static let maximumParameterCount = 1 << 34

    /// The number of floats in the parameter layout, computed with overflow checks; nil on overflow.
    /// Mirrors `GPT2ParameterLayout` (wte, wpe, 12 tensors per block, ln_f).
    public var checkedParameterCount: Int? {
        func mul(_ a: Int, _ b: Int) -> Int? {
            let r = a.multipliedReportingOverflow(by: b); return r.overflow ? nil : r.partialValue
        }
        func add(_ xs: Int?...) -> Int? {
            var total = 0
            for x in xs {
                guard let x else { return nil }
                let r = total.addingReportingOverflow(x)
                if r.overflow { return nil }
                total = r.partialValue
            }
            return total
        }
        let C = embeddingSize
        guard let F = innerSize ?? mul(4, C), let C3 = mul(3, C), let CC = mul(C, C) else { return nil }
        // ln_1, ln_2 (2C each), c_attn (C·3C + 3C), attn c_proj (C·C + C), c_fc (C·F + F), mlp c_proj (F·C + C)
        guard let perLayer = add(mul(4, C), mul(C, C3), C3, CC, C, mul(C, F), F, mul(F, C), C) else { return nil }
        return add(mul(vocabularySize, C), mul(maxPositions, C), mul(layerCount, perLayer), mul(2, C))
    }

    /// Checks sizes and probabilities; the error names the offending key.
    public func validate(path: String? = nil) throws(ConfigError) {
        func positive(_ v: Int, _ key: String) throws(ConfigError) {
            if v <= 0 { throw .invalidValue(key: key, value: String(v), reason: "must be positive", path: path) }
        }
        try positive(vocabularySize, "vocab_size")
        try positive(maxPositions, "n_positions")
        try positive(embeddingSize, "n_embd")
        try positive(layerCount, "n_layer")
        try positive(headCount, "n_head")
        if let innerSize { try positive(innerSize, "n_inner") }
        if embeddingSize % headCount != 0 {
            throw .invalidValue(key: "n_embd", value: String(embeddingSize), reason: "is not divisible by n_head \(headCount)", path: path)
        }
        if vocabularySize > Int(Int32.max) {
            throw .invalidValue(key: "vocab_size", value: String(vocabularySize), reason: "does not fit 32-bit token ids", path: path)
        }
        if layerCount > Self.maximumLayerCount {
            throw .invalidValue(key: "n_layer", value: String(layerCount), reason: "is more than the supported \(Self.maximumLayerCount)", path: path)
        }
        let parameterCount = checkedParameterCount
        if parameterCount.map({ $0 > Self.maximumParameterCount }) ?? true {
            throw .tooManyParameters(count: parameterCount, limit: Self.maximumParameterCount, path: path)
        }
        for (key, p) in [("resid_pdrop", residualDropout), ("embd_pdrop", embeddingDropout), ("attn_pdrop", attentionDropout)] {
            if !(p >= 0 && p < 1) { throw .invalidValue(key: key, value: String(p), reason: "must lie in [0, 1)", path: path) }
        }
        if !(layerNormEpsilon > 0) {
            throw .invalidValue(key: "layer_norm_epsilon", value: String(layerNormEpsilon), reason: "must be positive", path: path)
        }
        do { _ = try activation() } catch {
            throw .invalidValue(key: "activation_function", value: "\"\(activationFunction)\"",
                                reason: "is not supported (supported: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))",
                                path: path)
        }
    }

    static let knownKeys: Set<String> = [
        "vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
        "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon", "initializer_range",
        "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
        "bos_token_id", "eos_token_id",
    ]

    /// Parses and validates a `config.json`. `path` only labels errors.
    public init(jsonData: Data, path: String? = nil) throws(ConfigError) {
        let object: [String: JSONValue]
        do { object = try JSONDecoder().decode([String: JSONValue].self, from: jsonData) } catch {
            throw .invalidJSON(path: path, reason: "not a JSON object")
        }
        func int(_ key: String) throws(ConfigError) -> Int? {
            switch object[key] {
            case nil, .null?: return nil
            case .int(let i)?: return i
            case .double(let d)? where d.rounded() == d && abs(d) < 9e15: return Int(d)
            case let v?: throw .wrongType(key: key, expected: "an integer", found: v.brief, path: path)
            }
        }
        func double(_ key: String) throws(ConfigError) -> Double? {
            switch object[key] {
            case nil, .null?: return nil
            case .int(let i)?: return Double(i)
            case .double(let d)?: return d
            case let v?: throw .wrongType(key: key, expected: "a number", found: v.brief, path: path)
            }
        }
        func bool(_ key: String) throws(ConfigError) -> Bool? {
            switch object[key] {
            case nil, .null?: return nil
            case .bool(let b)?: return b
            case let v?: throw .wrongType(key: key, expected: "a boolean", found: v.brief, path: path)
            }
        }
        func string(_ key: String) throws(ConfigError) -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let v?: throw .wrongType(key: key, expected: "a string", found: v.brief, path: path)
            }
        }
        if let v = try int("vocab_size") { vocabularySize = v }
        if let v = try int("n_positions") { maxPositions = v } else if let v = try int("n_ctx") { maxPositions = v }
        if let v = try int("n_embd") { embeddingSize = v }
        if let v = try int("n_layer") { layerCount = v }
        if let v = try int("n_head") { headCount = v }
        innerSize = try int("n_inner")
        if let v = try string("activation_function") { activationFunction = v }
        if let v = try double("resid_pdrop") { residualDropout = v }
        if let v = try double("embd_pdrop") { embeddingDropout = v }
        if let v = try double("attn_pdrop") { attentionDropout = v }
        if let v = try double("layer_norm_epsilon") { layerNormEpsilon = v }
        if let v = try double("initializer_range") { initializerRange = v }
        if let v = try bool("scale_attn_weights") { scaleAttentionWeights = v }
        if let v = try bool("scale_attn_by_inverse_layer_idx") { scaleAttentionByInverseLayerIndex = v }
        if let v = try bool("reorder_and_upcast_attn") { reorderAndUpcastAttention = v }
        if object.keys.contains("bos_token_id") { bosTokenID = try int("bos_token_id") }
        if object.keys.contains("eos_token_id") { eosTokenID = try int("eos_token_id") }
        for (k, v) in object where !Self.knownKeys.contains(k) { extraKeys[k] = v }
        try validate(path: path)
    }

    /// The config as pretty-printed JSON with sorted keys (as `save_pretrained` writes), unknown keys included.
    public func jsonData() throws -> Data {
        var object = extraKeys
        object["vocab_size"] = .int(vocabularySize)
        object["n_positions"] = .int(maxPositions)
        object["n_embd"] = .int(embeddingSize)
        object["n_layer"] = .int(layerCount)
        object["n_head"] = .int(headCount)
        object["n_inner"] = innerSize.map(JSONValue.int) ?? .null
        object["activation_function"] = .string(activationFunction)
        object["resid_pdrop"] = .double(residualDropout)
        object["embd_pdrop"] = .double(embeddingDropout)
        object["attn_pdrop"] = .double(attentionDropout)
        object["layer_norm_epsilon"] = .double(layerNormEpsilon)
        object["initializer_range"] = .double(initializerRange)
        object["scale_attn_weights"] = .bool(scaleAttentionWeights)
        object["scale_attn_by_inverse_layer_idx"] = .bool(scaleAttentionByInverseLayerIndex)
        object["reorder_and_upcast_attn"] = .bool(reorderAndUpcastAttention)
        object["bos_token_id"] = bosTokenID.map(JSONValue.int) ?? .null
        object["eos_token_id"] = eosTokenID.map(JSONValue.int) ?? .null
        if object["model_type"] == nil { object["model_type"] = .string("gpt2") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(object)
    }
}
