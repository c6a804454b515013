import CBLAS

/// Causal self-attention for incremental decoding: appends the new keys and values to a per-layer cache
/// and attends every new query to all cached positions up to its own. Forward only (inference).
///
/// The cache holds `maxT` positions per (batch row, head): keys and values are each (B, NH, maxT, hs).
/// Rows are normalised by `Attention`'s own row softmax, so cached and full decoding agree to rounding.
public enum CachedAttention {
    /// Scratch floats `forward` needs for `T` new positions after `position` cached ones: T·(position + T).
    public static func scratchCount(T: Int, position: Int) -> Int { T * (position + T) }

    /// Writes k, v of `qkv` into the cache at positions `position ..< position + T`, then
    /// out[b,t,h] = Σ_{t2 ≤ position+t} softmax_t2(scale · q[b,t,h]·k[b,t2,h]) · v[b,t2,h], where
    /// `keyMask[b, t2] == 0` hides cached position t2 of row b (left padding).
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>,     // (B, T, C)
        qkv: UnsafeBufferPointer<Float>,            // (B, T, 3C)
        keyCache: UnsafeMutableBufferPointer<Float>,   // (B, NH, maxT, hs)
        valueCache: UnsafeMutableBufferPointer<Float>, // (B, NH, maxT, hs)
        keyMask: UnsafeBufferPointer<Int32>? = nil,    // (B, maxT)
        scratch: UnsafeMutableBufferPointer<Float>, // (T, position + T)
        B: Int, T: Int, C: Int, NH: Int, maxT: Int, position: Int, scale: Float
    ) {
        precondition(C % NH == 0, "C \(C) not divisible by NH \(NH)")
        precondition(position >= 0 && position + T <= maxT, "positions \(position)..<\(position + T) exceed cache of \(maxT)")
        let hs = C / NH, C3 = 3 * C, len = position + T
        requireCount(out, B * T * C, "CachedAttention.forward out"); requireCount(qkv, B * T * C3, "CachedAttention.forward qkv")
        requireCount(keyCache, B * NH * maxT * hs, "CachedAttention.forward keyCache")
        requireCount(valueCache, B * NH * maxT * hs, "CachedAttention.forward valueCache")
        requireCount(scratch, scratchCount(T: T, position: position), "CachedAttention.forward scratch")
        if let keyMask { requireCount(keyMask, B * maxT, "CachedAttention.forward keyMask") }
        let q0 = qkv.ptr, o0 = out.ptr, kc = keyCache.ptr, vc = valueCache.ptr, s = scratch.ptr
        for b in 0..<B {
            let mask = keyMask.map { $0.ptr + b * maxT }
            for h in 0..<NH {
                let kh = kc + (b * NH + h) * maxT * hs, vh = vc + (b * NH + h) * maxT * hs
                let q = q0 + b * T * C3 + h * hs
                for t in 0..<T {
                    (kh + (position + t) * hs).update(from: q + t * C3 + C, count: hs)
                    (vh + (position + t) * hs).update(from: q + t * C3 + 2 * C, count: hs)
                }
                let oh = o0 + b * T * C + h * hs
                if T == 1 {
                    // s = scale · K·q   (len)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(len), Int32(hs), scale, kh, Int32(hs), q, 1, 0, s, 1)
                } else {
                    // s = scale · Q·Kᵀ   (T, len)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(len), Int32(hs),
                                scale, q, Int32(C3), kh, Int32(hs), 0, s, Int32(len))
                }
                for t in 0..<T {
                    _ = Attention.normalize(s + t * len, visible: position + t + 1, width: len, mask: mask)
                }
                if T == 1 {
                    // out_h = Vᵀ·p   (hs)
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(len), Int32(hs), 1, vh, Int32(hs), s, 1, 0, oh, 1)
                } else {
                    // out_h = P·V   (T, hs), row stride C
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(len),
                                1, s, Int32(len), vh, Int32(hs), 0, oh, Int32(C))
                }
            }
        }
    }
}
