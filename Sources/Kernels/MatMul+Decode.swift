import CBLAS

extension MatMul {
    /// Rows up to which `forwardFewRows` uses one `sgemv` per row instead of `sgemm`.
    public static let gemvRowLimit = 4

    /// out = inp·W + bias like `forward`, tuned for the few rows of a decode step: up to `gemvRowLimit`
    /// rows go through `cblas_sgemv`, which streams the weight once per row. OpenBLAS before 0.3.27 runs
    /// a one-row `sgemm` through its packing path, copying the whole weight matrix on every call.
    public static func forwardFewRows(
        out: UnsafeMutableBufferPointer<Float>, // (N, OC)
        inp: UnsafeBufferPointer<Float>,        // (N, C)
        weight: UnsafeBufferPointer<Float>,     // (C, OC) or (OC, C)
        bias: UnsafeBufferPointer<Float>?,      // (OC)
        N: Int, C: Int, OC: Int, layout: WeightLayout = .inputMajor
    ) {
        guard N <= gemvRowLimit else {
            forward(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC, layout: layout)
            return
        }
        requireCount(out, N * OC, "MatMul.forwardFewRows out"); requireCount(inp, N * C, "MatMul.forwardFewRows inp")
        requireCount(weight, C * OC, "MatMul.forwardFewRows weight")
        let o = out.ptr, x = inp.ptr, w = weight.ptr
        var beta: Float = 0
        if let bias {
            requireCount(bias, OC, "MatMul.forwardFewRows bias")
            for n in 0..<N { (o + n * OC).update(from: bias.ptr, count: OC) }
            beta = 1
        }
        for n in 0..<N {
            switch layout {
            case .inputMajor: // out_n = Wᵀ·x_n, W (C, OC)
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(C), Int32(OC), 1, w, Int32(OC), x + n * C, 1, beta, o + n * OC, 1)
            case .outputMajor: // out_n = W·x_n, W (OC, C)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(OC), Int32(C), 1, w, Int32(C), x + n * C, 1, beta, o + n * OC, 1)
            }
        }
    }
}
