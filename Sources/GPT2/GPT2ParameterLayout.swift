import Foundation
import Tensors

/// The one declaration list of GPT-2's parameters, in Hugging Face's canonical order. It sizes the flat
/// parameter buffer and, through the same offsets, the gradients and the optimizer's m and v.
public struct GPT2ParameterLayout: Sendable, Equatable {
    /// Tensors outside the blocks.
    public enum GlobalTensor: Int, Sendable, CaseIterable {
        /// Token embedding `wte.weight`, (V, C); also the output layer (tied).
        case wte
        /// Position embedding `wpe.weight`, (n_positions, C).
        case wpe
        /// Final LayerNorm's scale γ `ln_f.weight`, (C).
        case lnfWeight
        /// Final LayerNorm's shift β `ln_f.bias`, (C).
        case lnfBias

        /// The Hugging Face key without the `transformer.` prefix.
        public var key: String {
            switch self {
            case .wte: return "wte.weight"
            case .wpe: return "wpe.weight"
            case .lnfWeight: return "ln_f.weight"
            case .lnfBias: return "ln_f.bias"
            }
        }

        /// TensorFlow keys below `…/transformer/`, the first one canonical.
        var tensorFlowKeys: [String] {
            switch self {
            case .wte: return ["wte/embeddings:0", "wte/weight:0"]
            case .wpe: return ["wpe/embeddings:0", "wpe/weight:0"]
            case .lnfWeight: return ["ln_f/gamma:0"]
            case .lnfBias: return ["ln_f/beta:0"]
            }
        }

        func shape(_ c: GPT2Config) -> [Int] {
            switch self {
            case .wte: return [c.vocabularySize, c.embeddingSize]
            case .wpe: return [c.maxPositions, c.embeddingSize]
            case .lnfWeight, .lnfBias: return [c.embeddingSize]
            }
        }
    }

    /// Tensors of each block `h.N`, in canonical order.
    public enum LayerTensor: Int, Sendable, CaseIterable {
        /// `ln_1.weight`: the attention LayerNorm's γ, (C).
        case ln1Weight
        /// `ln_1.bias`: the attention LayerNorm's β, (C).
        case ln1Bias
        /// `attn.c_attn.weight`: the query/key/value projection (Conv1D, (in, out) = (C, 3C)).
        case attnWeight
        /// `attn.c_attn.bias`, (3C).
        case attnBias
        /// `attn.c_proj.weight`: the attention output projection, (C, C).
        case attnProjWeight
        /// `attn.c_proj.bias`, (C).
        case attnProjBias
        /// `ln_2.weight`: the MLP LayerNorm's γ, (C).
        case ln2Weight
        /// `ln_2.bias`: the MLP LayerNorm's β, (C).
        case ln2Bias
        /// `mlp.c_fc.weight`: the MLP's up projection, (C, F) with F = `n_inner` (default 4C).
        case fcWeight
        /// `mlp.c_fc.bias`, (F).
        case fcBias
        /// `mlp.c_proj.weight`: the MLP's down projection, (F, C).
        case fcProjWeight
        /// `mlp.c_proj.bias`, (C).
        case fcProjBias

        /// The Hugging Face key below `h.N.`.
        public var key: String {
            switch self {
            case .ln1Weight: return "ln_1.weight"
            case .ln1Bias: return "ln_1.bias"
            case .attnWeight: return "attn.c_attn.weight"
            case .attnBias: return "attn.c_attn.bias"
            case .attnProjWeight: return "attn.c_proj.weight"
            case .attnProjBias: return "attn.c_proj.bias"
            case .ln2Weight: return "ln_2.weight"
            case .ln2Bias: return "ln_2.bias"
            case .fcWeight: return "mlp.c_fc.weight"
            case .fcBias: return "mlp.c_fc.bias"
            case .fcProjWeight: return "mlp.c_proj.weight"
            case .fcProjBias: return "mlp.c_proj.bias"
            }
        }

        /// The TensorFlow key below `h_._N/`.
        var tensorFlowKey: String {
            switch self {
            case .ln1Weight: return "ln_1/gamma:0"
            case .ln1Bias: return "ln_1/beta:0"
            case .ln2Weight: return "ln_2/gamma:0"
            case .ln2Bias: return "ln_2/beta:0"
            default: return key.replacingOccurrences(of: ".", with: "/") + ":0"
            }
        }

