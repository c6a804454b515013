import CKernels

/// GELU, tanh approximation (GPT-2's `gelu_new`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
/// Evaluated as x·σ(2u) with u = √(2/π)·(x + 0.044715·x³), since 1 + tanh(u) = 2σ(2u): no cancellation
/// where tanh(u) ≈ −1, so the relative error stays at a few ulp. The loops are C (`CKernels`: AVX2 + FMA where
/// the CPU has them), split over both cores.
public enum GELU {
    /// out = gelu_new(inp) (out may alias inp).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int) { // (N), (N)
        Parallel.forEachChunk(count: N) { _, range in
            gpt2kit_gelu_forward(out + range.lowerBound, inp + range.lowerBound, range.count)
        }
    }

    /// dinp += gelu_new′(inp) · dout, with gelu′ = s + 2x·s(1 − s)·u′, s = σ(2u).
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, // (N), (N)
                                dout: UnsafePointer<Float>, N: Int) { // (N)
        Parallel.forEachChunk(count: N) { _, range in
            let o = range.lowerBound
            gpt2kit_gelu_backward(dinp + o, inp + o, dout + o, range.count)
        }
    }
}
