import Foundation
import Tensors

/// GPT-2's byte-level BPE tokenizer, identical to the reference (transformers' `GPT2Tokenizer`,
/// tiktoken's `gpt2`) on every input.
///
/// A value type and `Sendable`: share it freely across threads. Each `encode` call borrows a
/// word cache from a pool, so repeated words are split by BPE only once per pool entry.
///
/// ```swift
/// let tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: "gpt2/"))
/// let ids = tokenizer.encode("Harry Potter is a series of")   // [18308, 14179, 318, 257, 2168, 286]
/// let text = try tokenizer.decode(ids)
/// ```
public struct GPT2Tokenizer: Sendable {
    /// The end-of-text token's spelling.
    public static let endOfText = "<|endoftext|>"

    let model: BPEModel
    /// Tokens matched in the text before BPE (`<|endoftext|>` and added tokens), by their bytes.
    private var specialTokens: [[UInt8]: Int] = [:]
    /// The same tokens as a byte trie: the longest one starting at a text position is found in time bounded
    /// by `maximumAddedTokenBytes`, whatever the number of tokens.
    private var specialTrie = SpecialTokenTrie()
    /// Whether some special token contains a newline (the parallel encoder then cannot cut at newlines).
    private var specialContainsNewline = false
    /// Bytes of added tokens whose ids lie past the BPE vocabulary.
    private var addedTokenBytes: [Int: [UInt8]] = [:]
    private let caches = CachePool()

    /// The id of `<|endoftext|>` (50256 for GPT-2).
    public let eosTokenID: TokenID
    /// The number of ids: the BPE vocabulary plus added tokens (50257 for GPT-2).
    public private(set) var vocabularySize: Int

    /// The longest added token accepted, in bytes.
    public static let maximumAddedTokenBytes = 1024

    // MARK: Loading

    /// Loads a folder holding `vocab.json` + `merges.txt`, or else `tokenizer.json`.
    public init(folder: URL) throws {
        let manager = FileManager.default
        let vocab = folder.appendingPathComponent("vocab.json")
        let merges = folder.appendingPathComponent("merges.txt")
        let json = folder.appendingPathComponent("tokenizer.json")
        if manager.fileExists(atPath: vocab.path), manager.fileExists(atPath: merges.path) {
            try self.init(vocabURL: vocab, mergesURL: merges)
        } else if manager.fileExists(atPath: json.path) {
            try self.init(tokenizerJSON: json)
        } else {
            throw TokenizerError.missingTokenizerFiles(folder: folder.path)
        }
    }

    /// Loads `vocab.json` and `merges.txt`; `<|endoftext|>` becomes a special token.
    public init(vocabURL: URL, mergesURL: URL) throws {
        let vocab = try Self.read(vocabURL)
        let merges = try Self.read(mergesURL)
        try self.init(vocabJSON: vocab, mergesText: merges,
                      vocabName: vocabURL.lastPathComponent, mergesName: mergesURL.lastPathComponent)
    }

    /// Loads a transformers fast-tokenizer file: `model.vocab`, `model.merges` (strings
    /// `"a b"` or pairs `["a", "b"]`) and `added_tokens`.
    public init(tokenizerJSON url: URL) throws {
        try self.init(tokenizerJSONData: try Self.read(url), name: url.lastPathComponent)
    }

    /// Builds a tokenizer from the bytes of `vocab.json` and `merges.txt`.
    public init(vocabJSON: Data, mergesText: Data, vocabName: String = "vocab.json", mergesName: String = "merges.txt")
        throws(TokenizerError)
    {
        let vocabulary = try TokenizerFiles.vocabulary(
            try TokenizerFiles.jsonObject(vocabJSON, file: vocabName), file: vocabName, key: nil)
        let merges = try TokenizerFiles.merges(text: mergesText, file: mergesName)
        let model = try TokenizerFiles.model(vocabulary: vocabulary, merges: merges,
                                             vocabularyFile: vocabName, mergesFile: mergesName)
        guard let eos = vocabulary[Self.endOfText] else { throw .missingToken(Self.endOfText) }
        self.model = model
        self.eosTokenID = eos
        self.vocabularySize = model.count
        registerSpecial(bytes: Array(Self.endOfText.utf8), id: eos)
    }

