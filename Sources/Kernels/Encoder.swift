/// Token + position embedding (GPT-2's `wte(input_ids) + wpe(position_ids)`).
public enum Encoder {
    /// out[b,t,:] = wte[tokens[b,t],:] + wpe[p,:] with p = positions[b,t] when given (left-padded rows, as
    /// transformers' position ids), else positionOffset + t.
    /// Precondition: every token is in `0..<V` and every position below maxT (the model validates ids first).
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>, // (B, T, C)
        tokens: UnsafeBufferPointer<Int32>,     // (B, T)
        wte: UnsafeBufferPointer<Float>,        // (V, C)
        wpe: UnsafeBufferPointer<Float>,        // (maxT, C)
        B: Int, T: Int, C: Int, positionOffset: Int = 0, positions: UnsafeBufferPointer<Int32>? = nil
    ) {
        let V = wte.count / C, maxT = wpe.count / C
        requireCount(out, B * T * C, "Encoder.forward out"); requireCount(tokens, B * T, "Encoder.forward tokens")
        if let positions { requireCount(positions, B * T, "Encoder.forward positions") } else {
            precondition(positionOffset + T <= maxT, "positions \(positionOffset)..<\(positionOffset + T) exceed wpe rows \(maxT)")
        }
        let o = out.ptr, te = wte.ptr, pe = wpe.ptr, ids = tokens.ptr, pos = positions?.ptr
        for b in 0..<B {
            for t in 0..<T {
                let ix = Int(ids[b * T + t])
                precondition(ix >= 0 && ix < V, "token \(ix) outside vocabulary of \(V)")
                let p = pos.map { Int($0[b * T + t]) } ?? positionOffset + t
                precondition(p >= 0 && p < maxT, "position \(p) outside wpe rows \(maxT)")
                let outBT = o + (b * T + t) * C
                let wteIx = te + ix * C
                let wpeT = pe + p * C
                for i in 0..<C { outBT[i] = wteIx[i] + wpeT[i] }
            }
        }
    }

    /// dwte[tokens[b,t]] += dout[b,t]; dwpe[positionOffset + t] += dout[b,t]. A nil table is frozen.
    public static func backward(
        dwte: UnsafeMutableBufferPointer<Float>?, // (V, C)
        dwpe: UnsafeMutableBufferPointer<Float>?, // (maxT, C)
        dout: UnsafeBufferPointer<Float>,        // (B, T, C)
        tokens: UnsafeBufferPointer<Int32>,      // (B, T)
        B: Int, T: Int, C: Int, positionOffset: Int = 0
    ) {
        requireCount(dout, B * T * C, "Encoder.backward dout")
        if let dwpe { requireCount(dwpe, (positionOffset + T) * C, "Encoder.backward dwpe") }
        let V = (dwte?.count ?? 0) / C
        let dte = dwte?.baseAddress, dpe = dwpe?.baseAddress, d = dout.ptr, ids = tokens.ptr
        for b in 0..<B {
            for t in 0..<T {
                let doutBT = d + (b * T + t) * C
                if let dte {
                    let ix = Int(ids[b * T + t])
                    precondition(ix >= 0 && ix < V, "token \(ix) outside vocabulary of \(V)")
                    let dwteIx = dte + ix * C
                    for i in 0..<C { dwteIx[i] += doutBT[i] }
                }
                if let dpe {
                    let dwpeT = dpe + (positionOffset + t) * C
                    for i in 0..<C { dwpeT[i] += doutBT[i] }
                }
            }
        }
    }
}
