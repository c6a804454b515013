import CBLAS
import CKernels
import Synchronization

/// Causal multi-head self-attention on a packed q|k|v buffer, with an optional key padding mask and
/// attention-probability dropout, in memory linear in T.
///
/// The T×T probabilities are never stored: queries are taken in tiles of `tileRows` rows; a tile's scores
/// against the keys it can see (0 ..< end of the tile: the causal half only) come from one sgemm, each row
/// is normalised exactly (the whole visible row is in the tile), and only the row's maximum and 1/Σ are
/// kept. Backward recomputes the tile's probabilities from those two numbers — bit for bit the forward's —
/// as flash attention does. The (batch row, head) pairs are split over the cores, each with its own
/// scratch tiles and single-threaded sgemm calls, so results do not depend on scheduling.
public enum Attention {
    /// The score given to a key hidden by the padding mask: the dtype's minimum, as transformers does.
    public static let maskedScore: Float = -Float.greatestFiniteMagnitude

    /// Query rows per tile.
    public static let tileRows = 64

    /// Floats of the per-row statistics `forward` saves for `backward`: (B, NH, T, 2), each row's maximum
    /// score and the inverse of its softmax sum.
    public static func statisticsCount(B: Int, T: Int, NH: Int) -> Int { B * NH * T * 2 }

    /// Scratch floats `forward`/`backward` need: three (tile rows, T) tiles per core.
    public static func scratchCount(T: Int) -> Int { Parallel.workers * 3 * min(tileRows, T) * T }