    /// Builds a tokenizer from the bytes of a `tokenizer.json`.
    public init(tokenizerJSONData data: Data, name: String = "tokenizer.json") throws(TokenizerError) {
        let (model, added) = try TokenizerFiles.tokenizerJSON(data, file: name)
        let endOfText = Array(Self.endOfText.utf8)
        guard let eos = added.last(where: { $0.content == Self.endOfText })?.id ?? model.id(of: endOfText) else {
            throw .missingToken(Self.endOfText)
        }
        self.model = model
        self.vocabularySize = model.count
        self.eosTokenID = eos
        registerSpecial(bytes: endOfText, id: eos)
        for (index, token) in added.enumerated() {
            let bytes = Array(token.content.utf8)
            guard !bytes.isEmpty, bytes.count <= Self.maximumAddedTokenBytes else {
                throw .invalidKey(file: name, key: "added_tokens[\(index)].content",
                                  expected: "a token of 1 to \(Self.maximumAddedTokenBytes) bytes")
            }
            if token.id < model.count {
                guard model.bytes(of: token.id) == bytes else {
                    throw .invalidKey(file: name, key: "added_tokens[\(index)].id",
                                      expected: "the id model.vocab gives '\(token.content)'")
                }
            } else {
                if let existing = addedTokenBytes[token.id], existing != bytes {
                    throw .duplicateTokenID(file: name, id: token.id, first: String(decoding: existing, as: UTF8.self),
                                            second: token.content)
                }
                addedTokenBytes[token.id] = bytes
                vocabularySize = max(vocabularySize, token.id + 1)
            }
            registerSpecial(bytes: bytes, id: token.id)
        }
    }

    private static func read(_ url: URL) throws -> Data {
        do {
            return Data(try InputFile.readBytes(url.path, maximumBytes: InputLimits.maximumTokenizerFileBytes))
        } catch {
            throw TokenizerError.unreadableFile(path: url.path, reason: error.reason)
        }
    }

    private mutating func registerSpecial(bytes: [UInt8], id: Int) {
        specialTokens[bytes] = id
        specialTrie.insert(bytes, id: id)
        if bytes.contains(0x0A) { specialContainsNewline = true }
    }

    // MARK: Vocabulary

    /// Adds tokens that are matched in the text before BPE (as transformers' `add_tokens`).
    ///
    /// A token already in the vocabulary keeps its id; a new one gets the next free id
    /// (`[PAD]` becomes 50257 for GPT-2). Returns each token's id, in order.
    @discardableResult
    public mutating func addTokens(_ tokens: [String]) throws(TokenizerError) -> [TokenID] {
        var ids: [Int] = []
        for token in tokens {
            guard !token.isEmpty else { throw TokenizerError.emptyAddedToken }
            let bytes = Array(token.utf8)
            guard bytes.count <= Self.maximumAddedTokenBytes else {
                throw TokenizerError.addedTokenTooLong(bytes: bytes.count, limit: Self.maximumAddedTokenBytes)
            }
            let id: Int
            if let existing = tokenID(for: token) {
                id = existing
            } else {
                id = vocabularySize
                addedTokenBytes[id] = bytes
                vocabularySize += 1
            }
            registerSpecial(bytes: bytes, id: id)
            ids.append(id)
        }
        return ids
    }

    /// The id of a whole token: an added/special token by its text, or a vocabulary token by the
    /// text its bytes spell (`" the"` → 262).
    public func tokenID(for token: String) -> Int? {
        let bytes = Array(token.utf8)
        if let special = specialTokens[bytes] { return special }
        return model.id(of: bytes)
    }

