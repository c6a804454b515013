import Foundation
import GPT2Kit
import Testing
import TestSupport

enum Vocabulary {
    static func tokenizer() throws -> GPT2Tokenizer {
        try GPT2Tokenizer(folder: URL(fileURLWithPath: Fixtures.path("gpt2-tokenizer")))
    }
}

@Suite struct StopStringsTests {
    @Test func findsTheEarliestMatchEndingInTheNewBytes() {
        let stops = StopStrings(["def", "cd", "xyz"])
        let text = Array("abcdef".utf8)
        #expect(stops.firstMatch(in: text, newBytesFrom: 0) == StopStringMatch(index: 1, string: "cd", byteOffset: 2))
        // equal starts: the stop string listed first
        #expect(StopStrings(["cde", "cd"]).firstMatch(in: text, newBytesFrom: 0)?.index == 0)
        // only matches that end in the new bytes are looked for (the old ones were checked before)
        #expect(StopStrings(["ab"]).firstMatch(in: text, newBytesFrom: 3) == nil)
        #expect(StopStrings(["abc"]).firstMatch(in: text, newBytesFrom: 2)?.byteOffset == 0)
    }

    @Test func aStopStringStraddlingAppendedPiecesIsFound() {
        let stops = StopStrings(["bcde"])
        var text: [UInt8] = []
        var found: StopStringMatch?
        for piece in ["ab", "cd", "ef"] {
            let before = text.count
            text += Array(piece.utf8)
            found = stops.firstMatch(in: text, newBytesFrom: before)
            if found != nil { break }
        }
        #expect(found == StopStringMatch(index: 0, string: "bcde", byteOffset: 1))
        #expect(String(decoding: text, as: UTF8.self) == "abcdef")
    }

    @Test func pendingStartIsTheLongestEndThatBeginsAStopString() {
        let stops = StopStrings(["world", "wx", "d"])
        #expect(stops.pendingStart(in: Array("hello wor".utf8)) == 6)
        #expect(stops.pendingStart(in: Array("hello w".utf8)) == 6)
        #expect(stops.pendingStart(in: Array("hello".utf8)) == 5)
        #expect(StopStrings([]).pendingStart(in: Array("abc".utf8)) == 3)
        // a multi-byte stop string's first byte alone is held back
        #expect(StopStrings(["é!"]).pendingStart(in: Array("caf".utf8) + [0xC3]) == 3)
    }
}

@Suite struct IncrementalDetokenizerTests {
    /// Multi-byte characters split over several byte-level tokens stream as whole characters, and the
    /// pieces add up to exactly the full decode.
    @Test func streamsExactlyTheFullDecode() throws {
        let tokenizer = try Vocabulary.tokenizer()
        let text = "naïve café — 日本語 😀🎉 ok 🧑‍🚀"
        let ids = tokenizer.encode(text)
        // the test means something only if some token ends inside a character
        let partial = try ids.filter { String(validating: try tokenizer.decodeBytes([$0]), as: UTF8.self) == nil }
        #expect(!partial.isEmpty, "no token of \(ids) splits a character")
        var stream = IncrementalDetokenizer(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids {
            try stream.append(id)
            pieces.append(stream.nextText())
        }
        pieces.append(stream.remainingText())
        #expect(pieces.joined() == text)
        #expect(pieces.joined() == (try tokenizer.decode(ids)))
        #expect(!pieces.contains { $0.contains("\u{FFFD}") }, "a piece ended inside a character: \(pieces)")
        #expect(pieces.contains(""), "some character waited for a later token")
    }

    /// Random ids, many of them single bytes that are not valid UTF-8 on their own or together: the pieces
    /// still concatenate to the lossy full decode (same U+FFFD placement).
    @Test func randomIDsConcatenateToTheLossyDecode() throws {
        let tokenizer = try Vocabulary.tokenizer()
        var g = Xoshiro256StarStar(seed: 17)
        for _ in 0..<300 {
            let ids = (0..<12).map { _ in g.next() % 3 == 0 ? Int(g.next() % 50257) : Int(g.next() % 256) }
            var stream = IncrementalDetokenizer(tokenizer: tokenizer)
            var out = ""
            for id in ids {
                try stream.append(id)
                out += stream.nextText()
            }
            out += stream.remainingText()
            #expect(out == (try tokenizer.decode(ids)), "ids \(ids)")
        }
    }

    @Test func unknownIDsThrowAndAddNothing() throws {
        var stream = IncrementalDetokenizer(tokenizer: try Vocabulary.tokenizer())
        #expect(throws: TokenizerError.unknownTokenID(99_999)) { try stream.append(99_999) }
        #expect(stream.bytes.isEmpty)
    }
}

@Suite(.serialized) struct GeneratorStopStringTests {
    static let prompt = [18308, 14179, 318, 257, 2168, 286] // "Harry Potter is a series of"
    // greedy on tiny-gpt2 continues "ults" (8376), " forbid" (33277), " forbid", …

