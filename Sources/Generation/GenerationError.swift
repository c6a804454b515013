import Tensors

/// Why a generation request cannot run: bad options or lengths from the caller's input.
public enum GenerationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An option outside its range.
    case invalidOption(name: String, value: String, expected: String)
    /// The prompt has no tokens.
    case emptyPrompt
    /// A prompt token id is not in the vocabulary.
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    /// The prompt alone does not fit the model's context.
    case promptTooLong(promptLength: Int, contextLength: Int)
    /// The requested total length would pass the model's context.
    case lengthExceedsContext(maxLength: Int, contextLength: Int)
    /// The requested total length leaves no room for a new token.
    case maxLengthNotAbovePrompt(maxLength: Int, promptLength: Int)
    /// `max_new_tokens` does not fit the positions left after the prompt.
    case newTokensExceedContext(maxNewTokens: Int, promptLength: Int, contextLength: Int)
    /// With left truncation, `max_new_tokens` fills the context and leaves no position for the prompt.
    case noRoomForPrompt(maxNewTokens: Int, contextLength: Int)
    /// Stop strings were given without a tokenizer to spell the tokens with.
    case stopStringsNeedTokenizer
    /// The batch's key/value cache or work buffers would hold more floats than `limit` (nil: the count overflows).
    case batchTooLarge(what: String, floats: Int?, limit: Int)
    /// The request needs more memory than the machine can give.
    case insufficientMemory(InsufficientMemory)

    /// The message `gpt2kit` prints, naming the option to change.
    public var description: String {
        switch self {
        case let .invalidOption(name, value, expected): return "--\(name): \(value) is not \(expected)"
        case .emptyPrompt: return "prompt is empty: generation needs at least one token"
        case let .tokenOutOfRange(id, v): return "prompt token id \(id) is outside the vocabulary (0..<\(v))"
        case let .promptTooLong(p, n): return "prompt has \(p) tokens, more than the model's \(n) positions; --truncate left (with --max-new-tokens) keeps its end"
        case let .lengthExceedsContext(m, n):
            return "max length \(m) (prompt + new tokens) passes the model's \(n) positions; lower --max-length or --max-new-tokens, or shorten the prompt (--truncate left)"
        case let .newTokensExceedContext(m, p, n):
            return "max new tokens \(m) plus the \(p)-token prompt passes the model's \(n) positions; at most \(n - p) new tokens fit, or --truncate left shortens the prompt"
        case let .noRoomForPrompt(m, n):
            return "max new tokens \(m) leave no room for the prompt in the model's \(n) positions; at most \(n - 1) new tokens fit"
        case .stopStringsNeedTokenizer: return "stop strings need a tokenizer to spell the generated tokens"
        case let .batchTooLarge(what, floats, limit):
            let size = floats.map { "\($0) floats" } ?? "a float count that overflows a 64-bit integer"
            return "\(what) would need \(size), more than the supported \(limit); lower --num-return-sequences"
        case let .insufficientMemory(e): return "\(e); lower --num-return-sequences or --max-length"
        case let .maxLengthNotAbovePrompt(m, p):
            return "max length \(m) counts the prompt, which already has \(p) tokens; raise --max-length or use --max-new-tokens"
        }
    }
}
