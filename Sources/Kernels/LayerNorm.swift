import CKernels

/// Layer normalisation over the last dimension (biased variance, as `torch.nn.LayerNorm`). Rows are split over the
/// cores; each row runs in C (`CKernels`: AVX2 + FMA where the CPU has them).
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
        forEachRowChunk(N: N, C: C) { _, rows in
            let lo = rows.lowerBound
            gpt2kit_layernorm_forward(o + lo * C, mp + lo, rp + lo, x + lo * C, w, bi, rows.count, C, eps)
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
        forEachRowChunk(N: N, C: C) { _, rows in
            let lo = rows.lowerBound
            gpt2kit_layernorm_normalize(o + lo * C, x + lo * C, mp + lo, rp + lo, w, bi, rows.count, C)
        }
    }

    /// Rows of C floats from which the work is split over the cores (fewer, as in decoding, stay on one thread).
    private static func parallelRows(C: Int) -> Int { max(2, (1 << 14) / max(C, 1)) }

    /// Splits N rows of C floats into fixed chunks over the cores.
    private static func forEachRowChunk(N: Int, C: Int, _ body: (Int, Range<Int>) -> Void) {
        Parallel.forEachChunk(count: N, minimumCount: parallelRows(C: C), alignment: 1, body)
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
        // A frozen weight or bias (nil) is skipped. Each chunk of rows sums its share of dweight/dbias apart; the
        // shares are then added in chunk order, so the result does not depend on scheduling.
        let di = dinp.ptr, dw = dweight?.baseAddress, db = dbias?.baseAddress, d = dout.ptr, x = inp.ptr, w = weight.ptr
        let mp = mean.ptr, rp = rstd.ptr
        let chunks = N >= parallelRows(C: C) ? min(Parallel.workers, N) : 1
        if chunks == 1 || (dw == nil && db == nil) {
            forEachRowChunk(N: N, C: C) { _, rows in
                let lo = rows.lowerBound
                gpt2kit_layernorm_backward(di + lo * C, dw, db, d + lo * C, x + lo * C, w, mp + lo, rp + lo, rows.count, C)
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunks * 2 * C) { shares in
            guard let s = shares.baseAddress else { return }
            s.initialize(repeating: 0, count: chunks * 2 * C)
            Parallel.forEachChunk(count: N, minimumCount: 2, chunks: chunks, alignment: 1) { c, rows in
                let lo = rows.lowerBound, share = s + c * 2 * C
                gpt2kit_layernorm_backward(di + lo * C, dw == nil ? nil : share, db == nil ? nil : share + C,
                                           d + lo * C, x + lo * C, w, mp + lo, rp + lo, rows.count, C)
            }
            for c in 0..<chunks {
                let share = s + c * 2 * C
                if let dw { for i in 0..<C { dw[i] += share[i] } }
                if let db { for i in 0..<C { db[i] += share[C + i] } }
            }
        }
    }
}
