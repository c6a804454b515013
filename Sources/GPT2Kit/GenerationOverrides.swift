import Foundation
import Tensors

/// What a caller asks of one `generate` call; every nil field takes the model's `generation_config.json`
/// value, then transformers' `GenerationConfig` default (max length 20, greedy, temperature 1, top-k 50,
/// top-p 1, repetition penalty 1, no n-gram ban). `gpt2kit generate` and `LanguageModel.generate` resolve
/// them the same way, through `GenerationConfigFile.options(_:modelConfig:)`.
public struct GenerationOverrides: Sendable, Equatable {
    /// Total length, prompt included (`max_length`).
    public var maxLength: Int?
    /// New tokens after the prompt (`max_new_tokens`); takes precedence over `maxLength`.
    public var maxNewTokens: Int?
    /// Sample (true) or decode greedily (false).
    public var sample: Bool?
    /// Divides the logits before sampling.
    public var temperature: Float?
    /// Sample among the k most likely tokens (0: no limit).
    public var topK: Int?
    /// Sample among the most likely tokens whose probability adds up to p.
    public var topP: Double?
    /// transformers' `repetition_penalty` (1: off).
    public var repetitionPenalty: Float?
    /// transformers' `no_repeat_ngram_size` (0: off).
    public var noRepeatNGramSize: Int?
    /// A sequence ends when its new text contains one of these (`stop_strings`).
    public var stopStrings: [String]?
    /// Continuations decoded together from each prompt.
    public var numReturnSequences: Int
    /// Seed of the sampling generator (xoshiro256**): the same seed gives the same text.
    public var seed: UInt64
    /// What to do with a prompt that leaves no room for the new tokens.
    public var truncation: PromptTruncation
    /// The precision the projections are read in while decoding.
    public var weights: WeightPrecision

    /// Overrides of the fields given; nil fields take the generation config's value or transformers' default.
    public init(maxLength: Int? = nil, maxNewTokens: Int? = nil, sample: Bool? = nil, temperature: Float? = nil,
                topK: Int? = nil, topP: Double? = nil, repetitionPenalty: Float? = nil, noRepeatNGramSize: Int? = nil,
                stopStrings: [String]? = nil, numReturnSequences: Int = 1, seed: UInt64 = 0,
                truncation: PromptTruncation = .none, weights: WeightPrecision = .f32) {
        self.maxLength = maxLength
        self.maxNewTokens = maxNewTokens
        self.sample = sample
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.noRepeatNGramSize = noRepeatNGramSize
        self.stopStrings = stopStrings
        self.numReturnSequences = numReturnSequences
        self.seed = seed
        self.truncation = truncation
        self.weights = weights
    }
}

extension GenerationConfigFile {
    /// The options of one generation: `overrides` first, then this file, then transformers' defaults. The
    /// EOS ids come from this file, else `modelConfig`'s `eos_token_id`. A `maxLength` given in `overrides`
    /// also drops the file's `max_new_tokens` (the caller's length wins, as on transformers' command line).
    public func options(_ overrides: GenerationOverrides, modelConfig: GPT2Config) -> GenerationOptions {
        let doSample = overrides.sample ?? doSample ?? false
        let strategy: DecodingStrategy = doSample
            ? .sampling(SamplingOptions(temperature: overrides.temperature ?? temperature.map(Float.init) ?? 1,
                                        topK: overrides.topK ?? topK ?? 50,
                                        topP: overrides.topP ?? topP ?? 1))
            : .greedy
        var options = GenerationOptions(
            maxLength: overrides.maxLength ?? maxLength ?? 20,
            maxNewTokens: overrides.maxNewTokens ?? (overrides.maxLength == nil ? maxNewTokens : nil),
            strategy: strategy,
            eosTokenIDs: eosTokenIDs ?? modelConfig.eosTokenID.map { [$0] } ?? [],
            padTokenID: padTokenID,
            numReturnSequences: overrides.numReturnSequences,
            seed: overrides.seed,
            repetitionPenalty: overrides.repetitionPenalty ?? repetitionPenalty.map(Float.init) ?? 1,
            noRepeatNGramSize: overrides.noRepeatNGramSize ?? noRepeatNGramSize ?? 0,
            stopStrings: overrides.stopStrings ?? stopStrings ?? [],
            truncation: overrides.truncation)
        options.weights = overrides.weights
        return options
    }
}
