#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// GELU, tanh approximation (GPT-2's `gelu_new`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
/// Evaluated as x·σ(2u) with u = √(2/π)·(x + 0.044715·x³), since 1 + tanh(u) = 2σ(2u): no cancellation
/// where tanh(u) ≈ −1, so the relative error stays at a few ulp. Vectorised and split over both cores.
public enum GELU {
    /// √(2/π).
    static let scale: Float = 0.7978845608028654

    /// σ(2u) = ½(1 + tanh u), u = √(2/π)·(x + 0.044715·x³).
    @inline(__always)
    static func sigmoidOfTwoU(_ x: Float) -> Float {
        let u = scale * (x + 0.044715 * x * x * x)
        return 1 / (1 + VectorMath.exp(-2 * u))
    }

    /// out = gelu_new(inp) (out may alias inp).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int) { // (N), (N)
        Parallel.forEachChunk(count: N) { _, range in
            forwardRun(out: out + range.lowerBound, inp: inp + range.lowerBound, count: range.count)
        }
    }

    /// dinp += gelu_new′(inp) · dout.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, // (N), (N)
                                dout: UnsafePointer<Float>, N: Int) { // (N)
        // gelu′ = ½(1 + tanh u) + ½x·sech²u·u′ = s + 2x·s(1 − s)·u′ with s = σ(2u).
        Parallel.forEachChunk(count: N) { _, range in
            let o = range.lowerBound
            backwardRun(dinp: dinp + o, inp: inp + o, dout: dout + o, count: range.count)
        }
    }

    // The loops take their pointers as arguments (not through a closure context), so LLVM vectorises them.
    @inline(never)
    static func forwardRun(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            out[i] = x * sigmoidOfTwoU(x)
        }
    }

    @inline(never)
    static func backwardRun(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            let s = sigmoidOfTwoU(x)
            let du = scale * (1 + 0.134145 * x * x)
            dinp[i] += (s + 2 * x * s * (1 - s) * du) * dout[i]
        }
    }
}
