#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax cross-entropy over the vocabulary for each position, ignoring targets equal to `ignoreIndex`.
/// Rows are independent, so they are split over both cores; each row's sum is vectorised with a fixed
/// lane order (Float lanes over 1024-float runs, runs added in Double), so results are deterministic.
public enum CrossEntropy {
    /// The target value that contributes nothing (PyTorch's `ignore_index`).
    public static let ignoreIndex: Int32 = -100

    /// Writes each row's log-sum-exp and loss (0 for ignored rows); returns the sum of losses (Double)
    /// and how many rows counted. Precondition: targets are `ignoreIndex` or in `0..<V`.
    @discardableResult
    public static func forward(
        losses: UnsafeMutableBufferPointer<Float>,    // (N)
        logsumexp: UnsafeMutableBufferPointer<Float>, // (N)
        logits: UnsafeBufferPointer<Float>,           // (N, V)
        targets: UnsafeBufferPointer<Int32>,          // (N)
        N: Int, V: Int
    ) -> (sum: Double, count: Int) {
        requireCount(losses, N, "CrossEntropy.forward losses"); requireCount(logsumexp, N, "CrossEntropy.forward logsumexp")
        requireCount(logits, N * V, "CrossEntropy.forward logits"); requireCount(targets, N, "CrossEntropy.forward targets")
        let l = losses.ptr, lse = logsumexp.ptr, x = logits.ptr, tg = targets.ptr
        for n in 0..<N {
            let target = tg[n]
            precondition(target == ignoreIndex || (target >= 0 && Int(target) < V), "target \(target) outside vocabulary of \(V)")
        }
        Parallel.forEachChunk(count: N, minimumCount: 2, alignment: 1) { _, rows in
            for n in rows { lse[n] = rowLogSumExp(x + n * V, V) }
        }
        var total = 0.0, count = 0
        for n in 0..<N {
            let target = tg[n]
            if target == ignoreIndex { l[n] = 0; continue }
            l[n] = lse[n] - x[n * V + Int(target)]
            total += Double(l[n])
            count += 1
        }
        return (total, count)
    }

    /// log Σ exp(row): max, then Σ exp(row − max).
    @inline(__always)
    static func rowLogSumExp(_ row: UnsafePointer<Float>, _ V: Int) -> Float {
        let W = VectorMath.width
        var maxVector = VectorMath.Vector(repeating: -.infinity)
        var i = 0
        while i + W <= V { maxVector = pointwiseMax(maxVector, VectorMath.load(row + i)); i += W }
        var maxv = maxVector.max()
        while i < V { maxv = max(maxv, row[i]); i += 1 }
        let shift = VectorMath.Vector(repeating: maxv)
        var s = 0.0 // Double across runs: V can be 50257 terms
        i = 0
        while i + W <= V {
            let end = min(V - (V - i) % W, i + 1024)
            var acc = VectorMath.Vector(repeating: 0)
            while i < end { acc += VectorMath.exp(VectorMath.load(row + i) - shift); i += W }
            for lane in 0..<W { s += Double(acc[lane]) }
        }
        while i < V { s += Double(VectorMath.exp(row[i] - maxv)); i += 1 }
        return maxv + Float(log(s))
    }

    /// dlogits[n] += dlossScale · (softmax(logits[n]) − onehot(target[n])) for every counted row;
    /// `dlossScale` is d(loss)/d(row loss), 1/count for a mean.
    public static func backward(
        dlogits: UnsafeMutableBufferPointer<Float>, // (N, V)
        logits: UnsafeBufferPointer<Float>,         // (N, V)
        logsumexp: UnsafeBufferPointer<Float>,      // (N)
        targets: UnsafeBufferPointer<Int32>,        // (N)
        dlossScale: Float, N: Int, V: Int
    ) {
        requireCount(dlogits, N * V, "CrossEntropy.backward dlogits"); requireCount(logits, N * V, "CrossEntropy.backward logits")
        requireCount(logsumexp, N, "CrossEntropy.backward logsumexp"); requireCount(targets, N, "CrossEntropy.backward targets")
        let d = dlogits.ptr, x = logits.ptr, lse = logsumexp.ptr, tg = targets.ptr
        let W = VectorMath.width
        Parallel.forEachChunk(count: N, minimumCount: 2, alignment: 1) { _, rows in
            for n in rows {
                let target = tg[n]
                if target == ignoreIndex { continue }
                let row = x + n * V, drow = d + n * V
                let r = VectorMath.Vector(repeating: lse[n])
                var i = 0
                while i + W <= V {
                    let g = VectorMath.exp(VectorMath.load(row + i) - r) * dlossScale
                    VectorMath.store(VectorMath.load(drow + i) + g, drow + i)
                    i += W
                }
                while i < V { drow[i] += VectorMath.exp(row[i] - lse[n]) * dlossScale; i += 1 }
                drow[Int(target)] -= dlossScale
            }
        }
    }
}