    @Test func aStopStringStraddlingTokensEndsTheRowAndCutsTheText() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        let options = GenerationOptions(maxNewTokens: 10, eosTokenIDs: [50256], stopStrings: ["nothing", "ts for"])
        let generator = try Generator(model: model, promptIDs: Self.prompt, options: options, tokenizer: tokenizer)
        let out = generator.run()
        #expect(out == [Self.prompt + [8376, 33277]])
        #expect(generator.finishReasons == [.stopString(StopStringMatch(index: 1, string: "ts for", byteOffset: 2))])
        #expect(try generator.text(row: 0) == "Harry Potter is a series oful")
    }

    @Test func aStopStringInThePromptOrAcrossItsEndDoesNotCount() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        // "Potter" is in the prompt; "fult" spans the prompt's "of" and the new "ults"
        let options = GenerationOptions(maxNewTokens: 5, eosTokenIDs: [50256], stopStrings: ["Potter", "fult"])
        let generator = try Generator(model: model, promptIDs: Self.prompt, options: options, tokenizer: tokenizer)
        let out = generator.run()
        #expect(out[0].count == Self.prompt.count + 5)
        #expect(generator.finishReasons == [.length])
        #expect(try generator.text(row: 0) == (try tokenizer.decode(out[0])))
    }

    @Test func everyRowOfABatchReportsWhyItStopped() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        let options = GenerationOptions(maxNewTokens: 6, eosTokenIDs: [50256], padTokenID: 7, numReturnSequences: 2,
                                        stopStrings: ["bid forbid"])
        let generator = try Generator(model: model, promptIDs: Self.prompt, options: options, tokenizer: tokenizer)
        // " forbid forbid" is complete after the third new token; the batch stops when every row has
        #expect(generator.run() == Array(repeating: Self.prompt + [8376, 33277, 33277], count: 2))
        #expect(generator.finishReasons.allSatisfy { if case .stopString(let m)? = $0 { m.byteOffset == 8 } else { false } })
        #expect(try generator.text(row: 1) == "Harry Potter is a series ofults for")
    }

    @Test func rowsOfDifferentPromptsStopOnTheirOwnText() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        let cat = [464, 3797, 3332, 319, 262, 2603, 780] // "The cat sat on the mat because"
        // "ts for" straddles the first prompt's "ults" + " forbid" and never occurs in the second's continuation
        let options = GenerationOptions(maxNewTokens: 6, eosTokenIDs: [50256], stopStrings: ["ts for"])
        let generator = try Generator(model: model, prompts: [Self.prompt, cat], options: options, tokenizer: tokenizer)
        let out = generator.run()
        #expect(out[0] == Self.prompt + [8376, 33277])
        #expect(out[1].count == cat.count + 6)
        #expect(generator.finishReasons[1] == .length)
        #expect(try generator.text(row: 0) == "Harry Potter is a series oful")
        #expect(try generator.text(row: 1) == (try tokenizer.decode(out[1])))
    }

    @Test func stopStringsNeedATokenizer() throws {
        #expect(throws: GenerationError.stopStringsNeedTokenizer) {
            try Generator(model: try Tiny.model(), promptIDs: Self.prompt, options: GenerationOptions(stopStrings: ["x"]))
        }
    }

    /// What streams is what `text(row:)` returns, piece by piece, and the start of a possible stop string
    /// is held back until it is known not to be one.
    @Test func streamingHoldsBackAPossibleStopStringAndAddsUpToTheText() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        // repetition penalty 1.3: "ults forbidmarginKal understand …"; "bidmar" straddles " forbid" and "margin"
        let options = GenerationOptions(maxNewTokens: 20, eosTokenIDs: [50256], repetitionPenalty: 1.3, stopStrings: ["bidmar"])
        let generator = try Generator(model: model, promptIDs: Self.prompt, options: options, tokenizer: tokenizer)
        var pieces: [String] = []
        while generator.next() != nil { pieces.append(generator.takeNewText(row: 0)) }
        pieces.append(generator.takeNewText(row: 0))
        #expect(pieces == ["ults", " for", "", ""]) // "bid" waited, then turned out to start the stop string
        #expect(try generator.text(row: 0) == "Harry Potter is a series of" + pieces.joined())
    }

    @Test func streamingWithoutStopStringsEqualsTheFullDecode() throws {
        let model = try Tiny.model(), tokenizer = try Vocabulary.tokenizer()
        // this continuation holds the byte-level token 177 ("\u{F5}" alone: not UTF-8)
        let options = GenerationOptions(maxNewTokens: 24, eosTokenIDs: [50256], repetitionPenalty: 1.3, stopStrings: ["never there"])
        let generator = try Generator(model: model, promptIDs: Self.prompt, options: options, tokenizer: tokenizer)
        var streamed = ""
        while generator.next() != nil { streamed += generator.takeNewText(row: 0) }
        streamed += generator.takeNewText(row: 0)
        let newIDs = Array(generator.sequences[0][Self.prompt.count...])
        #expect(newIDs.contains(177))
        #expect(streamed == (try tokenizer.decode(newIDs)))
        #expect(try generator.text(row: 0) == (try tokenizer.decode(generator.sequences[0])))
    }
}

