import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

/// The tiny reference model and its goldens.
enum Tiny {
    static func model() throws -> GPT2Model {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-gpt2/config.json")))
        let config = try GPT2Config(jsonData: data, path: "tiny-gpt2/config.json")
        return try GPT2Model(config: config, stateDict: SafetensorsReader.read(path: Fixtures.path("tiny-gpt2/model.safetensors")))
    }

    static func goldens() throws -> [String: Any] {
        try #require(try Fixtures.json("tiny-gpt2/goldens.json") as? [String: Any])
    }

    static func ints(_ any: Any?) throws -> [Int] {
        let a = try #require(any as? [Any])
        return try a.map { try #require(($0 as? NSNumber)?.intValue) }
    }
}

@Suite(.serialized) struct GeneratorTests {
    /// Last-position logits of a full (uncached) forward over `sequences` (all the same length).
    func uncachedLastLogits(_ model: GPT2Model, _ sequences: [[Int]]) throws -> [[Float]] {
        let T = sequences[0].count
        try model.forward(inputIDs: sequences.flatMap { $0 }, batchSize: sequences.count, sequenceLength: T)
        return sequences.indices.map { model.logits(batch: $0, position: T - 1) }
    }

    @Test func cachedLogitsEqualFullForwardAtEveryStep() throws {
        let model = try Tiny.model()
        let reference = try Tiny.model()
        let prompt = [18308, 14179, 318, 257, 2168, 286]
        let B = 3, steps = 30
        let decoder = try KVCacheDecoder(model: model, batchSize: B, capacity: prompt.count + steps)
        var rows = Array(repeating: prompt, count: B)
        var g = Xoshiro256StarStar(seed: 5)
        // prefill, then one (different, random) token per row per step
        var feed = rows.flatMap { $0.map(Int32.init) }
        var worst: Float = 0
        for step in 0...steps {
            let T = feed.count / B
            let logits = feed.withUnsafeBufferPointer { decoder.append($0, T: T) }
            let expected = try uncachedLastLogits(reference, rows)
            let V = model.config.vocabularySize
            for b in 0..<B {
                for i in 0..<V {
                    let err = abs(logits[b * V + i] - expected[b][i])
                    worst = max(worst, err)
                    if err > 1e-5 {
                        Issue.record("step \(step) row \(b) id \(i): cached \(logits[b * V + i]), full \(expected[b][i])")
                        return
                    }
                }
            }
            if step == steps { break }
            feed = (0..<B).map { _ in Int32(g.next() % UInt64(V)) }
            for b in 0..<B { rows[b].append(Int(feed[b])) }
        }
        print("[measured] cached vs full logits: max abs err \(worst)")
    }

    @Test func greedyMatchesTransformers() throws {
        let golden = try #require(try Tiny.goldens()["greedy"] as? [String: Any])
        let prompt = try Tiny.ints(golden["prompt_ids"]), expected = try Tiny.ints(golden["output_ids"])
        let model = try Tiny.model()
        let options = GenerationOptions(maxNewTokens: expected.count - prompt.count, eosTokenIDs: [50256])
        let generator = try Generator(model: model, promptIDs: prompt, options: options)
        #expect(generator.run() == [expected])
        // the uncached path: full forward over the growing sequence, argmax of the last position
        var ids = prompt
        while ids.count < expected.count {
            let row = try uncachedLastLogits(model, [ids])[0]
            ids.append(row.withUnsafeBufferPointer { TokenSampler.argmax($0) })
        }
        #expect(ids == expected)
    }

    @Test func topKOneEqualsGreedy() throws {
        let model = try Tiny.model()
        let prompt = [18308, 14179, 318, 257, 2168, 286]
        let greedy = try Generator(model: model, promptIDs: prompt, options: GenerationOptions(maxNewTokens: 20, numReturnSequences: 2)).run()
        let sampled = try Generator(model: model, promptIDs: prompt, options: GenerationOptions(
            maxNewTokens: 20, strategy: .sampling(SamplingOptions(temperature: 0.7, topK: 1)), numReturnSequences: 2, seed: 42)).run()
        #expect(sampled == greedy)
        #expect(greedy[0] == greedy[1])
    }

