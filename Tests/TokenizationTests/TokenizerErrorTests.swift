import Foundation
import Testing
@testable import Tokenization

/// A hand-built vocabulary: the 256 byte tokens (id = byte), "he" 256, "ll" 257, "hell" 258, "<|endoftext|>" 259.
func tinyVocabulary() -> [String: Int] {
    var vocabulary: [String: Int] = [:]
    for byte in 0..<256 { vocabulary[String(ByteEncoder.scalars[byte])] = byte }
    vocabulary["he"] = 256
    vocabulary["ll"] = 257
    vocabulary["hell"] = 258
    vocabulary[GPT2Tokenizer.endOfText] = 259
    return vocabulary
}

let tinyMerges = "#version: 0.2\nh e\nl l\nhe ll\n"

func jsonData(_ object: Any) throws -> Data {
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}

func tinyTokenizer(vocabulary: [String: Int] = tinyVocabulary(), merges: String = tinyMerges) throws -> GPT2Tokenizer {
    try GPT2Tokenizer(vocabJSON: try jsonData(vocabulary), mergesText: Data(merges.utf8))
}

/// The error a throwing expression raises, if it is a `TokenizerError`.
func tokenizerError(_ body: () throws -> Void) -> TokenizerError? {
    do {
        try body()
        return nil
    } catch let error as TokenizerError {
        return error
    } catch {
        return nil
    }
}

@Suite("Tokenizer errors")
struct TokenizerErrorTests {
    @Test("the hand-built tokenizer works, so the failures below are the files' fault")
    func tinyWorks() throws {
        let tokenizer = try tinyTokenizer()
        #expect(tokenizer.encode("hello") == [258, 0x6F])
        #expect(tokenizer.encode("hello<|endoftext|>") == [258, 0x6F, 259])
        #expect(try tokenizer.decode([258, 0x6F]) == "hello")
    }

    @Test("a merge part missing from the vocabulary names the line")
    func mergePartMissing() {
        let error = tokenizerError { _ = try tinyTokenizer(merges: "#version: 0.2\nh e\nhe xyz\n") }
        #expect(error == .mergePartNotInVocabulary(file: "merges.txt", location: "line 3", part: "xyz"))
        #expect(error?.description == "'merges.txt': line 3: merge part 'xyz' is not in the vocabulary")
    }

    @Test("a merge whose result is not in the vocabulary names the line")
    func mergeResultMissing() {
        let error = tokenizerError { _ = try tinyTokenizer(merges: "#version: 0.2\nh e\nx y\n") }
        #expect(error == .mergeResultNotInVocabulary(file: "merges.txt", location: "line 3", token: "xy"))
    }

    @Test("a merge line without exactly two parts names the line")
    func malformedMerge() {
        let error = tokenizerError { _ = try tinyTokenizer(merges: "#version: 0.2\nh e\nl l l\n") }
        #expect(error == .malformedMerge(file: "merges.txt", location: "line 3", text: "l l l"))
    }

    @Test("duplicate ids name both keys")
    func duplicateID() {
        var vocabulary = tinyVocabulary()
        vocabulary["hex"] = 257
        let error = tokenizerError { _ = try tinyTokenizer(vocabulary: vocabulary) }
        #expect(error == .duplicateTokenID(file: "vocab.json", id: 257, first: "hex", second: "ll"))
    }

    @Test("an id that is not an integer names the key")
    func nonIntegerID() throws {
        var object: [String: Any] = tinyVocabulary()
        object["he"] = "256"
        let error = tokenizerError {
            _ = try GPT2Tokenizer(vocabJSON: try jsonData(object), mergesText: Data(tinyMerges.utf8))
        }
        #expect(error == .invalidTokenID(file: "vocab.json", key: "he"))
    }

    @Test("a gap in the ids is reported")
    func gap() {
        var vocabulary = tinyVocabulary()
        vocabulary["hell"] = 300
        let error = tokenizerError { _ = try tinyTokenizer(vocabulary: vocabulary) }
        #expect(error == .nonContiguousIDs(file: "vocab.json", missingID: 258))
    }

    @Test("a token outside the byte stand-ins names the key")
    func notByteEncoded() {
        var vocabulary = tinyVocabulary()
        vocabulary["a b"] = 260
        let error = tokenizerError { _ = try tinyTokenizer(vocabulary: vocabulary) }
        #expect(error == .tokenNotByteEncoded(file: "vocab.json", key: "a b"))
    }

