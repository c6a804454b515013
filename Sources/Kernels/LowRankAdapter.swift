import CBLAS

/// A LoRA update beside a dense layer (PEFT's `lora.Linear`/`lora.Conv1D`): out += scale · (x·Aᵀ)·Bᵀ with
/// A (r, C) and B (OC, r), both `nn.Linear` layout. Dropout on x is the caller's (it passes the dropped x).
///
/// Every product here has the rank r as one dimension, too thin for OpenBLAS's own threading to pay (waking and
/// joining its threads cost more than they saved); each is split over the cores here instead, one single-threaded
/// sgemm per core on its own rows or columns.
public enum LowRankAdapter {
    /// Rows below which a product stays on the calling thread (decoding's few rows).
    static let parallelRows = 64

    /// h = x·Aᵀ (kept for backward); out += scale · h·Bᵀ. Rows are split over the cores.
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>, // (N, OC)
        h: UnsafeMutableBufferPointer<Float>,   // (N, r)
        inp: UnsafeBufferPointer<Float>,        // (N, C)
        a: UnsafeBufferPointer<Float>,          // (r, C)
        b: UnsafeBufferPointer<Float>,          // (OC, r)
        N: Int, C: Int, OC: Int, r: Int, scale: Float
    ) {
        requireCount(out, N * OC, "LowRankAdapter.forward out"); requireCount(h, N * r, "LowRankAdapter.forward h")
        requireCount(inp, N * C, "LowRankAdapter.forward inp"); requireCount(a, r * C, "LowRankAdapter.forward a")
        requireCount(b, OC * r, "LowRankAdapter.forward b")
        let o = out.ptr, hp = h.ptr, x = inp.ptr, ap = a.ptr, bp = b.ptr
        BLASThreads.withOneThreadPerCall(when: true) {
            Parallel.forEachChunk(count: N, minimumCount: parallelRows, alignment: 1) { _, rows in
                let n = Int32(rows.count), lo = rows.lowerBound
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Int32(r), Int32(C),
                            1, x + lo * C, Int32(C), ap, Int32(C), 0, hp + lo * r, Int32(r))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Int32(OC), Int32(r),
                            scale, hp + lo * r, Int32(r), bp, Int32(r), 1, o + lo * OC, Int32(OC))
            }
        }
    }

    /// Accumulates db += scale·doutᵀ·h, da += (scale·dout·B)ᵀ·x and dinp += (scale·dout·B)·A; `dh` (N, r) is scratch.
    /// The row-wise products are split over the cores by rows, then db and da by their columns (no partial sums, so
    /// the split does not change a result).
    public static func backward(
        dinp: UnsafeMutableBufferPointer<Float>?, // (N, C)
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
        BLASThreads.withOneThreadPerCall(when: true) {
            Parallel.forEachChunk(count: N, minimumCount: parallelRows, alignment: 1) { _, rows in
                let n = Int32(rows.count), lo = rows.lowerBound
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Int32(r), Int32(OC),
                            scale, d + lo * OC, Int32(OC), bp, Int32(r), 0, dhp + lo * r, Int32(r))
                if let di {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Int32(C), Int32(r),
                                1, dhp + lo * r, Int32(r), ap, Int32(C), 1, di + lo * C, Int32(C))
                }
            }
            let parts = N >= parallelRows ? Parallel.workers : 1
            Parallel.forEachChunk(count: parts, minimumCount: 2, alignment: 1) { part, _ in
                let o0 = OC * part / parts, o1 = OC * (part + 1) / parts
                let c0 = C * part / parts, c1 = C * (part + 1) / parts
                if o1 > o0 {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(o1 - o0), Int32(r), Int32(N),
                                scale, d + o0, Int32(OC), hp, Int32(r), 1, dbp + o0 * r, Int32(r))
                }
                if c1 > c0 {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(c1 - c0), Int32(N),
                                1, dhp, Int32(r), x + c0, Int32(C), 1, dap + c0, Int32(C))
                }
            }
        }
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
