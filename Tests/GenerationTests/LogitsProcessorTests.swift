import Foundation
import GPT2Kit
import Testing
import TestSupport

/// The bundled models by fixture folder name.
enum FixtureModel {
    static func load(_ name: String) throws -> GPT2Model {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("\(name)/config.json")))
        let config = try GPT2Config(jsonData: data, path: "\(name)/config.json")
        return try GPT2Model(config: config, stateDict: SafetensorsReader.read(path: Fixtures.path("\(name)/model.safetensors")))
    }
}

/// One case of fixtures/generation/goldens.json (scripts/make_generation_goldens.py).
struct ProcessorGolden: CustomTestStringConvertible, Sendable {
    var model: String
    var promptIDs: [Int]
    var maxNewTokens: Int
    var repetitionPenalty: Double
    var noRepeatNGramSize: Int
    var outputIDs: [Int]
    var minMargin: Double
    var testDescription: String { "\(model) \(promptIDs) penalty \(repetitionPenalty) ngram \(noRepeatNGramSize)" }

    static let all: [ProcessorGolden] = {
        guard let root = try? Fixtures.json("generation/goldens.json") as? [String: Any],
              let cases = root["cases"] as? [[String: Any]] else { return [] }
        return cases.compactMap { c in
            guard let model = c["model"] as? String, let prompt = c["prompt_ids"] as? [Int], let n = c["max_new_tokens"] as? Int,
                  let penalty = (c["repetition_penalty"] as? NSNumber)?.doubleValue, let ngram = c["no_repeat_ngram_size"] as? Int,
                  let output = c["output_ids"] as? [Int], let margin = (c["min_margin"] as? NSNumber)?.doubleValue else { return nil }
            return ProcessorGolden(model: model, promptIDs: prompt, maxNewTokens: n, repetitionPenalty: penalty,
                                   noRepeatNGramSize: ngram, outputIDs: output, minMargin: margin)
        }
    }()
}

@Suite(.serialized) struct LogitsProcessorGoldenTests {
    @Test func goldensAreThere() {
        // 2 models × 2 prompts × 6 settings; a parse failure would silently drop cases
        #expect(ProcessorGolden.all.count == 24)
    }

    /// Greedy ids equal transformers' exactly. Every case's smallest top-1/top-2 gap of the processed scores
    /// is recorded by the script (≥ 4.8e-4 on tiny-gpt2, ≥ 8e-3 on micro-gpt2), far above the ~1e-6
    /// difference between our logits and torch's, so an argmax flip would be a real difference.
    @Test(arguments: ProcessorGolden.all)
    func greedyWithProcessorsMatchesTransformers(golden: ProcessorGolden) throws {
        let model = try FixtureModel.load(golden.model)
        let options = GenerationOptions(maxNewTokens: golden.maxNewTokens, eosTokenIDs: [50256], padTokenID: 50256,
                                        repetitionPenalty: Float(golden.repetitionPenalty), noRepeatNGramSize: golden.noRepeatNGramSize)
        let out = try Generator(model: model, promptIDs: golden.promptIDs, options: options).run()
        #expect(out == [golden.outputIDs], "margin \(golden.minMargin)")
    }

    /// Prompts of different lengths in one left-padded batch: each row is processed on its own ids (never
    /// the padding) and gives its golden.
    @Test(arguments: ["tiny-gpt2", "micro-gpt2"])
    func processorsWorkPerRowInAMultiPromptBatch(model name: String) throws {
        let model = try FixtureModel.load(name)
        let goldens = ProcessorGolden.all.filter { $0.model == name }
        for setting in Set(goldens.map { "\($0.repetitionPenalty) \($0.noRepeatNGramSize)" }).sorted() {
            let cases = goldens.filter { "\($0.repetitionPenalty) \($0.noRepeatNGramSize)" == setting }
            try #require(cases.count == 2 && cases[0].promptIDs.count != cases[1].promptIDs.count)
            let options = GenerationOptions(maxNewTokens: cases[0].maxNewTokens, eosTokenIDs: [50256], padTokenID: 50256,
                                            repetitionPenalty: Float(cases[0].repetitionPenalty), noRepeatNGramSize: cases[0].noRepeatNGramSize)
            let out = try Generator(model: model, prompts: cases.map(\.promptIDs), options: options).run()
            #expect(out == cases.map(\.outputIDs), "\(name) \(setting)")
        }
    }

