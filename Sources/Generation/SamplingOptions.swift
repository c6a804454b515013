/// How the next token is chosen from the logits: transformers' `do_sample=True` with its warpers, in its order.
///
/// Defaults are transformers' `GenerationConfig` defaults: temperature 1, top-k 50, top-p 1.
public struct SamplingOptions: Sendable, Equatable {
    /// Logits are divided by this before the filters (`TemperatureLogitsWarper`); 1 leaves them unchanged.
    public var temperature: Float
    /// Keep the tokens whose logit is at least the `topK`-th largest (`TopKLogitsWarper`); 0 disables.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches `topP` (`TopPLogitsWarper`);
    /// 1 disables. A Double because transformers compares against the Python float `1 - top_p`.
    public var topP: Double
    /// Neither filter keeps fewer tokens than this (transformers passes 1 when sampling).
    public var minTokensToKeep: Int

    /// Options with transformers' defaults unless given.
    public init(temperature: Float = 1, topK: Int = 50, topP: Double = 1, minTokensToKeep: Int = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minTokensToKeep = minTokensToKeep
    }

    /// Checks the values the way transformers' warpers check them in their initialisers.
    public func validated() throws(GenerationError) -> SamplingOptions {
        guard temperature > 0, temperature.isFinite else { throw .invalidOption(name: "temperature", value: "\(temperature)", expected: "a finite number > 0") }
        guard topK >= 0 else { throw .invalidOption(name: "top-k", value: "\(topK)", expected: "an integer >= 0 (0 disables)") }
        guard topP >= 0, topP <= 1 else { throw .invalidOption(name: "top-p", value: "\(topP)", expected: "a number in [0, 1]") }
        guard minTokensToKeep >= 1 else { throw .invalidOption(name: "min-tokens-to-keep", value: "\(minTokensToKeep)", expected: "an integer >= 1") }
        return self
    }
}

/// Greedy decoding (`do_sample=False`, argmax, ties to the lowest id like `torch.argmax`) or sampling.
public enum DecodingStrategy: Sendable, Equatable {
    /// The most likely token at every step (`do_sample=False`).
    case greedy
    /// Draw from the softmax of the processed logits (`do_sample=True`) with these warpers.
    case sampling(SamplingOptions)
}