@Suite(.serialized) struct PromptTruncationTests {
    @Test func leftTruncationKeepsTheLastTokens() throws {
        let model = try Tiny.model()
        var g = Xoshiro256StarStar(seed: 2)
        let prompt = (0..<100).map { _ in Int(g.next() % 50257) }
        let options = GenerationOptions(maxNewTokens: 8, truncation: .left)
        #expect(try options.truncatedPrompt(prompt, contextLength: 64) == Array(prompt.suffix(56)))
        let generator = try Generator(model: model, promptIDs: prompt, options: options)
        #expect(generator.promptIDs == Array(prompt.suffix(56)))
        let out = generator.run()
        let direct = try Generator(model: model, promptIDs: Array(prompt.suffix(56)), options: GenerationOptions(maxNewTokens: 8)).run()
        #expect(out == direct && out[0].count == 64)
        // a prompt that fits is left alone
        #expect(try options.truncatedPrompt(Array(prompt.prefix(56)), contextLength: 64) == Array(prompt.prefix(56)))
    }

    @Test func withoutTruncationTheRefusalKeepsItsNumbers() throws {
        let model = try Tiny.model()
        let prompt = Array(repeating: 1, count: 100)
        #expect(throws: GenerationError.promptTooLong(promptLength: 100, contextLength: 64)) {
            try Generator(model: model, promptIDs: prompt, options: GenerationOptions(maxNewTokens: 8))
        }
        #expect(throws: GenerationError.lengthExceedsContext(maxLength: 68, contextLength: 64)) {
            try Generator(model: model, promptIDs: Array(prompt.prefix(60)), options: GenerationOptions(maxNewTokens: 8))
        }
        // new tokens that fill the context leave no room even for a truncated prompt
        #expect(throws: GenerationError.noRoomForPrompt(maxNewTokens: 64, contextLength: 64)) {
            try Generator(model: model, promptIDs: prompt, options: GenerationOptions(maxNewTokens: 64, truncation: .left))
        }
        // max length counts the prompt: truncation does not apply, the refusals stay
        #expect(throws: GenerationError.promptTooLong(promptLength: 100, contextLength: 64)) {
            try Generator(model: model, promptIDs: prompt, options: GenerationOptions(truncation: .left))
        }
        #expect(throws: GenerationError.maxLengthNotAbovePrompt(maxLength: 20, promptLength: 30)) {
            try Generator(model: model, promptIDs: Array(prompt.prefix(30)), options: GenerationOptions(truncation: .left))
        }
    }
}