    /// The processors run before the warpers, so top-k 1 sampling with them is greedy with them.
    @Test func processorsApplyBeforeSampling() throws {
        let golden = try #require(ProcessorGolden.all.first { $0.model == "tiny-gpt2" && $0.repetitionPenalty == 1.3 && $0.noRepeatNGramSize == 2 })
        let model = try FixtureModel.load(golden.model)
        let options = GenerationOptions(maxNewTokens: golden.maxNewTokens, strategy: .sampling(SamplingOptions(temperature: 0.7, topK: 1)),
                                        eosTokenIDs: [50256], numReturnSequences: 2, seed: 4,
                                        repetitionPenalty: 1.3, noRepeatNGramSize: 2)
        #expect(try Generator(model: model, promptIDs: golden.promptIDs, options: options).run() == [golden.outputIDs, golden.outputIDs])
    }
}

@Suite struct LogitsProcessorTests {
    @Test func repetitionPenaltyDividesPositiveAndMultipliesNegativeOncePerID() throws {
        let p = try LogitsProcessor(vocabularySize: 5, repetitionPenalty: 2)
        // id 1 appears three times: penalised once, as transformers' gather/scatter does
        let out = withRow([4, -4, 3, 0, -1]) { p.process($0, ids: [1, 1, 0, 3, 1]) }
        #expect(out == [2, -8, 3, 0, -1])
        // a penalty below 1 favours repeats
        let favour = try LogitsProcessor(vocabularySize: 3, repetitionPenalty: 0.5)
        #expect(withRow([4, -4, 1]) { favour.process($0, ids: [0, 1]) } == [8, -2, 1])
        // repeated calls do not leak marks from the previous call
        #expect(withRow([4, -4, 3, 0, -1]) { p.process($0, ids: [2]) } == [4, -4, 1.5, 0, -1])
    }

    @Test func noRepeatNGramBansCompletionsOfSeenNGrams() throws {
        let two = try LogitsProcessor(vocabularySize: 6, noRepeatNGramSize: 2)
        // bigrams (1,2) (2,3) (3,1) (1,4) (4,1); the row ends with 1, so 2 and 4 are banned
        #expect(kept(withRow([Float](repeating: 0, count: 6)) { two.process($0, ids: [1, 2, 3, 1, 4, 1]) }) == [0, 1, 3, 5])
        let three = try LogitsProcessor(vocabularySize: 6, noRepeatNGramSize: 3)
        // trigrams (5,1,2) (1,2,5) (2,5,1): the row ends with (5,1) → 2 banned
        #expect(kept(withRow([Float](repeating: 0, count: 6)) { three.process($0, ids: [5, 1, 2, 5, 1]) }) == [0, 1, 3, 4, 5])
        // shorter than n - 1 ids: nothing to match
        #expect(kept(withRow([Float](repeating: 0, count: 6)) { three.process($0, ids: [5]) }).count == 6)
        // n = 1 bans every id already present
        let one = try LogitsProcessor(vocabularySize: 6, noRepeatNGramSize: 1)
        #expect(kept(withRow([Float](repeating: 0, count: 6)) { one.process($0, ids: [0, 4, 4]) }) == [1, 2, 3, 5])
    }

    @Test func optionsOutOfRangeThrowNamingTheOption() {
        for bad: Float in [0, -1, .nan, .infinity] {
            #expect(throws: GenerationError.invalidOption(name: "repetition-penalty", value: "\(bad)", expected: "a finite number > 0 (1 disables)")) {
                try GenerationOptions(repetitionPenalty: bad).validated()
            }
        }
        #expect(throws: GenerationError.invalidOption(name: "no-repeat-ngram-size", value: "-1", expected: "an integer >= 0 (0 disables)")) {
            try GenerationOptions(noRepeatNGramSize: -1).validated()
        }
        #expect(throws: GenerationError.invalidOption(name: "stop", value: "\"\"", expected: "a non-empty string")) {
            try GenerationOptions(stopStrings: ["ok", ""]).validated()
        }
        #expect(throws: Never.self) { _ = try GenerationOptions(repetitionPenalty: 1.3, noRepeatNGramSize: 0, stopStrings: ["\n"]).validated() }
    }
}
