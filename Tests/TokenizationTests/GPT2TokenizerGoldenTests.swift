import Foundation
import Testing
import TestSupport
@testable import Tokenization

/// The real GPT-2 tokenizer, loaded once for all tests.
let gpt2Tokenizer: Result<GPT2Tokenizer, any Error> = Result {
    try GPT2Tokenizer(folder: URL(fileURLWithPath: Fixtures.path("gpt2-tokenizer")))
}

struct GoldenCase: CustomTestStringConvertible, Sendable {
    var line: Int
    var text: String
    var ids: [Int]
    var ordinaryIDs: [Int]?
    var testDescription: String { "line \(line): \(text.debugDescription.prefix(40))" }
}

func loadGoldens() throws -> [GoldenCase] {
    let text = try String(contentsOfFile: Fixtures.path("tokenizer-goldens.jsonl"), encoding: .utf8)
    var cases: [GoldenCase] = []
    for (index, line) in text.split(separator: "\n").enumerated() {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        let entry = try #require(object as? [String: Any])
        cases.append(GoldenCase(line: index + 1,
                                text: try #require(entry["text"] as? String),
                                ids: try #require(entry["ids"] as? [Int]),
                                ordinaryIDs: entry["ordinary_ids"] as? [Int]))
    }
    return cases
}

@Suite("GPT-2 goldens")
struct GPT2TokenizerGoldenTests {
    @Test("the golden file is present and non-trivial")
    func goldensLoad() throws {
        let cases = try loadGoldens()
        #expect(cases.count >= 40)
        #expect(cases.contains { $0.ids.contains(50256) })
    }

    @Test("encode matches transformers with special tokens on", arguments: try loadGoldens())
    func specialIDs(_ golden: GoldenCase) throws {
        let tokenizer = try gpt2Tokenizer.get()
        #expect(tokenizer.encode(golden.text) == golden.ids)
    }

    @Test("encode matches tiktoken's encode_ordinary with special tokens off", arguments: try loadGoldens())
    func ordinaryIDs(_ golden: GoldenCase) throws {
        let tokenizer = try gpt2Tokenizer.get()
        if let ordinary = golden.ordinaryIDs {
            #expect(tokenizer.encode(golden.text, allowSpecial: false) == ordinary)
        } else {
            // No ordinary golden: without specials in the text, both modes must agree.
            if !containsUTF8(golden.text, GPT2Tokenizer.endOfText) {
                #expect(tokenizer.encode(golden.text, allowSpecial: false) == golden.ids)
            }
        }
    }

    @Test("decoding the golden ids gives the text back", arguments: try loadGoldens())
    func decodeGolden(_ golden: GoldenCase) throws {
        let tokenizer = try gpt2Tokenizer.get()
        #expect(try tokenizer.decode(golden.ids) == golden.text)
        if let ordinary = golden.ordinaryIDs {
            #expect(try tokenizer.decode(ordinary) == golden.text)
        }
    }

    @Test("the batch API returns what single encodes return, in order")
    func batchMatchesSingle() throws {
        let tokenizer = try gpt2Tokenizer.get()
        let texts = try loadGoldens().map(\.text)
        let expected = texts.map { tokenizer.encode($0) }
        #expect(tokenizer.encode(batch: texts, threadCount: 2) == expected)
        #expect(tokenizer.encode(batch: texts, threadCount: 3) == expected)
        #expect(tokenizer.encode(batch: Array(texts.prefix(1)), threadCount: 2) == Array(expected.prefix(1)))
        #expect(tokenizer.encode(batch: [], threadCount: 2).isEmpty)
        let ordinary = texts.map { tokenizer.encode($0, allowSpecial: false) }
        #expect(tokenizer.encode(batch: texts, allowSpecial: false) == ordinary)
    }

    @Test("vocabulary size, end of text and repeated words through the cache")
    func basics() throws {
        let tokenizer = try gpt2Tokenizer.get()
        #expect(tokenizer.vocabularySize == 50257)
        #expect(tokenizer.eosTokenID == 50256)
        #expect(tokenizer.tokenID(for: " the") == 262)
        // A word that is not one token goes through BPE once, then through the cache.
        let first = tokenizer.encode(" antidisestablishmentarianism")
        let second = tokenizer.encode(" antidisestablishmentarianism antidisestablishmentarianism")
        #expect(second == first + first)
        #expect(first.count > 1)
    }
}