    @Test(arguments: ["top_k=0,top_p=0.5", "top_k=10,top_p=0.75", "top_k=5,top_p=1.0", "top_k=50,top_p=0.9"])
    func keptIDsMatchTransformersWarpers(setting: String) throws {
        let filters = try #require(try Tiny.goldens()["sampling_filters"] as? [String: Any])
        let prompt = try Tiny.ints(filters["prompt_ids"])
        let expected = try Tiny.ints((filters["kept_ids"] as? [String: Any])?[setting])
        let parts = setting.split(separator: ",").map { $0.split(separator: "=")[1] }
        let topK = try #require(Int(parts[0])), topP = try #require(Double(parts[1]))
        let model = try Tiny.model()
        var logits = try uncachedLastLogits(model, [prompt])[0]
        let options = SamplingOptions(topK: topK, topP: topP)
        let sampler = try TokenSampler(vocabularySize: logits.count, strategy: .sampling(options))
        logits.withUnsafeMutableBufferPointer { sampler.warp($0, options: options) }
        let kept = logits.indices.filter { logits[$0] > -.infinity }
        #expect(kept.count == expected.count)
        #expect(kept == expected.sorted())
    }

    @Test func finishedRowsArePaddedAndDecodingStopsWhenAllFinish() throws {
        let model = try Tiny.model()
        let prompt = [18308, 14179, 318, 257, 2168, 286]
        // greedy continuation is 8376, 33277, 33277, …: make 33277 the EOS id
        let options = GenerationOptions(maxNewTokens: 10, eosTokenIDs: [33277], padTokenID: 7, numReturnSequences: 2)
        let out = try Generator(model: model, promptIDs: prompt, options: options).run()
        #expect(out == Array(repeating: prompt + [8376, 33277], count: 2))
        // sampled rows: once a row ends with EOS, every later id is the pad id, and the batch stops only
        // when all rows have finished or the length is reached
        let sampling = GenerationOptions(maxNewTokens: 12, strategy: .sampling(SamplingOptions(topK: 3)),
                                         eosTokenIDs: [33277], padTokenID: 7, numReturnSequences: 4, seed: 3)
        let rows = try Generator(model: model, promptIDs: prompt, options: sampling).run()
        #expect(Set(rows.map(\.count)).count == 1)
        for row in rows {
            let new = Array(row[prompt.count...])
            if let stop = new.firstIndex(of: 33277) {
                #expect(new[(stop + 1)...].allSatisfy { $0 == 7 }, "row \(new)")
            } else {
                #expect(row.count == prompt.count + 12)
            }
        }
    }

    @Test func seedMakesSamplingReproducible() throws {
        let model = try Tiny.model()
        let prompt = [18308, 14179, 318]
        func run(_ seed: UInt64) throws -> [[Int]] {
            try Generator(model: model, promptIDs: prompt, options: GenerationOptions(
                maxLength: 15, strategy: .sampling(SamplingOptions()), numReturnSequences: 3, seed: seed)).run()
        }
        let a = try run(11), b = try run(11), c = try run(12)
        #expect(a == b)
        #expect(a != c)
    }

    @Test func badRequestsThrow() throws {
        let model = try Tiny.model()
        #expect(throws: GenerationError.promptTooLong(promptLength: 65, contextLength: 64)) {
            try Generator(model: model, promptIDs: Array(repeating: 1, count: 65), options: GenerationOptions(maxNewTokens: 1))
        }
        #expect(throws: GenerationError.lengthExceedsContext(maxLength: 66, contextLength: 64)) {
            try Generator(model: model, promptIDs: [1, 2, 3, 4, 5, 6], options: GenerationOptions(maxNewTokens: 60))
        }
        #expect(throws: GenerationError.newTokensExceedContext(maxNewTokens: Int.max, promptLength: 6, contextLength: 64)) {
            try Generator(model: model, promptIDs: [1, 2, 3, 4, 5, 6], options: GenerationOptions(maxNewTokens: Int.max))
        }
        #expect(throws: GenerationError.self) {
            try Generator(model: model, promptIDs: [1], options: GenerationOptions(numReturnSequences: 100_000_000_000))
        }
        // A batch far past any real use: the decoder refuses its buffers instead of trapping or allocating.
        do {
            _ = try KVCacheDecoder(model: model, batchSize: Int.max / 2, capacity: 64)
            Issue.record("Int.max / 2 rows accepted")
        } catch {
            guard case .batchTooLarge = error else { Issue.record("\(error)"); return }
        }
        #expect(throws: GenerationError.tokenOutOfRange(id: 50257, vocabularySize: 50257)) {
            try Generator(model: model, promptIDs: [50257], options: GenerationOptions())
        }
        // a sequence can fill the context exactly
        let full = try Generator(model: model, promptIDs: [1, 2, 3, 4], options: GenerationOptions(maxLength: 64)).run()
        #expect(full[0].count == 64)
    }
}

