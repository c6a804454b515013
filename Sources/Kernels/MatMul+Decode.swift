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
        if N > 1 && layout == .inputMajor && C % 4 == 0 && OC % 8 == 0 {
            if bias == nil { o.update(repeating: 0, count: N * OC) }
            rowAxpys(out: o, inp: x, weight: w, N: N, C: C, OC: OC)
            return
        }
        if N > 1 && layout == .outputMajor && C % 8 == 0 {
            rowDots(out: o, inp: x, weight: w, N: N, C: C, OC: OC, accumulate: bias != nil)
            return
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

    /// out[n, j] (+)= W[j, :]·x[n, :] for W (OC, C): reads every weight row once for all N ≤ 4 rows
    /// (N separate sgemv calls would stream the weight N times). Precondition: C % 8 == 0.
    static func rowDots(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        N: Int, C: Int, OC: Int, accumulate: Bool) {
        precondition(N >= 1 && N <= 4 && C % 8 == 0, "rowDots: N \(N), C \(C)")
        let x = UnsafeRawPointer(inp), w = UnsafeRawPointer(weight)
        @inline(__always) func load(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> { p.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) }
        for j in 0..<OC {
            let row = w + j * C * 4
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var i = 0
            while i < C {
                let wv = load(row, i)
                a0 += wv * load(x, i)
                if N > 1 { a1 += wv * load(x, C + i) }
                if N > 2 { a2 += wv * load(x, 2 * C + i) }
                if N > 3 { a3 += wv * load(x, 3 * C + i) }
                i += 8
            }
            let sums = SIMD4<Float>(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
            for n in 0..<N {
                if accumulate { out[n * OC + j] += sums[n] } else { out[n * OC + j] = sums[n] }
            }
        }
    }

    @inline(__always)
    static func horizontalSum(_ v: SIMD8<Float>) -> Float {
        let h = v.lowHalf + v.highHalf
        return (h[0] + h[2]) + (h[1] + h[3])
    }

    /// out[n, :] += Σ_c x[n, c]·W[c, :] for W (C, OC): streams the weight once, four rows at a time, for
    /// all N ≤ 4 rows; the N output rows stay in cache. Precondition: C % 4 == 0, OC % 8 == 0.
    static func rowAxpys(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         N: Int, C: Int, OC: Int) {
        precondition(N >= 1 && N <= 4 && C % 4 == 0 && OC % 8 == 0, "rowAxpys: N \(N), C \(C), OC \(OC)")
        let w = UnsafeRawPointer(weight), o = UnsafeMutableRawPointer(out)
        var c = 0
        while c < C {
            let r0 = w + c * OC * 4, r1 = r0 + OC * 4, r2 = r1 + OC * 4, r3 = r2 + OC * 4
            for n in 0..<N {
                let xn = inp + n * C + c
                let x0 = SIMD8<Float>(repeating: xn[0]), x1 = SIMD8<Float>(repeating: xn[1])
                let x2 = SIMD8<Float>(repeating: xn[2]), x3 = SIMD8<Float>(repeating: xn[3])
                let on = o + n * OC * 4
                var j = 0
                while j < OC * 4 {
                    var acc = on.loadUnaligned(fromByteOffset: j, as: SIMD8<Float>.self)
                    acc += x0 * r0.loadUnaligned(fromByteOffset: j, as: SIMD8<Float>.self)
                    acc += x1 * r1.loadUnaligned(fromByteOffset: j, as: SIMD8<Float>.self)
                    acc += x2 * r2.loadUnaligned(fromByteOffset: j, as: SIMD8<Float>.self)
                    acc += x3 * r3.loadUnaligned(fromByteOffset: j, as: SIMD8<Float>.self)
                    on.storeBytes(of: acc, toByteOffset: j, as: SIMD8<Float>.self)
                    j += 32
                }
            }
            c += 4
        }
    }
}