        /// Conv1D biases, stored by TensorFlow as (1, n).
        var isConvBias: Bool { self == .attnBias || self == .attnProjBias || self == .fcBias || self == .fcProjBias }

        func shape(_ c: GPT2Config) -> [Int] {
            let C = c.embeddingSize, F = c.feedForwardSize
            switch self {
            case .ln1Weight, .ln1Bias, .ln2Weight, .ln2Bias, .attnProjBias, .fcProjBias: return [C]
            case .attnWeight: return [C, 3 * C]
            case .attnBias: return [3 * C]
            case .attnProjWeight: return [C, C]
            case .fcWeight: return [C, F]
            case .fcBias: return [F]
            case .fcProjWeight: return [F, C]
            }
        }
    }

    /// Which tensor an entry is.
    public enum Role: Sendable, Equatable {
        /// A tensor outside the blocks.
        case global(GlobalTensor)
        /// A tensor of block `h.N` (the block index, 0-based, then which tensor).
        case layer(Int, LayerTensor)
    }

    /// One parameter tensor: its Hugging Face name, shape and place in the flat buffer.
    public struct Entry: Sendable, Equatable {
        /// The canonical Hugging Face name, e.g. `transformer.h.0.attn.c_attn.weight`.
        public var name: String
        /// The shape in Hugging Face's layout (Conv1D weights are (in, out)).
        public var shape: Shape
        /// Which tensor it is.
        public var role: Role
        /// Its floats in the flat parameter buffer (and in the gradients and AdamW moments).
        public var range: Range<Int>
    }

    /// Every parameter in canonical order (wte, wpe, h.0 …, ln_f).
    public let entries: [Entry]
    /// Total number of floats.
    public let totalCount: Int
    let globalRanges: [Range<Int>]
    let layerBase: Int, layerStride: Int
    let layerOffsets: [Int], layerCounts: [Int]

    /// The table for `config`.
    public init(config c: GPT2Config) {
        var entries: [Entry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], _ role: Role) {
            let n = Shape(shape).elementCount
            entries.append(Entry(name: name, shape: Shape(shape), role: role, range: offset ..< offset + n))
            offset += n
        }
        add("transformer." + GlobalTensor.wte.key, GlobalTensor.wte.shape(c), .global(.wte))
        add("transformer." + GlobalTensor.wpe.key, GlobalTensor.wpe.shape(c), .global(.wpe))
        layerBase = offset
        var offs: [Int] = [], counts: [Int] = []
        var inLayer = 0
        for t in LayerTensor.allCases {
            let n = Shape(t.shape(c)).elementCount
            offs.append(inLayer); counts.append(n); inLayer += n
        }
        layerStride = inLayer
        layerOffsets = offs; layerCounts = counts
        for l in 0..<c.layerCount {
            for t in LayerTensor.allCases { add("transformer.h.\(l)." + t.key, t.shape(c), .layer(l, t)) }
        }
        add("transformer." + GlobalTensor.lnfWeight.key, GlobalTensor.lnfWeight.shape(c), .global(.lnfWeight))
        add("transformer." + GlobalTensor.lnfBias.key, GlobalTensor.lnfBias.shape(c), .global(.lnfBias))
        self.entries = entries
        self.totalCount = offset
        var g = [Range<Int>](repeating: 0 ..< 0, count: GlobalTensor.allCases.count)
        for e in entries { if case .global(let t) = e.role { g[t.rawValue] = e.range } }
        globalRanges = g
    }

    /// Where a global tensor lives in the flat buffer.
    @inline(__always) public func range(_ t: GlobalTensor) -> Range<Int> { globalRanges[t.rawValue] }

    /// Where tensor `t` of block `layer` lives in the flat buffer.
    @inline(__always) public func range(layer: Int, _ t: LayerTensor) -> Range<Int> {
        let start = layerBase + layer * layerStride + layerOffsets[t.rawValue]
        return start ..< start + layerCounts[t.rawValue]
    }

    /// The entry named `name` (Hugging Face name with `transformer.`).
    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// (name, range) pairs for every parameter, as optimizers' decay masks take them.
    public var namedRanges: [(name: String, range: Range<Int>)] { entries.map { ($0.name, $0.range) } }
}