extension GeneratorTests {
    @Test func padIDIsCheckedOnlyWhenARowCanFinish() throws {
        let model = try Tiny.model()
        // EOS outside the vocabulary can never be produced: no pad needed, decoding runs to the length
        let out = try Generator(model: model, promptIDs: [1, 2], options: GenerationOptions(maxLength: 5, eosTokenIDs: [60000])).run()
        #expect(out[0].count == 5)
        #expect(throws: GenerationError.self) {
            try Generator(model: model, promptIDs: [1, 2], options: GenerationOptions(eosTokenIDs: [3], padTokenID: 60000))
        }
    }
}

/// Different prompts in one left-padded batch give what each prompt gives alone.
struct BatchedPromptsTests {
    static let prompts = [[18308, 14179], [18308, 14179, 318, 257, 2168, 286], [464, 3290, 286, 4881], [262]]

    func alone(_ model: GPT2Model, _ options: GenerationOptions) throws -> [[Int]] {
        try Self.prompts.flatMap { try Generator(model: model, prompts: [$0], options: options).run() }
    }

    @Test func greedyRowsEqualEachPromptAlone() throws {
        let model = try Tiny.model()
        for options in [GenerationOptions(maxNewTokens: 9), GenerationOptions(maxLength: 12)] {
            let together = try Generator(model: model, prompts: Self.prompts, options: options).run()
            #expect(together == (try alone(model, options)))
            #expect(zip(together, Self.prompts).allSatisfy { Array($0.prefix($1.count)) == $1 })
        }
    }

    @Test func rowsFinishingEarlyLeaveTheBatchAndMatchAlone() throws {
        let model = try Tiny.model()
        // 33277 is an early greedy token of the second prompt: make it the EOS id so that row stops first.
        let options = GenerationOptions(maxNewTokens: 10, eosTokenIDs: [33277], padTokenID: 7, numReturnSequences: 2)
        let generator = try Generator(model: model, prompts: Self.prompts, options: options)
        let together = generator.run()
        #expect(together == (try alone(model, options)))
        #expect(generator.decoder.batchSize < Self.prompts.count * 2)
    }

    @Test func samplingUsesEachPromptsOwnSeededDraws() throws {
        let model = try Tiny.model()
        let options = GenerationOptions(maxNewTokens: 8, strategy: .sampling(SamplingOptions(topK: 10, topP: 0.75)),
                                        eosTokenIDs: [50256], numReturnSequences: 3, seed: 5)
        let together = try Generator(model: model, prompts: Self.prompts, options: options).run()
        #expect(together == (try alone(model, options)))
    }

    @Test func aBadPromptIsNamedByItsLength() throws {
        let model = try Tiny.model()
        #expect(throws: GenerationError.promptTooLong(promptLength: 65, contextLength: 64)) {
            try Generator(model: model, prompts: [[1, 2], Array(repeating: 1, count: 65)], options: GenerationOptions(maxNewTokens: 1))
        }
        #expect(throws: GenerationError.emptyPrompt) {
            try Generator(model: model, prompts: [[1, 2], []], options: GenerationOptions(maxNewTokens: 1))
        }
    }
}