    /// Every token's text in id order as `vocab.json` spells it: BPE tokens in GPT-2's byte-to-unicode stand-ins,
    /// added tokens as written. With `specialIDs`, the ids of `<|endoftext|>` and added tokens.
    public var vocabularyTokens: (tokens: [String], specialIDs: Set<Int>) {
        var tokens: [String] = []
        tokens.reserveCapacity(vocabularySize)
        for id in 0..<model.count {
            let start = Int(model.tokenOffsets[id]), end = Int(model.tokenOffsets[id + 1])
            tokens.append(ByteEncoder.encode(model.tokenBytes[start ..< end]))
        }
        for id in model.count ..< vocabularySize {
            tokens.append(addedTokenBytes[id].map { String(decoding: $0, as: UTF8.self) } ?? "")
        }
        var special = Set(specialTokens.values)
        special.insert(eosTokenID)
        return (tokens, special)
    }

    /// The merges in rank order, as `merges.txt` lines ("Ġ t").
    public var mergeRules: [String] {
        model.merges.rankedPairs().map { pair in
            let token = { (id: Int32) -> String in
                let start = Int(self.model.tokenOffsets[Int(id)]), end = Int(self.model.tokenOffsets[Int(id) + 1])
                return ByteEncoder.encode(self.model.tokenBytes[start ..< end])
            }
            return token(pair.left) + " " + token(pair.right)
        }
    }

    // MARK: Encoding

    /// The ids of `text`.
    ///
    /// - Parameters:
    ///   - text: the text to encode.
    ///   - allowSpecial: when true (the default, as transformers does), `<|endoftext|>`
    ///     and added tokens written in the text become their ids; when false every byte is plain
    ///     text, as tiktoken's `encode_ordinary`.
    public func encode(_ text: String, allowSpecial: Bool = true) -> [TokenID] {
        var cache = caches.take()
        defer { caches.give(cache) }
        return encode(text, allowSpecial: allowSpecial, cache: &cache)
    }

    /// The ids of each text, computed on up to `threadCount` threads (texts are split into
    /// contiguous groups of about equal byte count). The result is in input order.
    public func encode(batch texts: [String], allowSpecial: Bool = true, threadCount: Int = 2) -> [[TokenID]] {
        let workers = max(1, min(threadCount, texts.count))
        if workers == 1 { return texts.map { encode($0, allowSpecial: allowSpecial) } }
        var bounds = [0]
        let total = texts.reduce(0) { $0 + $1.utf8.count }
        var running = 0
        for (index, text) in texts.enumerated() where bounds.count < workers {
            running += text.utf8.count
            if running * workers >= total * bounds.count, index + 1 < texts.count { bounds.append(index + 1) }
        }
        bounds.append(texts.count)
        let results = UnsafeMutablePointer<[Int]>.allocate(capacity: texts.count)
        results.initialize(repeating: [], count: texts.count)
        defer {
            results.deinitialize(count: texts.count)
            results.deallocate()
        }
        let output = SendablePointer(results)
        let groups = bounds.count - 1
        let groupBounds = bounds
        DispatchQueue.concurrentPerform(iterations: groups) { group in
            var cache = caches.take()
            defer { caches.give(cache) }
            for index in groupBounds[group]..<groupBounds[group + 1] {
                output.pointer[index] = encode(texts[index], allowSpecial: allowSpecial, cache: &cache)
            }
        }
        return Array(UnsafeBufferPointer(start: results, count: texts.count))
    }

    private func encode(_ text: String, allowSpecial: Bool, cache: inout WordCache) -> [Int] {
        var text = text
        var output: [Int] = []
        output.reserveCapacity(text.utf8.count / 3 + 1)
        text.withUTF8 { buffer in
            encode(buffer, 0..<buffer.count, allowSpecial: allowSpecial, cache: &cache, into: &output)
        }
        return output
    }

