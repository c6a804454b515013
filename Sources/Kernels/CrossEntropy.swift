#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax cross-entropy over the vocabulary for each position, ignoring targets equal to `ignoreIndex`.
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
        var total = 0.0, count = 0
        for n in 0..<N {
            let row = x + n * V
            var maxv = -Float.infinity
            for i in 0..<V { maxv = max(maxv, row[i]) }
            var s = 0.0 // Double: V can be 50257 terms
            for i in 0..<V { s += Double(expf(row[i] - maxv)) }
            let r = maxv + Float(log(s))
            lse[n] = r
            let target = tg[n]
            if target == ignoreIndex { l[n] = 0; continue }
            precondition(target >= 0 && Int(target) < V, "target \(target) outside vocabulary of \(V)")
            l[n] = r - row[Int(target)]
            total += Double(l[n])
            count += 1
        }
        return (total, count)
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
        for n in 0..<N {
            let target = tg[n]
            if target == ignoreIndex { continue }
            let row = x + n * V, drow = d + n * V, r = lse[n]
            for i in 0..<V { drow[i] += expf(row[i] - r) * dlossScale }
            drow[Int(target)] -= dlossScale
        }
    }
}