    /// out[b,t,h] = Σ_{t2≤t} softmax_t2(scale · q[b,t,h]·k[b,t2,h]) · v[b,t2,h], with dropout on the
    /// probabilities; saves each row's statistics for `backward`. `keyMask[b,t2] == 0` hides key t2 of row b.
    public static func forward(
        out: UnsafeMutableBufferPointer<Float>,        // (B, T, C)
        statistics: UnsafeMutableBufferPointer<Float>, // (B, NH, T, 2)
        qkv: UnsafeBufferPointer<Float>,               // (B, T, 3C)
        keyMask: UnsafeBufferPointer<Int32>?,          // (B, T)
        scratch: UnsafeMutableBufferPointer<Float>,    // scratchCount(T:)
        B: Int, T: Int, C: Int, NH: Int, scale: Float,
        dropout: Float = 0, dropoutSeed: UInt64 = 0
    ) {
        precondition(C % NH == 0, "C \(C) not divisible by NH \(NH)")
        requireCount(out, B * T * C, "Attention.forward out")
        requireCount(statistics, statisticsCount(B: B, T: T, NH: NH), "Attention.forward statistics")
        requireCount(qkv, B * T * 3 * C, "Attention.forward qkv"); requireCount(scratch, scratchCount(T: T), "Attention.forward scratch")
        if let keyMask { requireCount(keyMask, B * T, "Attention.forward keyMask") }
        let hs = C / NH, C3 = 3 * C, R = min(tileRows, T)
        let q0 = qkv.ptr, o0 = out.ptr, stats0 = statistics.ptr, scratch0 = scratch.ptr
        let mask0 = keyMask?.ptr
        let dropScale = 1 / (1 - dropout)
        forEachHead(B: B, NH: NH) { worker, item in
            let b = item / NH, h = item % NH
            let probs = scratch0 + worker * 3 * R * T, dropped = probs + R * T
            let mask = mask0.map { $0 + b * T }
            let q = q0 + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let stats = stats0 + item * T * 2
            let seed = Dropout.siteSeed(dropoutSeed, site: item)
            var t0 = 0
            while t0 < T {
                let rows = min(R, T - t0), keys = t0 + rows
                scores(into: probs, q: q + t0 * C3, k: k, rows: rows, keys: keys, hs: hs, stride: C3, scale: scale)
                for i in 0..<rows {
                    let (maxScore, inverseSum) = normalize(probs + i * keys, visible: t0 + i + 1, width: keys, mask: mask)
                    stats[2 * (t0 + i)] = maxScore
                    stats[2 * (t0 + i) + 1] = inverseSum
                }
                var p = UnsafePointer(probs)
                if dropout > 0 {
                    applyDropout(to: dropped, from: p, t0: t0, rows: rows, keys: keys, T: T, seed: seed, p: dropout, scale: dropScale)
                    p = UnsafePointer(dropped)
                }
                // out[t0..<t0+rows] = P·V[0..<keys]   (rows, hs), row stride C
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(hs), Int32(keys),
                            1, p, Int32(keys), v, Int32(C3), 0, o0 + (b * T + t0) * C + h * hs, Int32(C))
                t0 += rows
            }
        }
    }

    /// Accumulates dqkv from dout, given the forward's statistics and the same mask, scale and dropout.
    public static func backward(
        dqkv: UnsafeMutableBufferPointer<Float>,    // (B, T, 3C)
        dout: UnsafeBufferPointer<Float>,           // (B, T, C)
        qkv: UnsafeBufferPointer<Float>,            // (B, T, 3C)
        statistics: UnsafeBufferPointer<Float>,     // (B, NH, T, 2)
        keyMask: UnsafeBufferPointer<Int32>?,       // (B, T)
        scratch: UnsafeMutableBufferPointer<Float>, // scratchCount(T:)
        B: Int, T: Int, C: Int, NH: Int, scale: Float,
        dropout: Float = 0, dropoutSeed: UInt64 = 0
    ) {
        precondition(C % NH == 0, "C \(C) not divisible by NH \(NH)")
        requireCount(dqkv, B * T * 3 * C, "Attention.backward dqkv"); requireCount(dout, B * T * C, "Attention.backward dout")
        requireCount(qkv, B * T * 3 * C, "Attention.backward qkv")
        requireCount(statistics, statisticsCount(B: B, T: T, NH: NH), "Attention.backward statistics")
        requireCount(scratch, scratchCount(T: T), "Attention.backward scratch")
        if let keyMask { requireCount(keyMask, B * T, "Attention.backward keyMask") }
        let hs = C / NH, C3 = 3 * C, R = min(tileRows, T)
        let q0 = qkv.ptr, dq0 = dqkv.ptr, d0 = dout.ptr, stats0 = statistics.ptr, scratch0 = scratch.ptr
        let mask0 = keyMask?.ptr
        let dropScale = 1 / (1 - dropout)
        forEachHead(B: B, NH: NH) { worker, item in
            let b = item / NH, h = item % NH
            let probs = scratch0 + worker * 3 * R * T, dropped = probs + R * T, dscores = dropped + R * T
            let mask = mask0.map { $0 + b * T }
            let q = q0 + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let dq = dq0 + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
            let dh = d0 + b * T * C + h * hs
            let stats = stats0 + item * T * 2
            let seed = Dropout.siteSeed(dropoutSeed, site: item)
            var t0 = 0
            while t0 < T {
                let rows = min(R, T - t0), keys = t0 + rows
                // The forward's probabilities of this tile, recomputed bit for bit (the same scores call).
                scores(into: probs, q: q + t0 * C3, k: k, rows: rows, keys: keys, hs: hs, stride: C3, scale: scale)
                for i in 0..<rows {
                    recompute(probs + i * keys, visible: t0 + i + 1, width: keys, mask: mask,
                              maxScore: stats[2 * (t0 + i)], inverseSum: stats[2 * (t0 + i) + 1])
                }
                var p = UnsafePointer(probs)
                if dropout > 0 {
                    applyDropout(to: dropped, from: p, t0: t0, rows: rows, keys: keys, T: T, seed: seed, p: dropout, scale: dropScale)
                    p = UnsafePointer(dropped)
                }
                let dOut = dh + t0 * C
                // dV[0..<keys] += Pᵀ·dout[t0..<t0+rows]   (keys, hs)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(keys), Int32(hs), Int32(rows),
                            1, p, Int32(keys), dOut, Int32(C), 1, dv, Int32(C3))
                // dP = dout[t0..<t0+rows]·V[0..<keys]ᵀ   (rows, keys)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(keys), Int32(hs),
                            1, dOut, Int32(C), v, Int32(C3), 0, dscores, Int32(keys))
                // With dropout, dP ⊙ keep·scale first. Where P ≠ 0 the kept entries are exactly the non-zero dropped ones;
                // where P = 0, dP does not matter (dS = P ⊙ (…) and Σ P·dP ignore it). So no second pass of the mask's hash.
                // Then the softmax backward in place: dS = P ⊙ (dP − Σ P·dP); zero above the diagonal and on masked keys.
                for i in 0..<rows {
                    let prow = probs + i * keys, drow = dscores + i * keys, visible = t0 + i + 1
                    gpt2kit_softmax_backward_row(drow, prow, dropout > 0 ? UnsafePointer(dropped + i * keys) : nil, visible, dropScale)
                    if let mask { for j in 0..<visible where mask[j] == 0 { drow[j] = 0 } }
                    (drow + visible).update(repeating: 0, count: keys - visible)
                }
                // dQ[t0..<t0+rows] += scale·dS·K[0..<keys] ; dK[0..<keys] += scale·dSᵀ·Q[t0..<t0+rows]   (·, hs)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(hs), Int32(keys),
                            scale, dscores, Int32(keys), k, Int32(C3), 1, dq + t0 * C3, Int32(C3))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(keys), Int32(hs), Int32(rows),
                            scale, dscores, Int32(keys), q + t0 * C3, Int32(C3), 1, dk, Int32(C3))
                t0 += rows
            }
        }
    }

    // MARK: - Rows

    /// A tile's scores, scale · Q[rows]·K[0..<keys]ᵀ, (rows, keys) packed: the one call forward and backward both
    /// make, so backward's recomputed probabilities are the forward's to the bit.
    @inline(__always)
    static func scores(into out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                       rows: Int, keys: Int, hs: Int, stride: Int, scale: Float) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(keys), Int32(hs),
                    scale, q, Int32(stride), k, Int32(stride), 0, out, Int32(keys))
    }

    /// Normalises `row[0..<visible]` into softmax probabilities in place (keys hidden by `mask` get
    /// `maskedScore` and end at exactly 0 unless every visible key is hidden), zeroes `row[visible..<width]`,
    /// and returns the row's maximum and 1/Σ, from which `recompute` gives the same floats again.
    @inline(__always)
    static func normalize(_ row: UnsafeMutablePointer<Float>, visible: Int, width: Int,
                          mask: UnsafePointer<Int32>?) -> (maxScore: Float, inverseSum: Float) {
        if let mask { for j in 0..<visible where mask[j] == 0 { row[j] = maskedScore } }
        let maxScore = gpt2kit_maximum(row, visible)
        gpt2kit_exp_shift_scale(row, visible, maxScore, 1)
        if let mask, maxScore > maskedScore { for j in 0..<visible where mask[j] == 0 { row[j] = 0 } }
        let inverseSum = 1 / gpt2kit_sum(row, visible)
        for j in 0..<visible { row[j] *= inverseSum }
        (row + visible).update(repeating: 0, count: width - visible)
        return (maxScore, inverseSum)
    }

    /// The probabilities `normalize` made from the same scores, given its two numbers.
    @inline(__always)
    static func recompute(_ row: UnsafeMutablePointer<Float>, visible: Int, width: Int, mask: UnsafePointer<Int32>?,
                          maxScore: Float, inverseSum: Float) {
        if let mask { for j in 0..<visible where mask[j] == 0 { row[j] = maskedScore } }
        // e^(s − max)·(1/Σ) rounded as `normalize` rounds it: the exponential, then the product.
        gpt2kit_exp_shift_scale(row, visible, maxScore, inverseSum)
        if let mask, maxScore > maskedScore { for j in 0..<visible where mask[j] == 0 { row[j] = 0 } }
        (row + visible).update(repeating: 0, count: width - visible)
    }

    /// out = inp ⊙ keep · scale over the visible part of a tile's rows (zero above the diagonal); the mask of
    /// element (t, t2) is the one of index t·T + t2 at the (batch row, head)'s seed. `out` may be `inp`.
    @inline(__always)
    static func applyDropout(to out: UnsafeMutablePointer<Float>, from inp: UnsafePointer<Float>, t0: Int, rows: Int, keys: Int,
                             T: Int, seed: UInt64, p: Float, scale: Float) {
        let threshold = Dropout.threshold(p)
        for i in 0..<rows {
            let t = t0 + i, o = out + i * keys, x = inp + i * keys
            gpt2kit_dropout_forward(o, x, t + 1, seed, t * T, threshold, scale)
            (o + t + 1).update(repeating: 0, count: keys - t - 1)
        }
    }

    /// Runs `body(worker, b·NH + h)` for every (batch row, head), split in fixed chunks over the cores, with
    /// OpenBLAS limited to one thread meanwhile (each worker's sgemms are small and run side by side).
    static func forEachHead(B: Int, NH: Int, _ body: (Int, Int) -> Void) {
        let items = B * NH
        BLASThreads.withOneThreadPerCall(when: items > 1 && Parallel.workers > 1) {
            Parallel.forEachChunk(count: items, minimumCount: 2, alignment: 1) { worker, range in
                for item in range { body(worker, item) }
            }
        }
    }
}

