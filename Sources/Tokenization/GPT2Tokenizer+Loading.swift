import Foundation

/// A merge as read from a file: its two parts and where it was written.
struct MergeEntry {
    var left: String
    var right: String
    var location: String
}

/// Parsed vocabulary/merge files, validated before the BPE tables are built.
enum TokenizerFiles {
    static func jsonObject(_ data: Data, file: String) throws(TokenizerError) -> Any {
        do {
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw .invalidJSON(file: file, reason: "\(error.localizedDescription)")
        }
    }

    /// A non-negative integer from a JSON number (not a fraction).
    static func integer(_ value: Any) -> Int? {
        // JSON true/false also arrive as NSNumber (objCType "c"); they are not ids.
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        let double = number.doubleValue
        guard double >= 0, double < Double(Int32.max), double.rounded() == double else { return nil }
        return Int(double)
    }

    static func vocabulary(_ object: Any, file: String, key: String?) throws(TokenizerError) -> [String: Int] {
        guard let dictionary = object as? [String: Any] else {
            if let key { throw .invalidKey(file: file, key: key, expected: "an object of token → id") }
            throw .invalidJSON(file: file, reason: "top level is not an object of token → id")
        }
        var result: [String: Int] = [:]
        result.reserveCapacity(dictionary.count)
        for (token, value) in dictionary {
            guard let id = integer(value) else {
                throw .invalidTokenID(file: file, key: key.map { "\($0).\(token)" } ?? token)
            }
            result[token] = id
        }
        return result
    }