    private func encode(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, allowSpecial: Bool,
                        cache: inout WordCache, into output: inout [Int]) {
        guard allowSpecial, !specialTokens.isEmpty, let base = buffer.baseAddress else {
            model.encodeOrdinary(buffer, range, cache: &cache, into: &output)
            return
        }
        var segmentStart = range.lowerBound
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            if specialTrie.startsToken[Int(base[i])], let match = specialTrie.longestMatch(base + i, end - i) {
                model.encodeOrdinary(buffer, segmentStart..<i, cache: &cache, into: &output)
                output.append(match.id)
                i += match.length
                segmentStart = i
            } else {
                i += 1
            }
        }
        model.encodeOrdinary(buffer, segmentStart..<end, cache: &cache, into: &output)
    }

    /// The ids of one large text, computed on up to `threadCount` threads; equal to
    /// `encode(text, allowSpecial:)`.
    ///
    /// The text is cut only where the pre-tokenizer's result cannot depend on the cut: before a
    /// newline that follows a non-space scalar (a piece always ends there, and the scanner only
    /// looks forward). If a special token contains a newline, or no such cut exists, one thread
    /// does the work.
    public func encode(_ text: String, allowSpecial: Bool = true, threadCount: Int) -> [TokenID] {
        var text = text
        return text.withUTF8 { buffer in
            let count = buffer.count
            let canCut = !(allowSpecial && specialContainsNewline)
            var cuts = [0]
            if canCut, threadCount > 1, count >= 1 << 16 {
                for part in 1..<threadCount {
                    if let cut = Self.safeCut(in: buffer, near: count * part / threadCount, after: cuts[cuts.count - 1]) {
                        cuts.append(cut)
                    }
                }
            }
            cuts.append(count)
            let groups = cuts.count - 1
            var results = [[Int]](repeating: [], count: groups)
            results.withUnsafeMutableBufferPointer { results in
                guard let base = results.baseAddress else { return }
                let output = SendablePointer(base)
                let input = SendableBuffer(buffer)
                let groupCuts = cuts
                DispatchQueue.concurrentPerform(iterations: groups) { group in
                    var cache = caches.take()
                    defer { caches.give(cache) }
                    var ids: [Int] = []
                    ids.reserveCapacity((groupCuts[group + 1] - groupCuts[group]) / 3 + 1)
                    encode(input.buffer, groupCuts[group]..<groupCuts[group + 1], allowSpecial: allowSpecial,
                           cache: &cache, into: &ids)
                    output.pointer[group] = ids
                }
            }
            if results.count == 1 { return results[0] }
            var joined: [Int] = []
            joined.reserveCapacity(results.reduce(0) { $0 + $1.count })
            for part in results { joined.append(contentsOf: part) }
            return joined
        }
    }

    /// The first offset at or after `target` (and after `previous`) that holds a newline
    /// preceded by a byte that ends a non-space scalar.
    private static func safeCut(in buffer: UnsafeBufferPointer<UInt8>, near target: Int, after previous: Int) -> Int? {
        var i = max(target, previous + 1)
        while i < buffer.count {
            if buffer[i] == 0x0A, i > 0, Self.endsNonSpace(buffer, at: i) { return i }
            i += 1
        }
        return nil
    }

    /// The last offset in `buffer` (after 0) that holds a newline preceded by a byte that ends a non-space
    /// scalar: the text before it and the text from it encode (without special tokens, or with special tokens
    /// free of newlines) to the ids of the whole, so a long document may be encoded piece by piece. Nil when
    /// there is none.
    package static func lastSafeCut(in buffer: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = buffer.count - 1
        while i > 0 {
            if buffer[i] == 0x0A, Self.endsNonSpace(buffer, at: i) { return i }
            i -= 1
        }
        return nil
    }

    /// Whether the scalar ending just before offset `i` is not white space.
    private static func endsNonSpace(_ buffer: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        var start = i - 1
        while start > 0, buffer[start] & 0xC0 == 0x80 { start -= 1 }
        let length = i - start
        var value: UInt32 = 0
        switch length {
        case 1: value = UInt32(buffer[start])
        case 2: value = (UInt32(buffer[start] & 0x1F) << 6) | UInt32(buffer[start + 1] & 0x3F)
        case 3: value = (UInt32(buffer[start] & 0x0F) << 12) | (UInt32(buffer[start + 1] & 0x3F) << 6) | UInt32(buffer[start + 2] & 0x3F)
        default: return true  // astral scalars: none is white space
        }
        guard let scalar = Unicode.Scalar(value) else { return false }
        return !scalar.properties.isWhitespace
    }


    // MARK: Decoding

    /// The bytes the ids spell, concatenated.
    public func decodeBytes(_ ids: [TokenID]) throws(TokenizerError) -> [UInt8] {
        let count = try decodedByteCount(ids)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            copyBytes(of: ids, into: buffer)
            initialized = count
        }
    }

    /// The total byte length of the ids; throws on the first unknown id.
    private func decodedByteCount(_ ids: [Int]) throws(TokenizerError) -> Int {
        let vocabularyCount = model.count
        var total = 0
        var failure: Int?
        model.tokenOffsets.withUnsafeBufferPointer { offsets in
            for id in ids {
                if id >= 0, id < vocabularyCount {
                    total += Int(offsets[id + 1] - offsets[id])
                } else if let added = addedTokenBytes[id] {
                    total += added.count
                } else {
                    failure = id
                    return
                }
            }
        }
        if let failure { throw .unknownTokenID(failure) }
        return total
    }

    /// Copies the bytes of already-validated ids into `buffer`, which holds exactly their length.
    private func copyBytes(of ids: [Int], into buffer: UnsafeMutableBufferPointer<UInt8>) {
        guard let destination = buffer.baseAddress else { return }
        let vocabularyCount = model.count
        var position = 0
        model.tokenBytes.withUnsafeBufferPointer { arena in
            model.tokenOffsets.withUnsafeBufferPointer { offsets in
                guard let source = arena.baseAddress else { return }
                for id in ids {
                    if id < vocabularyCount {
                        let start = Int(offsets[id])
                        let length = Int(offsets[id + 1]) - start
                        (destination + position).initialize(from: source + start, count: length)
                        position += length
                    } else if let added = addedTokenBytes[id] {
                        added.withUnsafeBufferPointer { bytes in
                            guard let base = bytes.baseAddress else { return }
                            (destination + position).initialize(from: base, count: bytes.count)
                        }
                        position += added.count
                    }
                }
            }
        }
        precondition(position == buffer.count, "decoded \(position) bytes into a buffer of \(buffer.count)")
    }

    /// The bytes the ids spell, concatenated.
    public func decodeBytes(_ ids: some Sequence<Int>) throws(TokenizerError) -> [UInt8] {
        try decodeBytes(Array(ids))
    }

    /// The text the ids spell; byte sequences that are not valid UTF-8 become U+FFFD, as
    /// the reference's `errors="replace"` does.
    public func decode(_ ids: [TokenID]) throws(TokenizerError) -> String {
        let count = try decodedByteCount(ids)
        // Copies straight into the string's storage; invalid UTF-8 is repaired with U+FFFD.
        return String(unsafeUninitializedCapacity: count) { buffer in
            copyBytes(of: ids, into: buffer)
            return count
        }
    }

    /// The text the ids spell; byte sequences that are not valid UTF-8 become U+FFFD, as
    /// the reference's `errors="replace"` does.
    public func decode(_ ids: some Sequence<Int>) throws(TokenizerError) -> String {
        try decode(Array(ids))
    }

    /// Validates UTF-8 input (such as a file to tokenize), naming the first bad byte's offset.
    public static func text(fromUTF8 bytes: some Collection<UInt8>) throws(TokenizerError) -> String {
        let array = Array(bytes)
        if let offset = UTF8Validation.firstInvalidOffset(array) { throw .invalidUTF8(offset: offset) }
        return String(decoding: array, as: UTF8.self)
    }
}

