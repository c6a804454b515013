import CKernels
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax cross-entropy over the vocabulary for each position, ignoring targets equal to `ignoreIndex`.
/// Rows are independent, so they are split over both cores; each row's sum is vectorised with a fixed
/// order (see `rowLogSumExp`), so results are deterministic.
public enum CrossEntropy {
    /// The target value that contributes nothing (PyTorch's `ignore_index`).
    public static let ignoreIndex = Int32(Tensors.ignoreIndex)

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

    /// log Σ exp(row): the row's maximum, then Σ exp(row − max) over float lanes in runs of 1024, the runs added
    /// in double (`CKernels`).
    @inline(__always)
    static func rowLogSumExp(_ row: UnsafePointer<Float>, _ V: Int) -> Float {
        let maxv = gpt2kit_maximum(row, V)
        return maxv + Float(log(gpt2kit_sum_exp(row, V, maxv)))
    }

    /// The backward: turns each row of `logits` into its loss gradient in place, dlossScale · (softmax(row) −
    /// onehot(target)) with `dlossScale` = d(loss)/d(row loss) (1/count for a mean), or zeros for an ignored row;
    /// the model works a chunk of rows at a time, so no second (N, V) buffer is needed.
    public static func gradientInPlace(
        logits: UnsafeMutableBufferPointer<Float>,  // (N, V) in, d(loss)/d(logits) out
        logsumexp: UnsafeBufferPointer<Float>,      // (N)
        targets: UnsafeBufferPointer<Int32>,        // (N)
        dlossScale: Float, N: Int, V: Int
    ) {
        requireCount(logits, N * V, "CrossEntropy.gradientInPlace logits"); requireCount(logsumexp, N, "CrossEntropy.gradientInPlace logsumexp")
        requireCount(targets, N, "CrossEntropy.gradientInPlace targets")
        let x = logits.ptr, lse = logsumexp.ptr, tg = targets.ptr
        Parallel.forEachChunk(count: N, minimumCount: 2, alignment: 1) { _, rows in
            for n in rows {
                let row = x + n * V, target = tg[n]
                if target == ignoreIndex { row.update(repeating: 0, count: V); continue }
                let r = lse[n]
                gpt2kit_exp_shift_scale(row, V, r, dlossScale)
                row[Int(target)] -= dlossScale
            }
        }
    }
}
