import CDecode

extension MatMul {
    /// Rows up to which `forwardFewRows` uses the decode kernels instead of `sgemm`.
    public static let gemvRowLimit = 8

    /// out = inp·W + bias like `forward`, tuned for the few rows of a decode step: up to `gemvRowLimit` rows are
    /// split over this thread and spinning helper threads (`gpt2kit_rows_parallel`; a decode step is dozens of
    /// such products, too short to wake threads for each), every weight read once for all rows: the tied lm head
    /// (W (OC, C)) a block of output rows per thread, Conv1D weights (W (C, OC)) a block of input rows per thread
    /// (each streams one contiguous part of W into its own partial sums, added at the end). (OpenBLAS before
    /// 0.3.27 runs a one-row `sgemm` through its packing path, copying the whole weight matrix on every call.)
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
        if let bias {
            requireCount(bias, OC, "MatMul.forwardFewRows bias")
            for n in 0..<N { (o + n * OC).update(from: bias.ptr, count: OC) }
        }
        let accumulate: Int32 = bias == nil ? 0 : 1
        switch layout {
        case .outputMajor:
            gpt2kit_rows_parallel(2, w, x, o, C, OC, N, OC, accumulate)
        case .inputMajor:
            gpt2kit_rows_parallel(3, w, x, o, C, OC, N, OC, accumulate)
        }
    }
}