extension BPEModel {
    /// Bytes of a vocabulary token.
    func bytes(of id: Int) -> [UInt8] {
        Array(tokenBytes[Int(tokenOffsets[id])..<Int(tokenOffsets[id + 1])])
    }

    /// The id of the vocabulary token spelled by `bytes`.
    func id(of bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return nil }
            return vocabulary.value(for: base, buffer.count, hash: PieceTable.hash(base, buffer.count)).map { Int($0) }
        }
    }
}

/// A pointer handed to worker threads that write disjoint elements.
private struct SendablePointer<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
    init(_ pointer: UnsafeMutablePointer<Element>) { self.pointer = pointer }
}

/// A read-only buffer handed to worker threads.
private struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeBufferPointer<UInt8>
    init(_ buffer: UnsafeBufferPointer<UInt8>) { self.buffer = buffer }
}

/// A thread-safe pool of word caches.
final class CachePool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [WordCache] = []

    func take() -> WordCache {
        lock.lock()
        defer { lock.unlock() }
        return free.popLast() ?? WordCache()
    }

    func give(_ cache: WordCache) {
        lock.lock()
        defer { lock.unlock() }
        if free.count < 8 { free.append(cache) }
    }
}

/// Strict UTF-8 validation (no overlongs, surrogates or scalars past U+10FFFF).
enum UTF8Validation {
    /// The offset where the first invalid sequence starts, or `nil` if all is valid.
    static func firstInvalidOffset(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { b in
            let n = b.count
            var i = 0
            while i < n {
                let b0 = b[i]
                if b0 < 0x80 { i += 1; continue }
                let length: Int
                var low: UInt8 = 0x80
                var high: UInt8 = 0xBF
                switch b0 {
                case 0xC2...0xDF: length = 2
                case 0xE0: length = 3; low = 0xA0
                case 0xE1...0xEC, 0xEE...0xEF: length = 3
                case 0xED: length = 3; high = 0x9F
                case 0xF0: length = 4; low = 0x90
                case 0xF1...0xF3: length = 4
                case 0xF4: length = 4; high = 0x8F
                default: return i
                }
                guard i + length <= n else { return i }
                if b[i + 1] < low || b[i + 1] > high { return i }
                for k in 2..<max(length, 2) where b[i + k] & 0xC0 != 0x80 { return i }
                i += length
            }
            return nil
        }
    }
}