    @Test("a token longer than 1024 bytes names the key")
    func tokenTooLong() {
        var vocabulary = tinyVocabulary()
        let long = String(repeating: "a", count: 1025)
        vocabulary[long] = 260
        let error = tokenizerError { _ = try tinyTokenizer(vocabulary: vocabulary) }
        #expect(error == .invalidKey(file: "vocab.json", key: long, expected: "a token of at most 1024 bytes"))
    }

    @Test("bad json is reported with the file name")
    func badJSON() {
        let error = tokenizerError {
            _ = try GPT2Tokenizer(vocabJSON: Data("{\"a\": 1,".utf8), mergesText: Data(tinyMerges.utf8))
        }
        guard case let .invalidJSON(file, _)? = error else {
            Issue.record("expected invalidJSON, got \(String(describing: error))")
            return
        }
        #expect(file == "vocab.json")
        let notObject = tokenizerError {
            _ = try GPT2Tokenizer(vocabJSON: Data("[1, 2]".utf8), mergesText: Data(tinyMerges.utf8))
        }
        #expect(notObject == .invalidJSON(file: "vocab.json", reason: "top level is not an object of token → id"))
    }

    @Test("a vocabulary without <|endoftext|> is rejected")
    func missingEndOfText() {
        var vocabulary = tinyVocabulary()
        vocabulary[GPT2Tokenizer.endOfText] = nil
        let error = tokenizerError { _ = try tinyTokenizer(vocabulary: vocabulary) }
        #expect(error == .missingToken("<|endoftext|>"))
    }

    @Test("tokenizer.json errors name the key")
    func tokenizerJSONKeys() throws {
        let noVocab = tokenizerError {
            _ = try GPT2Tokenizer(tokenizerJSONData: try jsonData(["model": ["type": "BPE", "merges": []]]))
        }
        #expect(noVocab == .invalidKey(file: "tokenizer.json", key: "model.vocab", expected: "an object of token → id"))
        let badMerge = tokenizerError {
            _ = try GPT2Tokenizer(tokenizerJSONData: try jsonData(
                ["model": ["type": "BPE", "vocab": tinyVocabulary(), "merges": ["h e", ["l"]]]]))
        }
        guard case let .malformedMerge(file, location, _)? = badMerge else {
            Issue.record("expected malformedMerge, got \(String(describing: badMerge))")
            return
        }
        #expect(file == "tokenizer.json")
        #expect(location == "model.merges[1]")
        let badAdded = tokenizerError {
            _ = try GPT2Tokenizer(tokenizerJSONData: try jsonData(
                ["model": ["type": "BPE", "vocab": tinyVocabulary(), "merges": ["h e"]],
                 "added_tokens": [["id": "x", "content": "[PAD]"]]]))
        }
        #expect(badAdded == .invalidKey(file: "tokenizer.json", key: "added_tokens[0].id", expected: "a non-negative integer"))
    }

    @Test("missing files are reported with the folder")
    func missingFiles() throws {
        let folder = "/nonexistent-gpt2kit-folder"
        let error = tokenizerError { _ = try GPT2Tokenizer(folder: URL(fileURLWithPath: folder)) }
        #expect(error == .missingTokenizerFiles(folder: folder))
    }

    @Test("unknown ids are a typed error")
    func unknownID() throws {
        let tokenizer = try tinyTokenizer()
        #expect(tokenizerError { _ = try tokenizer.decode([1, 260]) } == .unknownTokenID(260))
        #expect(tokenizerError { _ = try tokenizer.decode([-1]) } == .unknownTokenID(-1))
        #expect(TokenizerError.unknownTokenID(260).description == "unknown token id 260")
    }

    @Test("invalid UTF-8 names the byte offset", arguments: [
        ([0x61, 0x62, 0x63, 0xFF], 3),
        ([0x61, 0xE6, 0x97], 1),  // truncated at the end
        ([0xC0, 0xAF], 0),  // overlong
        ([0x61, 0xED, 0xA0, 0x80], 1),  // surrogate
        ([0xF4, 0x90, 0x80, 0x80], 0),  // past U+10FFFF
        ([0xE6, 0x97, 0xA5, 0x80], 3),  // stray continuation
    ] as [([UInt8], Int)])
    func invalidUTF8(_ bytes: [UInt8], _ offset: Int) {
        #expect(tokenizerError { _ = try GPT2Tokenizer.text(fromUTF8: bytes) } == .invalidUTF8(offset: offset))
    }

    @Test("valid UTF-8 passes through")
    func validUTF8() throws {
        let text = "naïve 日本 😀 \u{10FFFF}"
        #expect(try GPT2Tokenizer.text(fromUTF8: Array(text.utf8)) == text)
    }
}
