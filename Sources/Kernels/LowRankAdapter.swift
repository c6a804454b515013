import CBLAS

/// A LoRA update beside a dense layer (PEFT's `lora.Linear`/`lora.Conv1D`): out += scale · (x·Aᵀ)·Bᵀ with
/// A (r, C) and B (OC, r), both `nn.Linear` layout. Dropout on x is the caller's (it passes the dropped x).
///
/// Every product here has the rank r as one dimension: each is a pass over memory, not arithmetic, and OpenBLAS
/// splitting such a pass over threads costs more in waking and joining them than it saves (measured on the
/// 124M benchmark: about 5 % of a LoRA step). They run on one thread.
public enum LowRankAdapter {
    /// h = x·Aᵀ (kept for backward); out += scale · h·Bᵀ.
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
        BLASThreads.withOneThreadPerCall(when: true) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(r), Int32(C),
                        1, inp.ptr, Int32(C), a.ptr, Int32(C), 0, h.ptr, Int32(r))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(r),
                        scale, h.ptr, Int32(r), b.ptr, Int32(r), 1, out.ptr, Int32(OC))
        }
    }

    /// Accumulates db += scale·doutᵀ·h, da += (scale·dout·B)ᵀ·x and dinp += (scale·dout·B)·A; `dh` (N, r) is scratch.
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
        BLASThreads.withOneThreadPerCall(when: true) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(r), Int32(N),
                        scale, dout.ptr, Int32(OC), h.ptr, Int32(r), 1, db.ptr, Int32(r))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(r), Int32(OC),
                        scale, dout.ptr, Int32(OC), b.ptr, Int32(r), 0, dh.ptr, Int32(r))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(C), Int32(N),
                        1, dh.ptr, Int32(r), inp.ptr, Int32(C), 1, da.ptr, Int32(C))
            if let dinp {
                requireCount(dinp, N * C, "LowRankAdapter.backward dinp")
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(r),
                            1, dh.ptr, Int32(r), a.ptr, Int32(C), 1, dinp.ptr, Int32(C))
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
