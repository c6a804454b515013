import Tensors
import GPT2

/// What to generate and when to stop, with transformers' `GenerationConfig` defaults and rules.
public struct GenerationOptions: Sendable, Equatable {
    /// Total length, prompt included (`max_length`, default 20). Ignored when `maxNewTokens` is set.
    public var maxLength: Int
    /// New tokens after the prompt (`max_new_tokens`); takes precedence over `maxLength`, as in transformers.
    public var maxNewTokens: Int?
    /// Greedy unless sampling.
    public var strategy: DecodingStrategy
    /// A sequence that produces one of these stops (`eos_token_id`, from the config or `generation_config.json`).
    public var eosTokenIDs: [TokenID]
    /// Filler for sequences of a batch that already stopped; transformers falls back to the first EOS id.
    public var padTokenID: TokenID?
    /// Sequences decoded together from the same prompt (`num_return_sequences`).
    public var numReturnSequences: Int
    /// Seed of the sampling generator.
    public var seed: UInt64
    /// `repetition_penalty`: logits of ids already in the row (prompt included) are divided by it when
    /// positive and multiplied when negative, before any sampling warper; 1 (the default) disables.
    public var repetitionPenalty: Float
    /// `no_repeat_ngram_size`: no n-gram of this many ids occurs twice in a row (prompt included); 0 disables.
    public var noRepeatNGramSize: Int
    /// A row ends when its new text contains one of these (the prompt's text does not count); its text is
    /// cut before the stop string. Needs the tokenizer passed to `Generator`.
    public var stopStrings: [String]
    /// What to do with a prompt that leaves no room for the new tokens.
    public var truncation: PromptTruncation
    /// The precision decoding reads the projections in (f16 and Q8_0 are re-encoded once, see `DecodingWeights`).
    public var weights: WeightPrecision = .f32

    /// Options with transformers' `GenerationConfig` defaults unless given (max length 20, greedy, no EOS id, one
    /// sequence, no penalties or stop strings); `weights` is set on its own (f32 by default).
    public init(maxLength: Int = 20, maxNewTokens: Int? = nil, strategy: DecodingStrategy = .greedy,
                eosTokenIDs: [TokenID] = [], padTokenID: TokenID? = nil, numReturnSequences: Int = 1, seed: UInt64 = 0,
                repetitionPenalty: Float = 1, noRepeatNGramSize: Int = 0, stopStrings: [String] = [],
                truncation: PromptTruncation = .none) {
        self.maxLength = maxLength
        self.maxNewTokens = maxNewTokens
        self.strategy = strategy
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
        self.numReturnSequences = numReturnSequences
        self.seed = seed
        self.repetitionPenalty = repetitionPenalty
        self.noRepeatNGramSize = noRepeatNGramSize
        self.stopStrings = stopStrings
        self.truncation = truncation
    }

    /// The id written after a sequence stopped: `padTokenID`, else the first EOS id, else nil (no EOS, so
    /// no sequence stops early and none is needed).
    public var effectivePadTokenID: TokenID? { padTokenID ?? eosTokenIDs.first }

    /// The total length to stop at for a prompt of `promptLength` tokens, checked against the model's
    /// `contextLength` positions. Unlike transformers (which warns and still adds one token), a max length
    /// that leaves no room for a new token is an error.
    public func resolvedMaxLength(promptLength: Int, contextLength: Int) throws(GenerationError) -> Int {
        guard promptLength > 0 else { throw .emptyPrompt }
        guard promptLength <= contextLength else { throw .promptTooLong(promptLength: promptLength, contextLength: contextLength) }
        let total: Int
        if let maxNewTokens {
            guard maxNewTokens >= 1 else { throw .invalidOption(name: "max-new-tokens", value: "\(maxNewTokens)", expected: "an integer >= 1") }
            // max_new_tokens comes from files and flags: Int.max must not trap on the addition.
            let (sum, overflow) = promptLength.addingReportingOverflow(maxNewTokens)
            guard !overflow else {
                throw .newTokensExceedContext(maxNewTokens: maxNewTokens, promptLength: promptLength, contextLength: contextLength)
            }
            total = sum
        } else {
            guard maxLength > promptLength else { throw .maxLengthNotAbovePrompt(maxLength: maxLength, promptLength: promptLength) }
            total = maxLength
        }
        // The last token is sampled from logits at position total - 2, so the model sees total - 1 positions;
        // transformers still requires the whole sequence to fit, and so do we.
        guard total <= contextLength else { throw .lengthExceedsContext(maxLength: total, contextLength: contextLength) }
        return total
    }

    /// The most sequences decoded together (each keeps its own key/value cache).
    public static let maximumNumReturnSequences = 4096

    /// Checks the counts, the logits processors' values, the stop strings and the sampling options.
    public func validated() throws(GenerationError) -> GenerationOptions {
        try LogitsProcessor.validate(repetitionPenalty: repetitionPenalty, noRepeatNGramSize: noRepeatNGramSize)
        for stop in stopStrings where stop.isEmpty {
            throw .invalidOption(name: "stop", value: "\"\"", expected: "a non-empty string")
        }
        guard numReturnSequences >= 1, numReturnSequences <= Self.maximumNumReturnSequences else {
            throw .invalidOption(name: "num-return-sequences", value: "\(numReturnSequences)",
                                 expected: "an integer in 1...\(Self.maximumNumReturnSequences)")
        }
        if case let .sampling(options) = strategy { _ = try options.validated() }
        return self
    }
}
