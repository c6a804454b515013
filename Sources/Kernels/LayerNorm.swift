#if canImport(Glibc)
import Glibc
#endif

/// Layer normalisation over the last dimension (biased variance, as `torch.nn.LayerNorm`).
public enum LayerNorm {
    /// out = (inp - mean) * rstd * weight + bias, saving mean and rstd = 1/sqrt(var + eps) for backward.
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>,  // (N, C)
        mean: UnsafeMutableBufferPointer<Float>, // (N)
        rstd: UnsafeMutableBufferPointer<Float>, // (N)
        inp: UnsafeBufferPointer<Float>,         // (N, C)
        weight: UnsafeBufferPointer<Float>,      // (C)
        bias: UnsafeBufferPointer<Float>,        // (C)
        N: Int, C: Int, eps: Float
    ) {
        requireCount(out, N * C, "LayerNorm.forward out"); requireCount(inp, N * C, "LayerNorm.forward inp")
        requireCount(mean, N, "LayerNorm.forward mean"); requireCount(rstd, N, "LayerNorm.forward rstd")
        requireCount(weight, C, "LayerNorm.forward weight"); requireCount(bias, C, "LayerNorm.forward bias")
        let o = out.ptr, x = inp.ptr, w = weight.ptr, bi = bias.ptr, mp = mean.ptr, rp = rstd.ptr
        for n in 0..<N {
            let xn = x + n * C
            var m: Float = 0
            for i in 0..<C { m += xn[i] }
            m /= Float(C)
            var v: Float = 0
            for i in 0..<C { let d = xn[i] - m; v += d * d }
            v /= Float(C)
            let s = 1 / (v + eps).squareRoot()
            normalizeRow(o + n * C, xn, m, s, w, bi, C)
            mp[n] = m
            rp[n] = s
        }
    }

    /// out = (inp - mean) * rstd * weight + bias from the statistics `forward` saved: the same floats as its output,
    /// so backward can recompute a normalised input instead of keeping it.
    public static func recompute(
        out: UnsafeMutableBufferPointer<Float>, // (N, C)
        inp: UnsafeBufferPointer<Float>,        // (N, C)
        mean: UnsafeBufferPointer<Float>,       // (N)
        rstd: UnsafeBufferPointer<Float>,       // (N)
        weight: UnsafeBufferPointer<Float>,     // (C)
        bias: UnsafeBufferPointer<Float>,       // (C)
        N: Int, C: Int
    ) {
        requireCount(out, N * C, "LayerNorm.recompute out"); requireCount(inp, N * C, "LayerNorm.recompute inp")
        requireCount(mean, N, "LayerNorm.recompute mean"); requireCount(rstd, N, "LayerNorm.recompute rstd")
        requireCount(weight, C, "LayerNorm.recompute weight"); requireCount(bias, C, "LayerNorm.recompute bias")
        let o = out.ptr, x = inp.ptr, w = weight.ptr, bi = bias.ptr, mp = mean.ptr, rp = rstd.ptr
        for n in 0..<N { normalizeRow(o + n * C, x + n * C, mp[n], rp[n], w, bi, C) }
    }

    @inline(__always)
    private static func normalizeRow(_ on: UnsafeMutablePointer<Float>, _ xn: UnsafePointer<Float>, _ m: Float, _ s: Float,
                                     _ w: UnsafePointer<Float>, _ bi: UnsafePointer<Float>, _ C: Int) {
        for i in 0..<C { on[i] = (xn[i] - m) * s * w[i] + bi[i] }
    }

    /// Accumulates dinp, dweight and dbias (llm.c `layernorm_backward`). A nil dweight/dbias is a frozen
    /// parameter: its gradient is not computed.
    public static func backward(
        dinp: UnsafeMutableBufferPointer<Float>,    // (N, C)
        dweight: UnsafeMutableBufferPointer<Float>?, // (C)
        dbias: UnsafeMutableBufferPointer<Float>?,   // (C)
        dout: UnsafeBufferPointer<Float>,           // (N, C)
        inp: UnsafeBufferPointer<Float>,            // (N, C)
        weight: UnsafeBufferPointer<Float>,         // (C)
        mean: UnsafeBufferPointer<Float>,           // (N)
        rstd: UnsafeBufferPointer<Float>,           // (N)
        N: Int, C: Int
    ) {
        requireCount(dinp, N * C, "LayerNorm.backward dinp"); requireCount(dout, N * C, "LayerNorm.backward dout")
        requireCount(inp, N * C, "LayerNorm.backward inp"); requireCount(mean, N, "LayerNorm.backward mean")
        if let dweight { requireCount(dweight, C, "LayerNorm.backward dweight") }
        if let dbias { requireCount(dbias, C, "LayerNorm.backward dbias") }
        // A frozen weight or bias (nil) is skipped; the arithmetic of what is computed is the same either way.
        let di = dinp.ptr, dw = dweight?.baseAddress, db = dbias?.baseAddress, d = dout.ptr, x = inp.ptr, w = weight.ptr
        let mp = mean.ptr, rp = rstd.ptr
        for n in 0..<N {
            let dn = d + n * C, xn = x + n * C, din = di + n * C
            let m = mp[n], s = rp[n]
            var dnormMean: Float = 0, dnormNormMean: Float = 0
            for i in 0..<C {
                let norm = (xn[i] - m) * s
                let dnorm = w[i] * dn[i]
                dnormMean += dnorm
                dnormNormMean += dnorm * norm
            }
            dnormMean /= Float(C)
            dnormNormMean /= Float(C)
            for i in 0..<C {
                let norm = (xn[i] - m) * s
                let dnorm = w[i] * dn[i]
                if let db { db[i] += dn[i] }
                if let dw { dw[i] += norm * dn[i] }
                din[i] += (dnorm - dnormMean - norm * dnormNormMean) * s
            }
        }
    }
}