    static func merges(text data: Data, file: String) throws(TokenizerError) -> [MergeEntry] {
        guard let text = String(data: data, encoding: .utf8) else {
            throw .invalidJSON(file: file, reason: "not utf-8 text")
        }
        var entries: [MergeEntry] = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty || (lineNumber == 1 && line.hasPrefix("#version")) { continue }
            entries.append(try mergeEntry(line, file: file, location: "line \(lineNumber)"))
        }
        return entries
    }

    static func mergeEntry(_ line: Substring, file: String, location: String) throws(TokenizerError) -> MergeEntry {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .malformedMerge(file: file, location: location, text: String(line))
        }
        return MergeEntry(left: String(parts[0]), right: String(parts[1]), location: location)
    }

    /// Builds the model; `vocabulary` maps stand-in spellings to ids.
    static func model(vocabulary: [String: Int], merges: [MergeEntry], vocabularyFile: String, mergesFile: String)
        throws(TokenizerError) -> BPEModel
    {
        var keyForID = [String?](repeating: nil, count: vocabulary.count)
        var bytesForID = [[UInt8]](repeating: [], count: vocabulary.count)
        // Sorted so the error for a bad file is deterministic.
        for (token, id) in vocabulary.sorted(by: { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            guard id < vocabulary.count else {
                // Some id below count must then be missing; find it for the message.
                let missing = keyForID.firstIndex(where: { $0 == nil }) ?? id
                if let first = keyForID[missing] { throw .duplicateTokenID(file: vocabularyFile, id: missing, first: first, second: token) }
                throw .nonContiguousIDs(file: vocabularyFile, missingID: missing)
            }
            if let first = keyForID[id] {
                throw .duplicateTokenID(file: vocabularyFile, id: id, first: first, second: token)
            }
            guard let bytes = ByteEncoder.decode(token), !bytes.isEmpty else {
                throw .tokenNotByteEncoded(file: vocabularyFile, key: token)
            }
            guard bytes.count <= 1024 else {
                throw .invalidKey(file: vocabularyFile, key: token, expected: "a token of at most 1024 bytes")
            }
            keyForID[id] = token
            bytesForID[id] = bytes
        }
        var table = PieceTable(minimumCapacity: vocabulary.count)
        var tokenBytes: [UInt8] = []
        var tokenOffsets: [Int32] = [0]
        tokenOffsets.reserveCapacity(vocabulary.count + 1)
        for (id, bytes) in bytesForID.enumerated() {
            bytes.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                let hash = PieceTable.hash(base, buffer.count)
                if table.value(for: base, buffer.count, hash: hash) == nil {
                    table.insert(base, buffer.count, hash: hash, value: UInt32(id))
                }
            }
            tokenBytes.append(contentsOf: bytes)
            tokenOffsets.append(Int32(tokenBytes.count))
        }
        var byteIDs = [Int32](repeating: 0, count: 256)
        for byte in 0..<256 {
            let token = String(ByteEncoder.scalars[byte])
            guard let id = vocabulary[token] else { throw .missingToken(token) }
            byteIDs[byte] = Int32(id)
        }
        var mergeTable = MergeTable(capacity: max(merges.count, 1))
        for (rank, merge) in merges.enumerated() {
            guard let left = vocabulary[merge.left] else {
                throw .mergePartNotInVocabulary(file: mergesFile, location: merge.location, part: merge.left)
            }
            guard let right = vocabulary[merge.right] else {
                throw .mergePartNotInVocabulary(file: mergesFile, location: merge.location, part: merge.right)
            }
            guard let merged = vocabulary[merge.left + merge.right] else {
                throw .mergeResultNotInVocabulary(file: mergesFile, location: merge.location, token: merge.left + merge.right)
            }
            // A repeated pair keeps its first (lowest) rank.
            _ = mergeTable.insert(left: Int32(left), right: Int32(right), rank: Int32(rank), merged: Int32(merged))
        }
        return BPEModel(vocabulary: table, merges: mergeTable, byteIDs: byteIDs, tokenBytes: tokenBytes, tokenOffsets: tokenOffsets)
    }

    /// Reads `tokenizer.json`: `model.vocab`, `model.merges` (strings or pairs), `added_tokens`.
    static func tokenizerJSON(_ data: Data, file: String) throws(TokenizerError)
        -> (model: BPEModel, added: [(content: String, id: Int)])
    {
        guard let root = try jsonObject(data, file: file) as? [String: Any] else {
            throw .invalidJSON(file: file, reason: "top level is not an object")
        }
        guard let modelObject = root["model"] as? [String: Any] else {
            throw .invalidKey(file: file, key: "model", expected: "an object")
        }
        if let type = modelObject["type"] as? String, type != "BPE" {
            throw .invalidKey(file: file, key: "model.type", expected: "\"BPE\"")
        }
        guard let vocabObject = modelObject["vocab"] else {
            throw .invalidKey(file: file, key: "model.vocab", expected: "an object of token → id")
        }
        let vocabulary = try vocabulary(vocabObject, file: file, key: "model.vocab")
        guard let mergeList = modelObject["merges"] as? [Any] else {
            throw .invalidKey(file: file, key: "model.merges", expected: "an array of merges")
        }
        var merges: [MergeEntry] = []
        merges.reserveCapacity(mergeList.count)
        for (index, item) in mergeList.enumerated() {
            let location = "model.merges[\(index)]"
            if let text = item as? String {
                merges.append(try mergeEntry(Substring(text), file: file, location: location))
            } else if let pair = item as? [Any], pair.count == 2, let left = pair[0] as? String, let right = pair[1] as? String,
                      !left.isEmpty, !right.isEmpty {
                merges.append(MergeEntry(left: left, right: right, location: location))
            } else {
                throw .malformedMerge(file: file, location: location, text: "\(item)")
            }
        }
        let model = try model(vocabulary: vocabulary, merges: merges, vocabularyFile: file, mergesFile: file)
        var added: [(content: String, id: Int)] = []
        if let addedObject = root["added_tokens"], !(addedObject is NSNull) {
            guard let addedList = addedObject as? [Any] else {
                throw .invalidKey(file: file, key: "added_tokens", expected: "an array")
            }
            for (index, item) in addedList.enumerated() {
                guard let entry = item as? [String: Any] else {
                    throw .invalidKey(file: file, key: "added_tokens[\(index)]", expected: "an object")
                }
                guard let rawID = entry["id"], let id = integer(rawID) else {
                    throw .invalidKey(file: file, key: "added_tokens[\(index)].id", expected: "a non-negative integer")
                }
                guard let content = entry["content"] as? String, !content.isEmpty else {
                    throw .invalidKey(file: file, key: "added_tokens[\(index)].content", expected: "a non-empty string")
                }
                added.append((content, id))
            }
        }
        return (model, added)
    }
}
