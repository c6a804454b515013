import Tensors

/// What `Generator` does with a prompt that leaves no room in the model's positions for the new tokens.
public enum PromptTruncation: Sendable, Equatable {
    /// Refuse it, with the numbers (`GenerationError.promptTooLong`, `.newTokensExceedContext`).
    case none
    /// Keep its last `contextLength - maxNewTokens` tokens, as transformers' text-generation pipeline does
    /// with `handle_long_generation="hole"`. Needs `maxNewTokens`: `maxLength` counts the prompt, so a
    /// prompt it leaves no room for is refused either way.
    case left
}

extension GenerationOptions {
    /// The prompt decoding starts from: `promptIDs` itself, or with `.left` truncation and a prompt that
    /// together with `maxNewTokens` passes `contextLength`, its last `contextLength - maxNewTokens` ids.
    /// Throws when `maxNewTokens` alone fills the context. Other bad lengths are left for
    /// `resolvedMaxLength` to report.
    public func truncatedPrompt(_ promptIDs: [TokenID], contextLength: Int) throws(GenerationError) -> [TokenID] {
        guard truncation == .left, let maxNewTokens, maxNewTokens >= 1, !promptIDs.isEmpty else { return promptIDs }
        let (total, overflow) = promptIDs.count.addingReportingOverflow(maxNewTokens)
        if !overflow && total <= contextLength { return promptIDs }
        guard maxNewTokens < contextLength else { throw .noRoomForPrompt(maxNewTokens: maxNewTokens, contextLength: contextLength) }
        return Array(promptIDs.suffix(contextLength - maxNewTokens))
    }
}
