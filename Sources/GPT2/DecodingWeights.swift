import Kernels

/// The precision decoding reads weights in: float32 as trained, or re-encoded once into f16 or Q8_0 (fewer
/// bytes per token; decoding is bound by memory bandwidth).
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// The float32 weights as trained, read in place.
    case f32
    /// Re-encoded once to IEEE half floats: half the bytes per token.
    case f16
    /// Re-encoded once to Q8_0 (blocks of 32 int8 with an f16 scale, as GGUF): about a quarter of the bytes.
    case q8_0

    /// The encoding of the re-encoded weights (nil for float32).
    public var matrixFormat: QuantizedMatrix.Format? {
        switch self {
        case .f32: return nil
        case .f16: return .f16
        case .q8_0: return .q8_0
        }
    }
}

/// A model's projections re-encoded for decoding: the four of every block and the tied lm head (wte). Embeddings,
/// biases and LayerNorms stay float32. Built once from the parameters (`GPT2Model.decodingWeights(_:)`).
package final class DecodingWeights: @unchecked Sendable {
    /// The encoding of every re-encoded matrix (f16 or Q8_0).
    public let format: QuantizedMatrix.Format
    /// Per block: c_attn, attn.c_proj, c_fc, mlp.c_proj.
    let blocks: [[QuantizedMatrix]]
    /// wte as the output layer, (V, C).
    let lmHead: QuantizedMatrix

    /// Why a model's weights cannot take `format`: nil when they can (Q8_0 needs n_embd and the MLP width in
    /// whole blocks of 32).
    public static func unsupportedReason(_ format: QuantizedMatrix.Format, config: GPT2Config) -> String? {
        guard format == .q8_0 else { return nil }
        if config.embeddingSize % 32 != 0 || config.feedForwardSize % 32 != 0 {
            return "q8_0 needs n_embd and n_inner in whole blocks of 32 (this model has \(config.embeddingSize) and \(config.feedForwardSize))"
        }
        return nil
    }

    /// Encodes every projection of `parameters`. Precondition: `unsupportedReason` is nil.
    public init(parameters P: GPT2Parameters, format: QuantizedMatrix.Format) {
        let c = P.config, C = c.embeddingSize, F = c.feedForwardSize
        precondition(Self.unsupportedReason(format, config: c) == nil, "weights cannot be encoded as \(format)")
        self.format = format
        func matrix(_ l: Int, _ t: GPT2ParameterLayout.LayerTensor, _ inputs: Int, _ outputs: Int) -> QuantizedMatrix {
            QuantizedMatrix(format: format, weight: UnsafeBufferPointer(P.view(layer: l, t)), C: inputs, OC: outputs, layout: .inputMajor)
        }
        blocks = (0..<c.layerCount).map { l in
            [matrix(l, .attnWeight, C, 3 * C), matrix(l, .attnProjWeight, C, C), matrix(l, .fcWeight, C, F), matrix(l, .fcProjWeight, F, C)]
        }
        lmHead = QuantizedMatrix(format: format, weight: UnsafeBufferPointer(P.view(.wte)), C: C, OC: c.vocabularySize, layout: .outputMajor)
    }

    /// The encoded weight of a block's projection.
    func matrix(layer l: Int, _ t: GPT2ParameterLayout.LayerTensor) -> QuantizedMatrix? {
        switch t {
        case .attnWeight: return blocks[l][0]
        case .attnProjWeight: return blocks[l][1]
        case .fcWeight: return blocks[l][2]
        case .fcProjWeight: return blocks[l][3]
        default: return nil
        }
    }

    /// logits (N, V) = inp (N, C)·wteᵀ in the encoded weights.
    public func outputLayer(out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, N: Int) {
        lmHead.forward(out: out, inp: inp, bias: nil, N: N)
    }
}
