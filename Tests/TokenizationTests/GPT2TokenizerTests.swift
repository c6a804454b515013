import Foundation
import Testing
import TestSupport
@testable import Tokenization

/// A random string mixing ASCII, white space, contractions, marks, CJK, emoji and arbitrary scalars.
func randomText(_ rng: inout SeededGenerator) -> String {
    let fragments = ["'s", "'ll", "'", " ", "  ", "\n", "\r\n", "\t", "\u{A0}", "\u{3000}", "\u{2028}", "\u{1C}",
                     "é", "e\u{301}", "中文", "😀", "👨\u{200D}👩\u{200D}👧", "𝟙", "½", "<|endoftext|>", "<|endof"]
    var text = ""
    for _ in 0..<Int.random(in: 0...20, using: &rng) {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: text += fragments.randomElement(using: &rng) ?? ""
        case 1: text.unicodeScalars.append(Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &rng)))
        case 2: text.unicodeScalars.append(Unicode.Scalar(UInt8.random(in: 0...0xFF, using: &rng)))
        default:
            while true {
                if let scalar = Unicode.Scalar(UInt32.random(in: 0...0x10FFFF, using: &rng)) {
                    text.unicodeScalars.append(scalar)
                    break
                }
            }
        }
    }
    return text
}

/// Whether `needle`'s UTF-8 bytes occur in `text`'s.
func containsUTF8(_ text: String, _ needle: String) -> Bool {
    let haystack = Array(text.utf8)
    let pattern = Array(needle.utf8)
    guard pattern.count <= haystack.count else { return false }
    return (0...(haystack.count - pattern.count)).contains { haystack[$0..<($0 + pattern.count)].elementsEqual(pattern) }
}

@Suite("GPT2Tokenizer")
struct GPT2TokenizerTests {
    @Test("decode(encode(s)) == s for seeded random Unicode strings, with and without specials")
    func roundTrip() throws {
        let tokenizer = try gpt2Tokenizer.get()
        var rng = SeededGenerator(state: 42)
        for _ in 0..<3000 {
            let text = randomText(&rng)
            let ids = tokenizer.encode(text)
            #expect(try tokenizer.decode(ids) == text, "\(text.debugDescription)")
            let ordinary = tokenizer.encode(text, allowSpecial: false)
            #expect(try tokenizer.decode(ordinary) == text, "\(text.debugDescription)")
            #expect(!ordinary.contains(tokenizer.eosTokenID))
            // Scalar-level, as the reference: `String.contains` compares graphemes and misses
            // "<|endoftext|>" followed by a combining mark.
            #expect(ids.contains(tokenizer.eosTokenID) == containsUTF8(text, GPT2Tokenizer.endOfText))
        }
    }

    @Test("random strings match tiktoken, transformers and tokenizers (fixtures/tokenizer-random-goldens.jsonl)")
    func randomGoldens() throws {
        let tokenizer = try gpt2Tokenizer.get()
        let text = try String(contentsOfFile: Fixtures.path("tokenizer-random-goldens.jsonl"), encoding: .utf8)
        var count = 0
        for (index, line) in text.split(separator: "\n").enumerated() {
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let input = try #require(entry["text"] as? String)
            let ids = try #require(entry["ids"] as? [Int])
            let ordinary = try #require(entry["ordinary_ids"] as? [Int])
            #expect(tokenizer.encode(input) == ids, "line \(index + 1): \(input.debugDescription)")
            #expect(tokenizer.encode(input, allowSpecial: false) == ordinary, "line \(index + 1): \(input.debugDescription)")
            #expect(try tokenizer.decode(ids) == input, "line \(index + 1)")
            count += 1
        }
        #expect(count == 400)
    }

