/// Strings that end a row when its new text (the prompt excluded) contains one, searched in the UTF-8
/// bytes of the text as tokens arrive. A stop string can straddle tokens; each search looks only at the
/// bytes a new token added plus the longest stop string's length before them, so a step costs
/// O(token length + longest stop string) per stop string, not the whole text.
public struct StopStrings: Sendable, Equatable {
    /// The stop strings, in the order given.
    public let strings: [String]
    private let patterns: [[UInt8]]
    /// The longest stop string's length in bytes.
    public let longestByteCount: Int

    /// Stop strings as given; `GenerationOptions.validated()` refuses empty ones.
    public init(_ strings: [String]) {
        self.strings = strings
        patterns = strings.map { Array($0.utf8) }
        longestByteCount = patterns.map(\.count).max() ?? 0
    }

    /// Where the first stop string occurs in `text` when `text[..<newStart]` held none: the match that
    /// starts earliest (ties: the stop string listed first), with the byte offset where it starts.
    public func firstMatch(in text: [UInt8], newBytesFrom newStart: Int) -> StopStringMatch? {
        var best: StopStringMatch?
        for (index, pattern) in patterns.enumerated() where !pattern.isEmpty && pattern.count <= text.count {
            // a match not seen before ends after newStart, so it starts after newStart - count
            var start = max(0, newStart - pattern.count + 1)
            let lastStart = min(text.count - pattern.count, best.map { $0.byteOffset - 1 } ?? Int.max)
            while start <= lastStart {
                if text[start] == pattern[0] && Self.matches(pattern, in: text, at: start) {
                    best = StopStringMatch(index: index, string: strings[index], byteOffset: start)
                    break
                }
                start += 1
            }
        }
        return best
    }

    /// Where the longest end of `text` that is the beginning of some stop string starts (`text.count` when
    /// none is): text from there on might become a stop string, so a stream holds it back. Always a
    /// character boundary, since a stop string starts with one.
    public func pendingStart(in text: [UInt8]) -> Int {
        let longest = min(longestByteCount - 1, text.count)
        if longest <= 0 { return text.count }
        for start in (text.count - longest)..<text.count {
            let length = text.count - start
            for pattern in patterns where pattern.count > length && pattern[0] == text[start] {
                if Self.matches(pattern[..<length], in: text, at: start) { return start }
            }
        }
        return text.count
    }

    private static func matches(_ pattern: some RandomAccessCollection<UInt8>, in text: [UInt8], at start: Int) -> Bool {
        var i = start
        for byte in pattern {
            if text[i] != byte { return false }
            i += 1
        }
        return true
    }
}

/// A stop string found in a row's new text.
public struct StopStringMatch: Sendable, Equatable {
    /// Its position in the list of stop strings.
    public var index: Int
    /// The stop string.
    public var string: String
    /// Where it starts, in bytes from the start of the row's new text; the returned text ends there.
    public var byteOffset: Int

    /// A match of stop string `index` (`string`) at `byteOffset` of the row's new text.
    public init(index: Int, string: String, byteOffset: Int) {
        self.index = index
        self.string = string
        self.byteOffset = byteOffset
    }
}

/// Why a row stopped.
public enum FinishReason: Sendable, Equatable {
    /// It produced an EOS id.
    case endOfSequence
    /// It reached the maximum length.
    case length
    /// Its new text came to contain a stop string.
    case stopString(StopStringMatch)
}
