/// Residual connection out = a + b.
public enum Residual {
    /// out = a + b (out may alias a or b).
    public static func forward(out: UnsafeMutableBufferPointer<Float>, a: UnsafeBufferPointer<Float>,
                               b: UnsafeBufferPointer<Float>, N: Int) { // all (N)
        requireCount(out, N, "Residual.forward out"); requireCount(a, N, "Residual.forward a"); requireCount(b, N, "Residual.forward b")
        let o = out.ptr, x = a.ptr, y = b.ptr
        for i in 0..<N { o[i] = x[i] + y[i] }
    }

    /// da += dout; db += dout.
    public static func backward(da: UnsafeMutableBufferPointer<Float>, db: UnsafeMutableBufferPointer<Float>,
                                dout: UnsafeBufferPointer<Float>, N: Int) { // all (N)
        requireCount(da, N, "Residual.backward da"); requireCount(db, N, "Residual.backward db"); requireCount(dout, N, "Residual.backward dout")
        let x = da.ptr, y = db.ptr, d = dout.ptr
        for i in 0..<N { x[i] += d[i]; y[i] += d[i] }
    }
}
