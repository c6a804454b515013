import CBLAS

/// Dense layer out = inp·W (+ bias) through `cblas_sgemm`.
public enum MatMul {
    /// How the weight matrix is stored.
    public enum WeightLayout: Sendable {
        /// (C, OC), GPT-2's `Conv1D`: out = inp·W.
        case inputMajor
        /// (OC, C), `nn.Linear` and the tied lm_head (wte): out = inp·Wᵀ.
        case outputMajor
    }

    /// out = inp·W + bias (bias optional), overwriting `out`; with `accumulate`, out += inp·W instead (the caller
    /// wrote what it adds to, bias included: a LoRA update, say).
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>, // (N, OC)
        inp: UnsafeBufferPointer<Float>,        // (N, C)
        weight: UnsafeBufferPointer<Float>,     // (C, OC) or (OC, C)
        bias: UnsafeBufferPointer<Float>?,      // (OC)
        N: Int, C: Int, OC: Int, layout: WeightLayout = .inputMajor, accumulate: Bool = false
    ) {
        requireCount(out, N * OC, "MatMul.forward out"); requireCount(inp, N * C, "MatMul.forward inp")
        requireCount(weight, C * OC, "MatMul.forward weight")
        let o = out.ptr
        precondition(!accumulate || bias == nil, "MatMul.forward: accumulating onto out takes its bias from the caller")
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            requireCount(bias, OC, "MatMul.forward bias")
            let bp = bias.ptr
            for n in 0..<N { (o + n * OC).update(from: bp, count: OC) }
            beta = 1
        }
        switch layout {
        case .inputMajor:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(OC), Int32(C),
                        1, inp.ptr, Int32(C), weight.ptr, Int32(OC), beta, o, Int32(OC))
        case .outputMajor:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(C),
                        1, inp.ptr, Int32(C), weight.ptr, Int32(C), beta, o, Int32(OC))
        }
    }

    /// Accumulates dinp += dout·Wᵀ, dweight += inpᵀ·dout (in the weight's layout), dbias += Σ_rows dout.
    /// A nil buffer is not computed (a frozen weight or bias costs no product). With `accumulate` false, dinp is
    /// overwritten instead: its old contents are never read, so it needs no zeroing first.
    public static func backward(
        dinp: UnsafeMutableBufferPointer<Float>?,   // (N, C)
        dweight: UnsafeMutableBufferPointer<Float>?, // (C, OC) or (OC, C)
        dbias: UnsafeMutableBufferPointer<Float>?,  // (OC)
        dout: UnsafeBufferPointer<Float>,           // (N, OC)
        inp: UnsafeBufferPointer<Float>,            // (N, C)
        weight: UnsafeBufferPointer<Float>,         // (C, OC) or (OC, C)
        N: Int, C: Int, OC: Int, layout: WeightLayout = .inputMajor, accumulate: Bool = true
    ) {
        requireCount(dout, N * OC, "MatMul.backward dout"); requireCount(inp, N * C, "MatMul.backward inp")
        requireCount(weight, C * OC, "MatMul.backward weight")
        let d = dout.ptr, x = inp.ptr, w = weight.ptr
        if let dinp {
            requireCount(dinp, N * C, "MatMul.backward dinp")
            let beta: Float = accumulate ? 1 : 0
            switch layout {
            case .inputMajor: // (N,OC)·(C,OC)ᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(C), Int32(OC),
                            1, d, Int32(OC), w, Int32(OC), beta, dinp.ptr, Int32(C))
            case .outputMajor: // (N,OC)·(OC,C)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(OC),
                            1, d, Int32(OC), w, Int32(C), beta, dinp.ptr, Int32(C))
            }
        }
        if let dweight {
            requireCount(dweight, C * OC, "MatMul.backward dweight")
            switch layout {
            case .inputMajor: // (C,N)·(N,OC)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(OC), Int32(N),
                            1, x, Int32(C), d, Int32(OC), 1, dweight.ptr, Int32(OC))
            case .outputMajor: // (OC,N)·(N,C)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(N),
                            1, d, Int32(OC), x, Int32(C), 1, dweight.ptr, Int32(C))
            }
        }
        if let dbias {
            requireCount(dbias, OC, "MatMul.backward dbias")
            let db = dbias.ptr
            for n in 0..<N {
                let dn = d + n * OC
                for o in 0..<OC { db[o] += dn[o] }
            }
        }
    }
}
