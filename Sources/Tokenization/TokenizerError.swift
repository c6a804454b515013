/// Every way loading a tokenizer, encoding a file or decoding ids can fail on bad input.
///
/// Cases carry their context (file, line, key, offset); the message text lives in
/// ``description`` only.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file could not be read.
    case unreadableFile(path: String, reason: String)
    /// A tokenizer folder holds neither `vocab.json` + `merges.txt` nor `tokenizer.json`.
    case missingTokenizerFiles(folder: String)
    /// A JSON file did not parse, or its top level has the wrong shape.
    case invalidJSON(file: String, reason: String)
    /// A required key is absent or has the wrong type (`key` is a dotted path).
    case invalidKey(file: String, key: String, expected: String)
    /// A vocabulary entry's id is not a non-negative integer.
    case invalidTokenID(file: String, key: String)
    /// Two vocabulary entries share one id.
    case duplicateTokenID(file: String, id: Int, first: String, second: String)
    /// The vocabulary's ids are not exactly `0..<count`.
    case nonContiguousIDs(file: String, missingID: Int)
    /// A vocabulary token holds a character outside GPT-2's 256 byte stand-ins.
    case tokenNotByteEncoded(file: String, key: String)
    /// A merge is not two space-separated parts. `location` is `line N` (1-based) for
    /// `merges.txt` and `model.merges[i]` for `tokenizer.json`.
    case malformedMerge(file: String, location: String, text: String)
    /// A merge names a part that is not in the vocabulary.
    case mergePartNotInVocabulary(file: String, location: String, part: String)
    /// A merge's concatenation is not in the vocabulary.
    case mergeResultNotInVocabulary(file: String, location: String, token: String)
    /// A required token (such as `<|endoftext|>`) is not in the vocabulary.
    case missingToken(String)
    /// An added token is empty.
    case emptyAddedToken
    /// An added token is longer than `limit` bytes (matching cost grows with the longest token).
    case addedTokenTooLong(bytes: Int, limit: Int)
    /// Input bytes are not valid UTF-8; `offset` is the first bad byte.
    case invalidUTF8(offset: Int)
    /// An id to decode is outside the vocabulary.
    case unknownTokenID(Int)

    /// The message `gpt2kit` prints, naming the file or token.
    public var description: String {
        switch self {
        case let .addedTokenTooLong(bytes, limit):
            return "added token of \(bytes) bytes: at most \(limit) are allowed"
        case let .unreadableFile(path, reason):
            return "cannot read '\(path)': \(reason)"
        case let .missingTokenizerFiles(folder):
            return "tokenizer folder '\(folder)': expected vocab.json and merges.txt, or tokenizer.json"
        case let .invalidJSON(file, reason):
            return "'\(file)': invalid json: \(reason)"
        case let .invalidKey(file, key, expected):
            return "'\(file)': key '\(key)': expected \(expected)"
        case let .invalidTokenID(file, key):
            return "'\(file)': key '\(key)': id is not a non-negative integer"
        case let .duplicateTokenID(file, id, first, second):
            return "'\(file)': duplicate id \(id) for keys '\(first)' and '\(second)'"
        case let .nonContiguousIDs(file, missingID):
            return "'\(file)': ids are not contiguous, id \(missingID) is missing"
        case let .tokenNotByteEncoded(file, key):
            return "'\(file)': key '\(key)': character outside the gpt-2 byte encoder"
        case let .malformedMerge(file, location, text):
            return "'\(file)': \(location): malformed merge '\(text)'"
        case let .mergePartNotInVocabulary(file, location, part):
            return "'\(file)': \(location): merge part '\(part)' is not in the vocabulary"
        case let .mergeResultNotInVocabulary(file, location, token):
            return "'\(file)': \(location): merged token '\(token)' is not in the vocabulary"
        case let .missingToken(token):
            return "token '\(token)' is not in the vocabulary"
        case .emptyAddedToken:
            return "added token is empty"
        case let .invalidUTF8(offset):
            return "input is not valid utf-8 at byte offset \(offset)"
        case let .unknownTokenID(id):
            return "unknown token id \(id)"
        }
    }
}