/// Decoding with projections in f16 and Q8_0.
struct ReducedPrecisionDecodingTests {
    /// The kernels equal float32 products of the decoded weights (and, for Q8_0, of the block-quantized inputs) up
    /// to summation order, for every batch size the decoder feeds and an output count that does not split evenly
    /// over the cores.
    @Test(arguments: QuantizedMatrix.Format.allCases)
    func kernelsEqualProductsOfTheDecodedWeights(format: QuantizedMatrix.Format) {
        let C = 96, OC = 301
        var rng = SplitMix64(state: 7)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1 }
        let w = (0..<(C * OC)).map { _ in uniform() * 0.3 }, bias = (0..<OC).map { _ in uniform() }
        // The weights as the matrix holds them, decoded back to float32, (OC, C) from Conv1D's (C, OC).
        var decoded = [Float](repeating: 0, count: C * OC)
        for j in 0..<OC {
            let row = (0..<C).map { w[$0 * OC + j] }
            switch format {
            case .f16: for i in 0..<C { decoded[j * C + i] = HalfPrecision.float(fromF16: HalfPrecision.f16(from: row[i])) }
            case .q8_0:
                let bytes = row.withUnsafeBufferPointer { Q8_0.quantize($0) }
                decoded.withUnsafeMutableBufferPointer { d in
                    bytes.withUnsafeBytes { Q8_0.dequantize($0, into: UnsafeMutableBufferPointer(rebasing: d[j * C ..< (j + 1) * C])) }
                }
            }
        }
        let matrix = w.withUnsafeBufferPointer { QuantizedMatrix(format: format, weight: $0, C: C, OC: OC, layout: .inputMajor) }
        for N in 1...9 {
            let x = (0..<(N * C)).map { _ in uniform() }
            var out = [Float](repeating: .nan, count: N * OC)
            out.withUnsafeMutableBufferPointer { o in
                x.withUnsafeBufferPointer { xi in bias.withUnsafeBufferPointer { matrix.forward(out: o, inp: xi, bias: $0, N: N) } }
            }
            // Q8_0 quantizes the inputs per block of 32 too (float scale max|x|/127, round half away from zero).
            var xs = x
            if format == .q8_0 {
                for start in stride(from: 0, to: x.count, by: 32) {
                    let amax = x[start ..< start + 32].map(abs).max() ?? 0
                    let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
                    for i in start ..< start + 32 { xs[i] = d * (x[i] * id).rounded(.toNearestOrAwayFromZero) }
                }
            }
            var worst: Float = 0
            for n in 0..<N {
                for j in 0..<OC {
                    var ref = Double(bias[j])
                    for i in 0..<C { ref += Double(decoded[j * C + i]) * Double(xs[n * C + i]) }
                    worst = max(worst, abs(out[n * OC + j] - Float(ref)) / (1 + abs(Float(ref))))
                }
            }
            #expect(worst < 1e-5, "N \(N): max relative error \(worst)")
        }
    }

    /// Greedy decoding in f16 and Q8_0 keeps float32's ids on the tiny model; the logit error is measured.
    @Test(arguments: [WeightPrecision.f16, .q8_0])
    func greedyIDsSurviveReducedPrecision(precision: WeightPrecision) throws {
        let model = try Tiny.model()
        let prompts = BatchedPromptsTests.prompts
        let f32 = try Generator(model: model, prompts: prompts, options: GenerationOptions(maxNewTokens: 12)).run()
        var options = GenerationOptions(maxNewTokens: 12)
        options.weights = precision
        #expect(try Generator(model: model, prompts: prompts, options: options).run() == f32)
        // logit error of one prefill
        let ids = prompts[1].map(Int32.init)
        let full = try KVCacheDecoder(model: model, batchSize: 1, capacity: ids.count)
        let reduced = try KVCacheDecoder(model: model, batchSize: 1, capacity: ids.count, weights: precision)
        let a = ids.withUnsafeBufferPointer { Array(full.append($0, T: ids.count)) }
        let b = ids.withUnsafeBufferPointer { Array(reduced.append($0, T: ids.count)) }
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0, scale = a.map(abs).max() ?? 1
        print("[measured] \(precision.rawValue) decoding, tiny model: max |logit − f32 logit| \(worst) (largest |logit| \(scale))")
        #expect(worst < (precision == .f16 ? 0.01 : 0.1) * max(scale, 1))
    }

    /// The second reference model: f16 keeps its greedy ids; its width (24) is not whole Q8_0 blocks, so q8_0 is
    /// refused naming the option and the reason.
    @Test func microModelKeepsGreedyIDsInF16AndRefusesQ8_0() throws {
        let model = try FixtureModel.load("micro-gpt2")
        let prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12]]
        let f32 = try Generator(model: model, prompts: prompts, options: GenerationOptions(maxNewTokens: 12)).run()
        var options = GenerationOptions(maxNewTokens: 12)
        options.weights = .f16
        #expect(try Generator(model: model, prompts: prompts, options: options).run() == f32)
        options.weights = .q8_0
        #expect(throws: GenerationError.invalidOption(name: "weights", value: "q8_0",
                                                     expected: "usable here: q8_0 needs n_embd and n_inner in whole blocks of 32 (this model has 24 and 96)")) {
            try Generator(model: model, prompts: prompts, options: options)
        }
    }
}
