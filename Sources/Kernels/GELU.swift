#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// GELU, tanh approximation (GPT-2's `gelu_new`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
public enum GELU {
    /// √(2/π).
    static let scale: Float = 0.7978845608028654

    /// out = gelu_new(inp) (out may alias inp).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int) { // (N), (N)
        for i in 0..<N {
            let x = inp[i]
            let cube = 0.044715 * x * x * x
            out[i] = 0.5 * x * (1 + tanhf(scale * (x + cube)))
        }
    }

    /// dinp += gelu_new′(inp) · dout.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, // (N), (N)
                                dout: UnsafePointer<Float>, N: Int) { // (N)
        for i in 0..<N {
            let x = inp[i]
            let cube = 0.044715 * x * x * x
            let t = tanhf(scale * (x + cube))
            let sech2 = 1 - t * t
            let local = 0.5 * (1 + t) + x * 0.5 * sech2 * scale * (1 + 3 * 0.044715 * x * x)
            dinp[i] += local * dout[i]
        }
    }
}
