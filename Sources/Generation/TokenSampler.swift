#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Chooses next tokens from logits the way transformers' `generate` does: argmax for greedy decoding;
/// for sampling, `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper` in that order, then a
/// multinomial draw from the softmax of what is left.
///
/// Owns scratch buffers sized for one vocabulary, so choosing a token allocates nothing. Not thread-safe.
public final class TokenSampler {
    /// Size of the logits rows this sampler takes.
    public let vocabularySize: Int
    /// Greedy or sampling, with the sampling options validated.
    public let strategy: DecodingStrategy
    /// The generator behind every draw; seeded, so a run is reproducible.
    public var generator: Xoshiro256StarStar

    private let selectScratch: UnsafeMutableBufferPointer<Float>   // (V) top-k selection
    private let sortKeys: UnsafeMutableBufferPointer<UInt64>       // (V) top-p order: value bits << 32 | id
    private let weights: UnsafeMutableBufferPointer<Double>        // (V) exp(logit - max)

    /// A sampler for rows of `vocabularySize` logits. Throws when the sampling options are out of range.
    public init(vocabularySize: Int, strategy: DecodingStrategy, seed: UInt64 = 0) throws(GenerationError) {
        precondition(vocabularySize > 0, "vocabulary size \(vocabularySize)")
        if case let .sampling(options) = strategy { _ = try options.validated() }
        self.vocabularySize = vocabularySize
        self.strategy = strategy
        self.generator = Xoshiro256StarStar(seed: seed)
        selectScratch = .allocate(capacity: vocabularySize)
        sortKeys = .allocate(capacity: vocabularySize)
        weights = .allocate(capacity: vocabularySize)
    }

    deinit {
        selectScratch.deallocate()
        sortKeys.deallocate()
        weights.deallocate()
    }

    /// The next token for one row of logits. Sampling overwrites `logits` with the warped scores
    /// (filtered entries become `-infinity`); greedy leaves them untouched.
    public func chooseToken(from logits: UnsafeMutableBufferPointer<Float>) -> Int {
        precondition(logits.count == vocabularySize, "logits row has \(logits.count) entries, vocabulary \(vocabularySize)")
        switch strategy {
        case .greedy:
            return Self.argmax(UnsafeBufferPointer(logits))
        case let .sampling(options):
            warp(logits, options: options)
            return sample(fromScores: UnsafeBufferPointer(logits))
        }
    }

    /// Applies temperature, top-k and top-p in transformers' order; each step runs only when it changes
    /// something (temperature ≠ 1, top-k > 0, top-p < 1), as `_get_logits_processor` adds them.
    public func warp(_ logits: UnsafeMutableBufferPointer<Float>, options: SamplingOptions) {
        precondition(logits.count == vocabularySize, "logits row has \(logits.count) entries, vocabulary \(vocabularySize)")
        if options.temperature != 1 { Self.applyTemperature(options.temperature, to: logits) }
        if options.topK > 0 { applyTopK(options.topK, minTokensToKeep: options.minTokensToKeep, to: logits) }
        if options.topP < 1 { applyTopP(options.topP, minTokensToKeep: options.minTokensToKeep, to: logits) }
    }