/// Special and added tokens as a byte trie, for leftmost-longest matching in the text before BPE.
struct SpecialTokenTrie: Sendable {
    /// Children of each node by byte.
    private var children: [[UInt8: Int32]] = [[:]]
    /// The token id that ends at each node, or -1.
    private var ids: [Int] = [-1]
    /// `startsToken[b]` is true when some token starts with byte `b` (a fast test before the trie walk).
    private(set) var startsToken = [Bool](repeating: false, count: 256)

    /// Adds (or re-numbers) a token.
    mutating func insert(_ bytes: [UInt8], id: Int) {
        guard let first = bytes.first else { return }
        startsToken[Int(first)] = true
        var node = 0
        for byte in bytes {
            if let next = children[node][byte] {
                node = Int(next)
            } else {
                children.append([:])
                ids.append(-1)
                let next = children.count - 1
                children[node][byte] = Int32(next)
                node = next
            }
        }
        ids[node] = id
    }

    /// The longest token that the `available` bytes at `start` begin with.
    @inline(never)
    func longestMatch(_ start: UnsafePointer<UInt8>, _ available: Int) -> (id: Int, length: Int)? {
        var node = 0
        var best: (id: Int, length: Int)?
        var offset = 0
        while offset < available, let next = children[node][start[offset]] {
            node = Int(next)
            offset += 1
            if ids[node] >= 0 { best = (ids[node], offset) }
        }
        return best
    }
}
