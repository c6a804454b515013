import CKernels

/// Inverted dropout with a counter-based mask: element `i` of a site seeded `seed` is kept when
/// `hash(seed, i) ≥ p·2²⁴`, so forward and backward regenerate the same mask without storing it. The loops are C
/// (`CKernels`, the same hash), split over the cores.
public enum Dropout {
    /// Whether element `index` survives at drop probability `p` under `seed`.
    @inline(__always)
    public static func keeps(seed: UInt64, index: Int, p: Float) -> Bool {
        bits(seed: seed, index: index) >= threshold(p)
    }

    /// The 24-bit hash value at and above which an element survives drop probability `p`.
    @inline(__always)
    static func threshold(_ p: Float) -> UInt32 { UInt32(min(max(p, 0), 1) * 16_777_216) }

    /// The 24 random bits of element `index` (splitmix64's finalizer; the one implementation is `CKernels`').
    @inline(__always)
    static func bits(seed: UInt64, index: Int) -> UInt32 { gpt2kit_dropout_bits(seed, index) }

    /// Mixes a base seed with a site number (layer, position in the layer) into a site seed.
    public static func siteSeed(_ seed: UInt64, site: Int) -> UInt64 {
        var z = seed ^ (UInt64(truncatingIfNeeded: site) &* 0xD6E8_FEB8_6659_FD93)
        z = (z ^ (z >> 32)) &* 0xD6E8_FEB8_6659_FD93
        return z ^ (z >> 32)
    }

    /// out = inp · keep / (1 − p) in place-friendly form (out may alias inp). No-op copy when p == 0.
    public static func forward(out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, // (N), (N)
                               N: Int, p: Float, seed: UInt64) {
        requireCount(out, N, "Dropout.forward out"); requireCount(inp, N, "Dropout.forward inp")
        precondition(p >= 0 && p < 1, "dropout probability \(p) outside [0, 1)")
        let o = out.ptr, x = inp.ptr
        if p == 0 {
            if UnsafePointer(o) != x { o.update(from: x, count: N) }
            return
        }
        let scale = 1 / (1 - p), t = threshold(p)
        Parallel.forEachChunk(count: N) { _, range in
            let lo = range.lowerBound
            gpt2kit_dropout_forward(o + lo, x + lo, range.count, seed, lo, t, scale)
        }
    }

    /// dinp += dout · keep / (1 − p).
    public static func backward(dinp: UnsafeMutableBufferPointer<Float>, dout: UnsafeBufferPointer<Float>, // (N), (N)
                                N: Int, p: Float, seed: UInt64) {
        requireCount(dinp, N, "Dropout.backward dinp"); requireCount(dout, N, "Dropout.backward dout")
        let di = dinp.ptr, d = dout.ptr
        if p == 0 {
            for i in 0..<N { di[i] += d[i] }
            return
        }
        let scale = 1 / (1 - p), t = threshold(p)
        Parallel.forEachChunk(count: N) { _, range in
            let lo = range.lowerBound
            gpt2kit_dropout_backward(di + lo, d + lo, range.count, seed, lo, t, scale)
        }
    }
}