    /// The index of the largest logit; ties go to the lowest index, like `torch.argmax`. NaNs are skipped.
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        var found = false
        for i in 0..<logits.count {
            let v = logits[i]
            if v > bestValue || (!found && v == bestValue) { best = i; bestValue = v; found = true }
        }
        return best
    }

    /// `scores / temperature` elementwise (a division, as transformers does, not a reciprocal multiply).
    public static func applyTemperature(_ temperature: Float, to logits: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<logits.count { logits[i] = logits[i] / temperature }
    }

    /// `TopKLogitsWarper`: with `k = min(max(topK, minTokensToKeep), V)`, every score below the k-th largest
    /// becomes `-infinity`. Ties with the k-th largest all survive, so more than k tokens may remain.
    public func applyTopK(_ topK: Int, minTokensToKeep: Int = 1, to logits: UnsafeMutableBufferPointer<Float>) {
        let V = logits.count
        precondition(V == vocabularySize, "logits row has \(V) entries, vocabulary \(vocabularySize)")
        let k = min(max(topK, minTokensToKeep), V)
        if k >= V { return }
        _ = selectScratch.initialize(fromContentsOf: logits)
        let threshold = Self.select(selectScratch, rank: V - k)
        for i in 0..<V where logits[i] < threshold { logits[i] = -.infinity }
    }

    /// `TopPLogitsWarper`: sort ascending, softmax, cumulative sum; every token whose cumulative probability
    /// is `<= 1 - topP` is removed, except the last `minTokensToKeep` of the sorted order. Equal scores sort
    /// by ascending id, which is `torch.sort`'s order for rows of up to 16 entries; for longer rows PyTorch's
    /// unstable sort orders exact ties its own way, so a tie that straddles the cut can keep a different
    /// member of the tie (the set's size is the same). As in PyTorch the probabilities are Float, their running sum is accumulated in Double
    /// and stored as Float, and the bound is the Double `1 - topP` rounded to Float.
    public func applyTopP(_ topP: Double, minTokensToKeep: Int = 1, to logits: UnsafeMutableBufferPointer<Float>) {
        let V = logits.count
        precondition(V == vocabularySize, "logits row has \(V) entries, vocabulary \(vocabularySize)")
        // Entries already at -inf have probability 0, so they sit first in the order and are removed anyway.
        var n = 0
        for i in 0..<V where logits[i] > -.infinity {
            sortKeys[n] = UInt64(Self.orderedBits(logits[i])) << 32 | UInt64(i)
            n += 1
        }
        if n == 0 { return }
        var keys = UnsafeMutableBufferPointer(rebasing: sortKeys[0..<n])
        keys.sort()
        let maxValue = Double(logits[Int(keys[n - 1] & 0xFFFF_FFFF)])
        var total = 0.0
        for j in 0..<n {
            let e = exp(Double(logits[Int(keys[j] & 0xFFFF_FFFF)]) - maxValue)
            weights[j] = e
            total += e
        }
        let bound = Float(1 - topP)
        let removable = max(n - minTokensToKeep, 0)
        var cumulative = 0.0
        var j = 0
        while j < removable {
            cumulative += Double(Float(weights[j] / total))
            if Float(cumulative) > bound { break }
            logits[Int(keys[j] & 0xFFFF_FFFF)] = -.infinity
            j += 1
        }
    }

    /// Draws one id with probability `softmax(scores)[id]` (a multinomial draw of one sample).
    public func sample(fromScores scores: UnsafeBufferPointer<Float>) -> Int {
        let V = scores.count
        precondition(V == vocabularySize, "scores row has \(V) entries, vocabulary \(vocabularySize)")
        let top = Self.argmax(scores)
        let maxValue = scores[top]
        if maxValue == -.infinity { return top }
        var total = 0.0
        for i in 0..<V {
            let s = scores[i]
            let w = s > -.infinity ? exp(Double(s) - Double(maxValue)) : 0
            weights[i] = w
            total += w
        }
        let u = generator.nextUnitDouble() * total
        var cumulative = 0.0
        var last = top
        for i in 0..<V where weights[i] > 0 {
            cumulative += weights[i]
            last = i
            if u < cumulative { return i }
        }
        return last
    }

    /// Float bits mapped so that unsigned order equals numeric order.
    @inline(__always)
    static func orderedBits(_ x: Float) -> UInt32 {
        let b = x.bitPattern
        return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }

    /// The value that would sit at ascending position `rank` if `values` were sorted (quickselect; reorders
    /// `values`). Precondition: `0 <= rank < values.count`.
    static func select(_ values: UnsafeMutableBufferPointer<Float>, rank: Int) -> Float {
        precondition(rank >= 0 && rank < values.count, "rank \(rank) outside 0..<\(values.count)")
        var lo = 0, hi = values.count - 1
        while hi > lo {
            // median of three as pivot
            let mid = lo + (hi - lo) / 2
            let a = values[lo], b = values[mid], c = values[hi]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = lo, j = hi
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if rank <= j { hi = j } else if rank >= i { lo = i } else { return values[rank] }
        }
        return values[rank]
    }
}
