import Tensors

/// transformers' logits processors that `generate` runs before the sampling warpers (and for greedy
/// decoding too), in `_get_logits_processor`'s order: `RepetitionPenaltyLogitsProcessor`, then
/// `NoRepeatNGramLogitsProcessor`. Each works on one row's logits and that row's own ids so far, prompt
/// included.
///
/// Owns a scratch buffer sized for one vocabulary, so processing allocates nothing. Not thread-safe.
public final class LogitsProcessor {
    /// Size of the logits rows this processor takes.
    public let vocabularySize: Int
    /// `repetition_penalty`; 1 leaves the logits unchanged.
    public let repetitionPenalty: Float
    /// `no_repeat_ngram_size`; 0 bans nothing.
    public let noRepeatNGramSize: Int

    private let marks: UnsafeMutableBufferPointer<UInt32>  // (V) ids already penalised in this call
    private var stamp: UInt32 = 0

    /// A processor for rows of `vocabularySize` logits. Throws when an option is out of range.
    public init(vocabularySize: Int, repetitionPenalty: Float = 1, noRepeatNGramSize: Int = 0) throws(GenerationError) {
        precondition(vocabularySize > 0, "vocabulary size \(vocabularySize)")
        try Self.validate(repetitionPenalty: repetitionPenalty, noRepeatNGramSize: noRepeatNGramSize)
        self.vocabularySize = vocabularySize
        self.repetitionPenalty = repetitionPenalty
        self.noRepeatNGramSize = noRepeatNGramSize
        marks = .allocate(capacity: repetitionPenalty != 1 ? vocabularySize : 0)
        marks.initialize(repeating: 0)
    }

    deinit { marks.deallocate() }

    /// Whether processing changes anything.
    public var isActive: Bool { repetitionPenalty != 1 || noRepeatNGramSize > 0 }

    /// Checks the values as transformers' `GenerationConfig` does, and refuses a non-finite penalty.
    public static func validate(repetitionPenalty: Float, noRepeatNGramSize: Int) throws(GenerationError) {
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw .invalidOption(name: "repetition-penalty", value: "\(repetitionPenalty)", expected: "a finite number > 0 (1 disables)")
        }
        guard noRepeatNGramSize >= 0 else {
            throw .invalidOption(name: "no-repeat-ngram-size", value: "\(noRepeatNGramSize)", expected: "an integer >= 0 (0 disables)")
        }
    }

    /// Applies the active processors to one row's `logits` given that row's `ids` (prompt then new ids).
    public func process(_ logits: UnsafeMutableBufferPointer<Float>, ids: [TokenID]) {
        precondition(logits.count == vocabularySize, "logits row has \(logits.count) entries, vocabulary \(vocabularySize)")
        if repetitionPenalty != 1 { applyRepetitionPenalty(to: logits, ids: ids) }
        if noRepeatNGramSize > 0 { Self.banRepeatedNGrams(size: noRepeatNGramSize, in: logits, ids: ids) }
    }

    /// `RepetitionPenaltyLogitsProcessor`: every id present in `ids` (once, however often it occurs) has its
    /// logit multiplied by the penalty when negative, divided by it otherwise, in Float as torch does.
    public func applyRepetitionPenalty(to logits: UnsafeMutableBufferPointer<Float>, ids: [TokenID]) {
        precondition(logits.count == vocabularySize, "logits row has \(logits.count) entries, vocabulary \(vocabularySize)")
        stamp &+= 1
        if stamp == 0 { // wrapped: clear the marks so no stale stamp matches
            marks.update(repeating: 0)
            stamp = 1
        }
        let penalty = repetitionPenalty
        for id in ids {
            precondition(id >= 0 && id < vocabularySize, "id \(id) outside the vocabulary (\(vocabularySize))")
            if marks[id] == stamp { continue }
            marks[id] = stamp
            let score = logits[id]
            logits[id] = score < 0 ? score * penalty : score / penalty
        }
    }

    /// `NoRepeatNGramLogitsProcessor`: the ids that would complete an n-gram of `size` ids already present in
    /// `ids` (after the same `size - 1` ids as the row ends with) become `-infinity`. Nothing is banned
    /// while the row is shorter than `size - 1` ids. Scans the row once: O(ids · size) per call.
    public static func banRepeatedNGrams(size n: Int, in logits: UnsafeMutableBufferPointer<Float>, ids: [TokenID]) {
        precondition(n > 0, "n-gram size \(n)")
        let length = ids.count
        if length + 1 < n { return }
        let prefix = n - 1 // the row's last n - 1 ids
        // every n-gram ids[i ..< i + n] with i + n <= length whose first n - 1 ids equal the row's end
        var i = 0
        while i + n <= length {
            var same = true
            var j = 0
            while j < prefix {
                if ids[i + j] != ids[length - prefix + j] { same = false; break }
                j += 1
            }
            if same {
                let banned = ids[i + prefix]
                precondition(banned >= 0 && banned < logits.count, "id \(banned) outside the vocabulary (\(logits.count))")
                logits[banned] = -.infinity
            }
            i += 1
        }
    }
}
