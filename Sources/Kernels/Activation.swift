#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The element-wise activations of transformers' `ACT2FN` that GPT-2 configs may name, forward and backward.
public enum Activation: String, Sendable, CaseIterable {
    /// tanh approximation, `NewGELUActivation`: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
    case geluNew = "gelu_new"
    /// The same tanh approximation as `torch.nn.functional.gelu(approximate="tanh")`.
    case geluPytorchTanh = "gelu_pytorch_tanh"
    /// `FastGELUActivation`: 0.5x(1 + tanh(0.7978845608x(1 + 0.044715x²))).
    case geluFast = "gelu_fast"
    /// Exact GELU, 0.5x(1 + erf(x/√2)).
    case gelu = "gelu"
    /// x·σ(1.702x).
    case quickGelu = "quick_gelu"
    case relu = "relu"
    /// x·σ(x).
    case silu = "silu"
    /// Alias of `silu`.
    case swish = "swish"
    case tanh = "tanh"
    case sigmoid = "sigmoid"
    /// Identity.
    case linear = "linear"

    /// out = f(inp).
    public func forward(out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, N: Int) { // (N), (N)
        requireCount(out, N, "Activation.forward out"); requireCount(inp, N, "Activation.forward inp")
        let o = out.ptr, x = inp.ptr
        switch self {
        case .geluNew, .geluPytorchTanh: GELU.forward(out: o, inp: x, N: N)
        case .geluFast:
            for i in 0..<N { let v = x[i]; o[i] = 0.5 * v * (1 + tanhf(0.7978845608 * v * (1 + 0.044715 * v * v))) }
        case .gelu:
            for i in 0..<N { let v = x[i]; o[i] = 0.5 * v * (1 + erff(v * 0.70710678118654752)) }
        case .quickGelu:
            for i in 0..<N { let v = x[i]; o[i] = v / (1 + expf(-1.702 * v)) }
        case .relu:
            for i in 0..<N { o[i] = max(x[i], 0) }
        case .silu, .swish:
            for i in 0..<N { let v = x[i]; o[i] = v / (1 + expf(-v)) }
        case .tanh:
            for i in 0..<N { o[i] = tanhf(x[i]) }
        case .sigmoid:
            for i in 0..<N { o[i] = 1 / (1 + expf(-x[i])) }
        case .linear:
            if UnsafePointer(o) != x { o.update(from: x, count: N) }
        }
    }

    /// dinp += f′(inp) · dout.
    public func backward(dinp: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, // (N), (N)
                         dout: UnsafeBufferPointer<Float>, N: Int) { // (N)
        requireCount(dinp, N, "Activation.backward dinp"); requireCount(inp, N, "Activation.backward inp")
        requireCount(dout, N, "Activation.backward dout")
        let di = dinp.ptr, x = inp.ptr, d = dout.ptr
        switch self {
        case .geluNew, .geluPytorchTanh, .geluFast: GELU.backward(dinp: di, inp: x, dout: d, N: N)
        case .gelu:
            for i in 0..<N {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * 0.70710678118654752))
                let pdf = expf(-0.5 * v * v) * 0.39894228040143268
                di[i] += (cdf + v * pdf) * d[i]
            }
        case .quickGelu:
            for i in 0..<N {
                let v = x[i], s = 1 / (1 + expf(-1.702 * v))
                di[i] += (s + 1.702 * v * s * (1 - s)) * d[i]
            }
        case .relu:
            for i in 0..<N where x[i] > 0 { di[i] += d[i] }
        case .silu, .swish:
            for i in 0..<N {
                let v = x[i], s = 1 / (1 + expf(-v))
                di[i] += s * (1 + v * (1 - s)) * d[i]
            }
        case .tanh:
            for i in 0..<N { let t = tanhf(x[i]); di[i] += (1 - t * t) * d[i] }
        case .sigmoid:
            for i in 0..<N { let s = 1 / (1 + expf(-x[i])); di[i] += s * (1 - s) * d[i] }
        case .linear:
            for i in 0..<N { di[i] += d[i] }
        }
    }
}