/// OpenBLAS's own thread count, narrowed while our workers call it side by side.
package enum BLASThreads {
    /// OpenBLAS's idle-spin setting (OPENBLAS_THREAD_TIMEOUT, log2 cycles; 0 its default), or −1 when the OpenBLAS
    /// linked does not say. 4 unless the user set the variable (`CKernels` sets it before `main`).
    package static var idleSpinLog2: Int { Int(gpt2kit_openblas_thread_timeout()) }

    /// The CPU kernels OpenBLAS runs ("Haswell", "SkylakeX", "Cooperlake", …), or nil when it does not say.
    package static var coreName: String? { gpt2kit_openblas_core_name().map { String(cString: $0) } }

    /// How many callers are inside `withOneThreadPerCall`, and the count to restore when the last one leaves.
    private static let narrowing = Mutex<(depth: Int, restore: Int32)>((0, 0))

    /// Runs `body` with OpenBLAS using one thread per call (when `condition`), restoring its count after. OpenBLAS's
    /// count is process-wide, so callers on several threads (two models running attention at once) share one
    /// narrowing: the first one in sets it, the last one out restores it.
    package static func withOneThreadPerCall<R>(when condition: Bool, _ body: () -> R) -> R {
        guard condition else { return body() }
        let narrowed = narrowing.withLock { state -> Bool in
            if state.depth == 0 {
                let threads = openblas_get_num_threads()
                guard threads > 1 else { return false }
                state.restore = threads
                openblas_set_num_threads(1)
            }
            state.depth += 1
            return true
        }
        guard narrowed else { return body() }
        defer {
            narrowing.withLock { state in
                state.depth -= 1
                if state.depth == 0 { openblas_set_num_threads(state.restore) }
            }
        }
        return body()
    }

    /// OpenBLAS's current thread count (tests).
    package static var count: Int { Int(openblas_get_num_threads()) }
}
