import CBLAS
import CKernels

/// A LoRA update beside a dense layer (PEFT's `lora.Linear`/`lora.Conv1D`): out += scale · (x·Aᵀ)·Bᵀ with
/// A (r, C) and B (OC, r), both `nn.Linear` layout. Dropout on x is the caller's (it passes the dropped x).
///
/// Every product here has the rank r as one dimension: too thin for `sgemm` (it packs the wide operand, a copy as
/// large as the work, and its threading costs more than it saves), so they run in `CKernels`, split over the cores
/// by rows or columns: h = x·Aᵀ row by row; the expansion h·Bᵀ writes the layer's output once, bias included, so the
/// base product accumulates onto it instead of the update being a second pass; backward reads dout once for both
/// dh and dB, then writes dinp's share and dA.
public enum LowRankAdapter {
    /// Rows below which a product stays on the calling thread (decoding's few rows).
    static let parallelRows = 64

    /// What the update does with the output it writes.
    public enum Output {
        /// out += the update (the base product was written first).
        case accumulate
        /// out = bias + the update (nil bias: 0); the base product then accumulates onto it.
        case initialize(bias: UnsafeBufferPointer<Float>?)
    }

    /// h = x·Aᵀ (kept for backward); out += scale · h·Bᵀ, or out = bias + scale · h·Bᵀ (`output`). Rows are split
    /// over the cores.
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>, // (N, OC)
        h: UnsafeMutableBufferPointer<Float>,   // (N, r)
        inp: UnsafeBufferPointer<Float>,        // (N, C)
        a: UnsafeBufferPointer<Float>,          // (r, C)
        b: UnsafeBufferPointer<Float>,          // (OC, r)
        N: Int, C: Int, OC: Int, r: Int, scale: Float, output: Output = .accumulate
    ) {
        requireCount(out, N * OC, "LowRankAdapter.forward out"); requireCount(h, N * r, "LowRankAdapter.forward h")
        requireCount(inp, N * C, "LowRankAdapter.forward inp"); requireCount(a, r * C, "LowRankAdapter.forward a")
        requireCount(b, OC * r, "LowRankAdapter.forward b")
        var bias: UnsafePointer<Float>?
        var accumulate: Int32 = 1
        if case .initialize(let initial) = output {
            accumulate = 0
            if let initial { requireCount(initial, OC, "LowRankAdapter.forward bias"); bias = initial.ptr }
        }
        let bt = transposed(b, rows: OC, columns: r)
        defer { bt.deallocate() }
        let o = out.ptr, hp = h.ptr, x = inp.ptr, ap = a.ptr, btp = UnsafePointer(bt.ptr)
        Parallel.forEachChunk(count: N, minimumCount: parallelRows, alignment: 1) { _, rows in
            let lo = rows.lowerBound
            gpt2kit_low_rank_project(hp + lo * r, x + lo * C, ap, rows.count, C, r)
            gpt2kit_low_rank_expand(o + lo * OC, bias, hp + lo * r, btp, rows.count, OC, r, scale, accumulate)
        }
    }

    /// Accumulates db += scale·doutᵀ·h and da += (scale·dout·B)ᵀ·x, and adds dinp += (scale·dout·B)·A, or writes
    /// dinp = (scale·dout·B)·A when `initializeDinp` (the base product's input gradient then accumulates onto it);
    /// `dh` (N, r) receives scale·dout·B. dh and db come from one pass over dout, split over the cores by dout's
    /// columns (each core's dh summed in a fixed order); then dinp by rows and da by columns (no partial sums).
    public static func backward(
        dinp: UnsafeMutableBufferPointer<Float>?, // (N, C)
        initializeDinp: Bool = false,
        da: UnsafeMutableBufferPointer<Float>,    // (r, C)
        db: UnsafeMutableBufferPointer<Float>,    // (OC, r)
        dh: UnsafeMutableBufferPointer<Float>,    // (N, r)
        dout: UnsafeBufferPointer<Float>,         // (N, OC)
        inp: UnsafeBufferPointer<Float>,          // (N, C)
        h: UnsafeBufferPointer<Float>,            // (N, r)
        a: UnsafeBufferPointer<Float>,            // (r, C)
        b: UnsafeBufferPointer<Float>,            // (OC, r)
        N: Int, C: Int, OC: Int, r: Int, scale: Float
    ) {
        requireCount(da, r * C, "LowRankAdapter.backward da"); requireCount(db, OC * r, "LowRankAdapter.backward db")
        requireCount(dh, N * r, "LowRankAdapter.backward dh"); requireCount(dout, N * OC, "LowRankAdapter.backward dout")
        requireCount(inp, N * C, "LowRankAdapter.backward inp"); requireCount(h, N * r, "LowRankAdapter.backward h")
        if let dinp { requireCount(dinp, N * C, "LowRankAdapter.backward dinp") }
        let d = dout.ptr, x = inp.ptr, hp = h.ptr, dhp = dh.ptr, ap = a.ptr, bp = b.ptr, dap = da.ptr, dbp = db.ptr
        let di = dinp?.baseAddress
        let parts = N >= parallelRows ? Parallel.workers : 1
        // Part 0 sums into dh itself, the others into their own share.
        let shares = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, (parts - 1) * N * r))
        defer { shares.deallocate() }
        dh.update(repeating: 0)
        let sharesPtr = shares.ptr
        Parallel.forEachChunk(count: parts, minimumCount: 2, alignment: 1) { part, _ in
            let target = part == 0 ? dhp : sharesPtr + (part - 1) * N * r
            if part > 0 { target.update(repeating: 0, count: N * r) }
            gpt2kit_low_rank_backward_columns(target, dbp, d, OC, bp, hp, N, OC * part / parts, OC * (part + 1) / parts, r, scale)
        }
        for i in 0 ..< N * r {
            var sum = dhp[i]
            for part in 1 ..< parts { sum += sharesPtr[(part - 1) * N * r + i] }
            dhp[i] = scale * sum
        }
        Parallel.forEachChunk(count: parts, minimumCount: 2, alignment: 1) { part, _ in
            let n0 = N * part / parts, n1 = N * (part + 1) / parts
            if let di, n1 > n0 {
                gpt2kit_low_rank_expand(di + n0 * C, nil, dhp + n0 * r, ap, n1 - n0, C, r, 1, initializeDinp ? 0 : 1)
            }
            // Column bands of whole 8-float groups (the vector code's unit); each column sums its rows in order either way.
            let bands = (C + 7) / 8
            let c0 = min(C, 8 * (bands * part / parts)), c1 = min(C, 8 * (bands * (part + 1) / parts))
            if c1 > c0 { gpt2kit_low_rank_gradient_a(dap, dhp, x, N, C, c0, c1, r) }
        }
    }

    /// B (rows, columns) transposed into a new buffer the caller deallocates.
    private static func transposed(_ b: UnsafeBufferPointer<Float>, rows: Int, columns: Int) -> UnsafeMutableBufferPointer<Float> {
        let t = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, rows * columns))
        let src = b.ptr, dst = t.ptr
        for i in 0..<rows {
            for k in 0..<columns { dst[k * rows + i] = src[i * columns + k] }
        }
        return t
    }

    /// Merges the update into a Conv1D weight W (C, OC): W += scale · (B·A)ᵀ (PEFT's `merge_and_unload`).
    public static func merge(
        weight: UnsafeMutableBufferPointer<Float>, // (C, OC)
        a: UnsafeBufferPointer<Float>,             // (r, C)
        b: UnsafeBufferPointer<Float>,             // (OC, r)
        C: Int, OC: Int, r: Int, scale: Float
    ) {
        requireCount(weight, C * OC, "LowRankAdapter.merge weight"); requireCount(a, r * C, "LowRankAdapter.merge a")
        requireCount(b, OC * r, "LowRankAdapter.merge b")
        // (B·A)ᵀ = Aᵀ·Bᵀ: (C, r)·(r, OC)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, Int32(C), Int32(OC), Int32(r),
                    scale, a.ptr, Int32(C), b.ptr, Int32(r), 1, weight.ptr, Int32(OC))
    }
}
