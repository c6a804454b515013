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
    static func sigmoidOfTwoU(_ x: VectorMath.Vector) -> VectorMath.Vector {
        let u = scale * (x + 0.044715 * x * x * x)
        return 1 / (1 + VectorMath.exp(-2 * u))
    }

    /// out = gelu_new(inp) (out may alias inp).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int) { // (N), (N)
        let W = VectorMath.width
        Parallel.forEachChunk(count: N) { _, range in
            var i = range.lowerBound
            while i + W <= range.upperBound {
                let x = VectorMath.load(inp + i)
                VectorMath.store(x * sigmoidOfTwoU(x), out + i)
                i += W
            }
            while i < range.upperBound {
                let x = VectorMath.Vector(repeating: inp[i])
                out[i] = (x * sigmoidOfTwoU(x))[0]
                i += 1
            }
        }
    }

    /// dinp += gelu_new′(inp) · dout.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, // (N), (N)
                                dout: UnsafePointer<Float>, N: Int) { // (N)
        let W = VectorMath.width
        // gelu′ = ½(1 + tanh u) + ½x·sech²u·u′ = s + 2x·s(1 − s)·u′ with s = σ(2u).
        @inline(__always) func local(_ x: VectorMath.Vector) -> VectorMath.Vector {
            let s = sigmoidOfTwoU(x)
            let x2: VectorMath.Vector = x * x
            let du: VectorMath.Vector = scale * (1 + 0.134145 * x2)
            let twoXS: VectorMath.Vector = 2 * x * s
            return s + twoXS * (1 - s) * du
        }
        Parallel.forEachChunk(count: N) { _, range in
            var i = range.lowerBound
            while i + W <= range.upperBound {
                let d = local(VectorMath.load(inp + i)) * VectorMath.load(dout + i)
                VectorMath.store(VectorMath.load(dinp + i) + d, dinp + i)
                i += W
            }
            while i < range.upperBound {
                dinp[i] += local(VectorMath.Vector(repeating: inp[i]))[0] * dout[i]
                i += 1
            }
        }
    }
}
