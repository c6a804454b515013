/// Turns token ids into text as they arrive, in time proportional to each token's length: a token's bytes
/// are appended, and `nextText` hands out only the bytes not handed out before, cut back to the end of
/// the last complete UTF-8 character (a character split over several tokens waits for its last byte).
///
/// The pieces concatenate to exactly `tokenizer.decode(ids)`: every cut falls where a lossy UTF-8 decoder
/// starts a fresh character, so invalid bytes become the same U+FFFD either way.
///
/// ```swift
/// var stream = IncrementalDetokenizer(tokenizer: tokenizer)
/// for id in ids { try stream.append(id); print(stream.nextText(), terminator: "") }
/// print(stream.remainingText())
/// ```
public struct IncrementalDetokenizer: Sendable {
    /// Spells the ids.
    public let tokenizer: GPT2Tokenizer
    /// The bytes of every id appended so far.
    public private(set) var bytes: [UInt8] = []
    /// How many of `bytes` `nextText` and `remainingText` have handed out.
    public private(set) var emittedByteCount = 0

    /// An empty stream spelled by `tokenizer`.
    public init(tokenizer: GPT2Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// Appends the bytes of `id`. Throws `unknownTokenID` for an id the tokenizer cannot spell (nothing is appended).
    public mutating func append(_ id: Int) throws(TokenizerError) {
        bytes.append(contentsOf: try tokenizer.decodeBytes([id]))
    }

    /// The text of the bytes not yet handed out, up to `limit` bytes from the start (all when nil), ending
    /// at a character boundary; marks them handed out. Empty when a character is still incomplete.
    /// `limit` must itself be a character boundary (the start of a stop string is one) and not behind
    /// what was already handed out.
    public mutating func nextText(upTo limit: Int? = nil) -> String {
        let end = limit ?? bytes.count
        precondition(end >= emittedByteCount && end <= bytes.count, "limit \(end) outside \(emittedByteCount)...\(bytes.count)")
        let cut = emittedByteCount + Self.completeUTF8PrefixLength(bytes[emittedByteCount..<end])
        return take(upTo: cut)
    }

    /// The text of every byte not yet handed out, up to `limit` (all when nil), an incomplete character at
    /// the end included (as U+FFFD); for the end of the stream.
    public mutating func remainingText(upTo limit: Int? = nil) -> String {
        let end = limit ?? bytes.count
        precondition(end >= emittedByteCount && end <= bytes.count, "limit \(end) outside \(emittedByteCount)...\(bytes.count)")
        return take(upTo: end)
    }

    private mutating func take(upTo end: Int) -> String {
        defer { emittedByteCount = end }
        return String(decoding: bytes[emittedByteCount..<end], as: UTF8.self)
    }

    /// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence that later
    /// bytes could still complete. The cut is always before a byte that is not a continuation byte, or
    /// after a sequence that is as long as its lead byte asks, so a lossy decoder restarts there.
    public static func completeUTF8PrefixLength(_ bytes: some BidirectionalCollection<UInt8>) -> Int {
        var index = bytes.endIndex
        var back = 0 // continuation bytes seen from the end
        while index > bytes.startIndex && back < 4 {
            let previous = bytes.index(before: index)
            let b = bytes[previous]
            if b & 0xC0 != 0x80 { // ASCII or a lead byte
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= need ? bytes.count : bytes.count - back - 1
            }
            index = previous
            back += 1
        }
        return bytes.count
    }
}
