import CBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Causal multi-head self-attention on a packed q|k|v buffer, with an optional key padding mask and
/// attention-probability dropout. Scores per (b, h) come from one sgemm each.
public enum Attention {
    /// The score given to a key hidden by the padding mask: the dtype's minimum, as transformers does.
    public static let maskedScore: Float = -Float.greatestFiniteMagnitude

    /// Scratch floats `forward`/`backward` need: 2·T·T.
    public static func scratchCount(T: Int) -> Int { 2 * T * T }

    /// out[b,t,h] = Σ_{t2≤t} softmax_t2(scale · q[b,t,h]·k[b,t2,h]) · v[b,t2,h]; saves the probabilities
    /// (before dropout) in `att`. `keyMask[b,t2] == 0` hides key t2 of batch row b.
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>,     // (B, T, C)
        att: UnsafeMutableBufferPointer<Float>,     // (B, NH, T, T)
        qkv: UnsafeBufferPointer<Float>,            // (B, T, 3C)
        keyMask: UnsafeBufferPointer<Int32>?,       // (B, T)
        scratch: UnsafeMutableBufferPointer<Float>, // (2, T, T)
        B: Int, T: Int, C: Int, NH: Int, scale: Float,
        dropout: Float = 0, dropoutSeed: UInt64 = 0
    ) {
        precondition(C % NH == 0, "C \(C) not divisible by NH \(NH)")
        requireCount(out, B * T * C, "Attention.forward out"); requireCount(att, B * NH * T * T, "Attention.forward att")
        requireCount(qkv, B * T * 3 * C, "Attention.forward qkv"); requireCount(scratch, scratchCount(T: T), "Attention.forward scratch")
        if let keyMask { requireCount(keyMask, B * T, "Attention.forward keyMask") }
        let hs = C / NH, C3 = 3 * C
        let q0 = qkv.ptr, a0 = att.ptr, o0 = out.ptr, dropped = scratch.ptr
        let dropScale = 1 / (1 - dropout)
        for b in 0..<B {
            let mask = keyMask.map { $0.ptr + b * T }
            for h in 0..<NH {
                let q = q0 + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
                let a = a0 + (b * NH + h) * T * T
                // a = scale · Q·Kᵀ   (T, T)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                            scale, q, Int32(C3), k, Int32(C3), 0, a, Int32(T))
                for t in 0..<T {
                    let row = a + t * T
                    var maxv = -Float.infinity
                    for t2 in 0...t {
                        if let mask, mask[t2] == 0 { row[t2] = maskedScore }
                        maxv = max(maxv, row[t2])
                    }
                    var sum: Float = 0
                    for t2 in 0...t {
                        let e = expf(row[t2] - maxv)
                        row[t2] = e
                        sum += e
                    }
                    let inv = 1 / sum
                    for t2 in 0...t { row[t2] *= inv }
                    for t2 in (t + 1)..<T { row[t2] = 0 }
                }
                var probs = UnsafePointer(a)
                if dropout > 0 {
                    let seed = Dropout.siteSeed(dropoutSeed, site: b * NH + h)
                    for i in 0..<(T * T) { dropped[i] = Dropout.keeps(seed: seed, index: i, p: dropout) ? a[i] * dropScale : 0 }
                    probs = UnsafePointer(dropped)
                }
                // out_h = probs·V   (T, hs), row stride C
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            1, probs, Int32(T), v, Int32(C3), 0, o0 + b * T * C + h * hs, Int32(C))
            }
        }
    }

    /// Accumulates dqkv from dout, given the forward's `att` and the same mask, scale and dropout.
    public static func backward(
        dqkv: UnsafeMutableBufferPointer<Float>,    // (B, T, 3C)
        dout: UnsafeBufferPointer<Float>,           // (B, T, C)
        qkv: UnsafeBufferPointer<Float>,            // (B, T, 3C)
        att: UnsafeBufferPointer<Float>,            // (B, NH, T, T)
        keyMask: UnsafeBufferPointer<Int32>?,       // (B, T)
        scratch: UnsafeMutableBufferPointer<Float>, // (2, T, T)
        B: Int, T: Int, C: Int, NH: Int, scale: Float,
        dropout: Float = 0, dropoutSeed: UInt64 = 0
    ) {
        requireCount(dqkv, B * T * 3 * C, "Attention.backward dqkv"); requireCount(dout, B * T * C, "Attention.backward dout")
        requireCount(qkv, B * T * 3 * C, "Attention.backward qkv"); requireCount(att, B * NH * T * T, "Attention.backward att")
        requireCount(scratch, scratchCount(T: T), "Attention.backward scratch")
        if let keyMask { requireCount(keyMask, B * T, "Attention.backward keyMask") }
        let hs = C / NH, C3 = 3 * C
        let q0 = qkv.ptr, dq0 = dqkv.ptr, a0 = att.ptr, d0 = dout.ptr
        let dropped = scratch.ptr, da = scratch.ptr + T * T
        let dropScale = 1 / (1 - dropout)
        for b in 0..<B {
            let mask = keyMask.map { $0.ptr + b * T }
            for h in 0..<NH {
                let q = q0 + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
                let dq = dq0 + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
                let a = a0 + (b * NH + h) * T * T
                let dh = d0 + b * T * C + h * hs
                let seed = Dropout.siteSeed(dropoutSeed, site: b * NH + h)
                var probs = a
                if dropout > 0 {
                    for i in 0..<(T * T) { dropped[i] = Dropout.keeps(seed: seed, index: i, p: dropout) ? a[i] * dropScale : 0 }
                    probs = UnsafePointer(dropped)
                }
                // dV += probsᵀ·dout_h   (T, hs)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            1, probs, Int32(T), dh, Int32(C), 1, dv, Int32(C3))
                // dA = dout_h·Vᵀ   (T, T)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                            1, dh, Int32(C), v, Int32(C3), 0, da, Int32(T))
                if dropout > 0 {
                    for i in 0..<(T * T) { da[i] = Dropout.keeps(seed: seed, index: i, p: dropout) ? da[i] * dropScale : 0 }
                }
                // softmax backward in place: dS = A ⊙ (dA − Σ A·dA); zero above the diagonal and on masked keys
                for t in 0..<T {
                    let arow = a + t * T, drow = da + t * T
                    var dot: Float = 0
                    for t2 in 0...t { dot += arow[t2] * drow[t2] }
                    for t2 in 0...t { drow[t2] = arow[t2] * (drow[t2] - dot) }
                    if let mask { for t2 in 0...t where mask[t2] == 0 { drow[t2] = 0 } }
                    for t2 in (t + 1)..<T { drow[t2] = 0 }
                }
                // dQ += scale·dS·K ; dK += scale·dSᵀ·Q   (T, hs)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, da, Int32(T), k, Int32(C3), 1, dq, Int32(C3))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, da, Int32(T), q, Int32(C3), 1, dk, Int32(C3))
            }
        }
    }
}