    @Test("bytes that are not valid UTF-8 decode with U+FFFD as Python's errors='replace'", arguments: [
        ([0xE6, 0x97], "\u{FFFD}"),
        ([0xFF, 0xFE], "\u{FFFD}\u{FFFD}"),
        ([0x61, 0xC3], "a\u{FFFD}"),
        ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
        ([0xF0, 0x9F, 0x98, 0x78], "\u{FFFD}x"),
        ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),
        ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
    ] as [([UInt8], String)])
    func replacement(_ bytes: [UInt8], _ expected: String) throws {
        let tokenizer = try gpt2Tokenizer.get()
        let ids = bytes.map { Int(tokenizer.model.byteIDs[Int($0)]) }
        #expect(try tokenizer.decodeBytes(ids) == bytes)
        #expect(try tokenizer.decode(ids) == expected)
    }

    @Test("added tokens get the next ids and are matched before BPE")
    func addedTokens() throws {
        var tokenizer = try gpt2Tokenizer.get()
        let ids = try tokenizer.addTokens(["[PAD]", " the", "[PAD]"])
        #expect(ids == [50257, 262, 50257])
        #expect(tokenizer.vocabularySize == 50258)
        #expect(tokenizer.tokenID(for: "[PAD]") == 50257)
        #expect(tokenizer.encode("Hello[PAD][PAD]") == [15496, 50257, 50257])
        let ordinary = tokenizer.encode("Hello[PAD]", allowSpecial: false)
        #expect(!ordinary.contains(50257))
        #expect(try tokenizer.decode(ordinary) == "Hello[PAD]")
        #expect(try tokenizer.decode([50257, 50256]) == "[PAD]<|endoftext|>")
        #expect(throws: TokenizerError.emptyAddedToken) { try tokenizer.addTokens([""]) }
        // The original value is unchanged (value semantics).
        let original = try gpt2Tokenizer.get()
        #expect(original.vocabularySize == 50257)
        #expect(throws: TokenizerError.unknownTokenID(50257)) { try original.decode([50257]) }
    }

    @Test("the longest special token wins at a position")
    func longestSpecial() throws {
        var tokenizer = try gpt2Tokenizer.get()
        let ids = try tokenizer.addTokens(["<|end", "<|endoftext|>!"])
        #expect(tokenizer.encode("a<|endoftext|>!") == [64, ids[1]])
        #expect(tokenizer.encode("a<|endoftext|>") == [64, 50256])
        #expect(tokenizer.encode("<|endo") == [ids[0]] + tokenizer.encode("o", allowSpecial: false))
    }

    @Test("tokenizer.json with string merges, pair merges and added tokens equals vocab.json + merges.txt")
    func tokenizerJSON() throws {
        let reference = try gpt2Tokenizer.get()
        let vocabulary = try #require(try Fixtures.json("gpt2-tokenizer/vocab.json") as? [String: Int])
        let mergesText = try String(contentsOfFile: Fixtures.path("gpt2-tokenizer/merges.txt"), encoding: .utf8)
        let merges = mergesText.split(separator: "\n").dropFirst().map(String.init)
        let added: [[String: Any]] = [["id": 50256, "content": "<|endoftext|>", "special": true],
                                      ["id": 50257, "content": "[PAD]", "special": true]]
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (index, form) in [merges as [Any], merges.map { $0.split(separator: " ").map(String.init) } as [Any]].enumerated() {
            let object: [String: Any] = ["version": "1.0", "added_tokens": added,
                                         "model": ["type": "BPE", "vocab": vocabulary, "merges": form]]
            let url = URL(fileURLWithPath: folder).appendingPathComponent("tokenizer.json")
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            let tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: folder))
            #expect(tokenizer.vocabularySize == 50258, "form \(index)")
            #expect(tokenizer.eosTokenID == 50256)
            for golden in try loadGoldens() {
                #expect(tokenizer.encode(golden.text) == golden.ids, "form \(index): \(golden.testDescription)")
            }
            #expect(tokenizer.encode("a[PAD]") == [64, 50257])
            #expect(try tokenizer.decode([50257]) == "[PAD]")
            #expect(tokenizer.encode("Zürich", allowSpecial: false) == reference.encode("Zürich", allowSpecial: false))
        }
    }
}

@Suite("BPE merge paths")
struct BPEMergePathTests {
    /// The heap path for long pieces must merge exactly as the quadratic scan does.
    @Test("the heap merge equals the quadratic merge on seeded random pieces")
    func heapEqualsScan() throws {
        let model = try gpt2Tokenizer.get().model
        var rng = SeededGenerator(state: 7)
        let alphabets: [[UInt8]] = [Array("a".utf8), Array("ab".utf8), Array("etaoin shrdlu".utf8), Array(" \n".utf8),
                                    (0...255).map { UInt8($0) }, Array("0123456789".utf8), Array("=+/AQgw".utf8)]
        var cache = WordCache()
        for round in 0..<400 {
            let alphabet = alphabets[round % alphabets.count]
            let length = Int.random(in: 1...600, using: &rng)
            let piece = (0..<length).map { _ in alphabet.randomElement(using: &rng) ?? 0 }
            let heap = model.merges.withLookup { lookup in
                piece.withUnsafeBufferPointer { buffer in
                    BPEModel.mergeLongPiece(buffer.baseAddress!, length, byteIDs: model.byteIDs, lookup: lookup)
                }
            }
            model.merges.withLookup { lookup in
                piece.withUnsafeBufferPointer { buffer in
                    model.mergeBytes(buffer.baseAddress!, length, lookup: lookup, cache: &cache)
                }
            }
            #expect(heap == cache.parts, "round \(round), length \(length)")
        }
    }

    @Test("long pieces are encoded in reasonable time and round-trip")
    func longPieces() throws {
        let tokenizer = try gpt2Tokenizer.get()
        let text = String(repeating: "a", count: 200_000) + " " + String(repeating: "Zm9v", count: 50_000)
        let ids = tokenizer.encode(text)
        #expect(try tokenizer.decode(ids) == text)
        // 'a' * 8 is one token (24794); the 200 000 a's split into runs of it.
        #expect(ids.prefix(4) == [24794, 24794, 24794, 24794])
    }
}

@Suite("Parallel encoding of one text")
struct ParallelEncodeTests {
    @Test("cutting a large text across threads gives the single-thread ids", arguments: [2, 3, 4])
    func matchesSingleThread(_ threads: Int) throws {
        let tokenizer = try gpt2Tokenizer.get()
        var rng = SeededGenerator(state: UInt64(threads))
        var text = ""
        while text.utf8.count < 200_000 {
            text += randomText(&rng)
            text += ["\n", " \n", "\n\n", "x\n", "'\n", "\u{A0}\n", "<|endoftext|>\n"].randomElement(using: &rng) ?? "\n"
        }
        #expect(tokenizer.encode(text, threadCount: threads) == tokenizer.encode(text))
        #expect(tokenizer.encode(text, allowSpecial: false, threadCount: threads) == tokenizer.encode(text, allowSpecial: false))
        #expect(tokenizer.encode("short", threadCount: threads) == tokenizer.encode("short"))
        #expect(tokenizer.encode("", threadCount: threads).isEmpty)
    }
}
