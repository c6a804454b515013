import Tokenization

/// The rows' text, when the generator has a tokenizer: stop strings, the text cut before them, and
/// streaming that costs each token only its own bytes.
extension Generator {
    /// Appends the bytes of `row`'s new `id` to its text and returns the stop string the new text now
    /// contains, if any. An id the tokenizer cannot spell adds no text (decoding the ids reports it).
    func appendNewText(row b: Int, id: Int) -> StopStringMatch? {
        guard tokenizer != nil else { return nil }
        let before = newTexts[b].bytes.count
        do { try newTexts[b].append(id) } catch { return nil }
        if stopStrings.strings.isEmpty { return nil }
        return stopStrings.firstMatch(in: newTexts[b].bytes, newBytesFrom: before)
    }

    /// Where `row`'s new text ends: before the stop string that ended the row, else all of it (bytes).
    func newTextEnd(row: Int) -> Int {
        if case let .stopString(match)? = finishReasons[row] { return match.byteOffset }
        return newTexts[row].bytes.count
    }

    /// The row's whole text: its prompt's and its new ids' (pad ids included, as `tokenizer.decode` of the
    /// row gives them), or, when a stop string ended the row, its prompt's and the new text before it.
    /// Throws `unknownTokenID` for an id the tokenizer cannot spell (which streaming skipped).
    /// Precondition: the generator has a tokenizer.
    public func text(row: Int) throws(TokenizerError) -> String {
        guard let tokenizer else { preconditionFailure("Generator.text(row:) needs the tokenizer passed to init") }
        guard case let .stopString(match)? = finishReasons[row] else { return try tokenizer.decode(sequences[row]) }
        // every id is checked; the new text before the stop string follows the prompt's bytes
        let all = try tokenizer.decodeBytes(sequences[row])
        let promptByteCount = try tokenizer.decodeBytes(prompts[row / options.numReturnSequences]).count
        return String(decoding: all[..<(promptByteCount + match.byteOffset)], as: UTF8.self)
    }

    /// The row's new text not taken before that is safe to show now: whole characters only, and nothing
    /// that might turn out to start a stop string (so a stop string is never shown). Once the row has
    /// finished, the rest of its text (up to the stop string). Concatenated, the pieces are the row's new
    /// text as `text(row:)` ends it. Costs the bytes returned plus the longest stop string.
    /// Precondition: the generator has a tokenizer.
    public func takeNewText(row: Int) -> String {
        precondition(tokenizer != nil, "Generator.takeNewText(row:) needs the tokenizer passed to init")
        if finishReasons[row] != nil { return newTexts[row].remainingText(upTo: newTextEnd(row: row)) }
        let limit = stopStrings.strings.isEmpty ? nil : stopStrings.pendingStart(in: newTexts[row].bytes)
        return newTexts[row].nextText(upTo: limit)
    }
}
