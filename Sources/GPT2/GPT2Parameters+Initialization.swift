import Foundation
import Kernels
import Tensors

extension GPT2Parameters {
    /// Freshly initialised parameters as transformers' `GPT2PreTrainedModel._init_weights` does: weights and
    /// embeddings ~ N(0, initializer_range), each `c_proj.weight` ~ N(0, initializer_range / √(2·n_layer)),
    /// biases 0, LayerNorm weights 1. Deterministic for a given `seed` (not torch's random stream).
    public convenience init(config: GPT2Config, seed: UInt64) {
        self.init(config: config)
        var generator = SplitMix64(state: seed)
        func nextUniform() -> Double { generator.nextOpenUnit() }
        let std = config.initializerRange
        let projectionStd = std / (2 * Double(config.layerCount)).squareRoot()
        for e in layout.entries {
            let v = storage[e.range]
            let sigma: Double
            switch e.role {
            case .global(.wte), .global(.wpe): sigma = std
            case .global(.lnfWeight): v.update(repeating: 1); continue
            case .global(.lnfBias): continue
            case .layer(_, let t):
                switch t {
                case .ln1Weight, .ln2Weight: v.update(repeating: 1); continue
                case .ln1Bias, .ln2Bias, .attnBias, .attnProjBias, .fcBias, .fcProjBias: continue
                case .attnWeight, .fcWeight: sigma = std
                case .attnProjWeight, .fcProjWeight: sigma = projectionStd
                }
            }
            var i = 0
            while i < v.count { // Box–Muller, two normals per pair of uniforms
                let r = (-2 * Foundation.log(nextUniform())).squareRoot(), a = 2 * Double.pi * nextUniform()
                v[i] = Float(r * cos(a) * sigma)
                if i + 1 < v.count { v[i + 1] = Float(r * sin(a) * sigma) }
                i += 2
            }
        }
    }
}
