import Foundation
import Testing
@testable import Generation

/// Runs `body` on a mutable copy of `values` and returns the copy.
func withRow(_ values: [Float], _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    var row = values
    row.withUnsafeMutableBufferPointer { body($0) }
    return row
}

/// Indices of the entries that are not -infinity.
func kept(_ row: [Float]) -> [Int] { row.indices.filter { row[$0] > -.infinity } }

@Suite struct TokenSamplerTests {
    @Test func xoshiroMatchesReferenceStream() {
        // First outputs of xoshiro256** seeded by SplitMix64(0), computed with the authors' reference algorithm.
        var g = Xoshiro256StarStar(seed: 0)
        #expect([g.next(), g.next(), g.next(), g.next()] == [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0, 0x6AA5_94F1_262D_2D2C])
        var u = Xoshiro256StarStar(seed: 7)
        for _ in 0..<1000 { let d = u.nextUnitDouble(); #expect(d >= 0 && d < 1) }
    }

    @Test func argmaxTakesLowestIndexOnTies() {
        let row: [Float] = [0, 3, -1, 3, 2]
        #expect(row.withUnsafeBufferPointer { TokenSampler.argmax($0) } == 1)
        let neg: [Float] = [-5, -2, -2, -7]
        #expect(neg.withUnsafeBufferPointer { TokenSampler.argmax($0) } == 1)
    }

    @Test func topKKeepsEveryTieOfTheKthValue() throws {
        let s = try TokenSampler(vocabularySize: 6, strategy: .greedy)
        #expect(kept(withRow([1, 3, 3, 2, 3, 0]) { s.applyTopK(2, to: $0) }) == [1, 2, 4])
        #expect(kept(withRow([1, 3, 3, 2, 3, 0]) { s.applyTopK(4, to: $0) }) == [1, 2, 3, 4])
        #expect(kept(withRow([5, 1, 4, 2, 3, 0]) { s.applyTopK(3, to: $0) }) == [0, 2, 4])
        #expect(kept(withRow([5, 1, 4, 2, 3, 0]) { s.applyTopK(1, to: $0) }) == [0])
        // min_tokens_to_keep raises k; k >= V keeps everything
        #expect(kept(withRow([5, 1, 4, 2, 3, 0]) { s.applyTopK(1, minTokensToKeep: 2, to: $0) }) == [0, 2])
        #expect(kept(withRow([5, 1, 4, 2, 3, 0]) { s.applyTopK(10, to: $0) }) == [0, 1, 2, 3, 4, 5])
    }

    @Test func selectFindsOrderStatistics() {
        var g = Xoshiro256StarStar(seed: 3)
        for n in [1, 2, 5, 17, 100, 1001] {
            let values = (0..<n).map { _ in Float(Int(g.next() % 13)) - 6 } // many ties
            let sorted = values.sorted()
            for rank in Set([0, n / 3, n / 2, n - 1]) {
                var copy = values
                let v = copy.withUnsafeMutableBufferPointer { TokenSampler.select($0, rank: rank) }
                #expect(v == sorted[rank], "n \(n) rank \(rank)")
            }
        }
    }

    @Test func topPRemovesLowCumulativeMass() throws {
        let s = try TokenSampler(vocabularySize: 4, strategy: .greedy)
        let logits = [0.1, 0.2, 0.3, 0.4].map { Float(log($0)) }
        // ascending cumulative sums: 0.1, 0.3, 0.6, 1.0
        #expect(kept(withRow(logits) { s.applyTopP(0.5, to: $0) }) == [2, 3])
        #expect(kept(withRow(logits) { s.applyTopP(0.45, to: $0) }) == [2, 3])
        #expect(kept(withRow(logits) { s.applyTopP(0.25, to: $0) }) == [3])
        #expect(kept(withRow(logits) { s.applyTopP(0.95, to: $0) }) == [0, 1, 2, 3])
        // top_p 0 would remove everything; the largest min_tokens_to_keep survive
        #expect(kept(withRow(logits) { s.applyTopP(0, to: $0) }) == [3])
        #expect(kept(withRow(logits) { s.applyTopP(0, minTokensToKeep: 3, to: $0) }) == [1, 2, 3])
        // already-filtered entries stay filtered and do not count
        let filtered: [Float] = [-.infinity, Float(log(0.25)), -.infinity, Float(log(0.75))]
        #expect(kept(withRow(filtered) { s.applyTopP(0.8, to: $0) }) == [1, 3])
        #expect(kept(withRow(filtered) { s.applyTopP(0.7, to: $0) }) == [3])
    }

    @Test func warpAppliesTemperatureThenTopKThenTopP() throws {
        let options = SamplingOptions(temperature: 0.5, topK: 3, topP: 0.8)
        let s = try TokenSampler(vocabularySize: 5, strategy: .sampling(options))
        // temperature 0.5 doubles the logits; top-k keeps ids 0, 1, 2; top-p then renormalises over those.
        let logits: [Float] = [2, 1.5, 1, -3, 0.5]
        let out = withRow(logits) { s.warp($0, options: options) }
        #expect(out[0] == 4 && out[1] == 3)
        #expect(kept(out) == [0, 1])
    }

    @Test func invalidOptionsThrow() {
        #expect(throws: GenerationError.self) { try TokenSampler(vocabularySize: 3, strategy: .sampling(SamplingOptions(temperature: 0))) }
        #expect(throws: GenerationError.self) { try TokenSampler(vocabularySize: 3, strategy: .sampling(SamplingOptions(topK: -1))) }
        #expect(throws: GenerationError.self) { try TokenSampler(vocabularySize: 3, strategy: .sampling(SamplingOptions(topP: 1.5))) }
        #expect(throws: GenerationError.self) { try TokenSampler(vocabularySize: 3, strategy: .sampling(SamplingOptions(minTokensToKeep: 0))) }
    }

    /// Many seeded draws from a fixed distribution: kept tokens appear with their renormalised probabilities
    /// (Pearson chi-square below the 0.999 quantile), filtered tokens never. The seed is fixed, so the
    /// result is deterministic; a wrong filter or a biased draw fails it.
    @Test func sampledFrequenciesMatchRenormalisedProbabilities() throws {
        let probabilities: [Double] = [0.02, 0.18, 0.05, 0.25, 0.01, 0.12, 0.2, 0.07, 0.03, 0.07]
        let logits = probabilities.map { Float(log($0)) }
        let options = SamplingOptions(topK: 6, topP: 0.9)
        let sampler = try TokenSampler(vocabularySize: logits.count, strategy: .sampling(options), seed: 12345)
        // top-k 6 keeps {3, 6, 1, 5, 7, 9}; over those (mass 0.89) top-p 0.9 drops the ascending prefix with
        // cumulative ≤ 0.1: 0.07/0.89 = 0.0787 → id 7 goes (ties: 7 before 9), 0.157 > 0.1 keeps id 9.
        let expectedKept = [1, 3, 5, 6, 9]
        #expect(kept(withRow(logits) { sampler.warp($0, options: options) }) == expectedKept)
        let draws = 200_000
        var counts = [Int](repeating: 0, count: logits.count)
        var row = logits
        for _ in 0..<draws {
            row.withUnsafeMutableBufferPointer { buffer in
                _ = buffer.update(fromContentsOf: logits)
                counts[sampler.chooseToken(from: buffer)] += 1
            }
        }
        for id in logits.indices where !expectedKept.contains(id) { #expect(counts[id] == 0, "filtered id \(id) drawn \(counts[id]) times") }
        let mass = expectedKept.reduce(0.0) { $0 + probabilities[$1] }
        var chiSquare = 0.0
        for id in expectedKept {
            let expected = Double(draws) * probabilities[id] / mass
            chiSquare += (Double(counts[id]) - expected) * (Double(counts[id]) - expected) / expected
        }
        // 4 degrees of freedom: P(χ² > 18.467) = 0.001.
        #expect(chiSquare < 18.467, "chi-square \(chiSquare), counts \(counts)")
        // and the statistic is not suspiciously tiny either (P(χ² < 0.0908) = 0.001), which catches a
        // sampler that returns expected counts deterministically
        #expect(chiSquare > 0.0908, "chi-square \(chiSquare)")
    }

    @Test func topKOneSamplesTheArgmax() throws {
        var g = Xoshiro256StarStar(seed: 9)
        let logits = (0..<1000).map { _ in Float(g.nextUnitDouble() * 10) }
        let best = logits.withUnsafeBufferPointer { TokenSampler.argmax($0) }
        let sampler = try TokenSampler(vocabularySize: 1000, strategy: .sampling(SamplingOptions(temperature: 1.7, topK: 1)), seed: 1)
        for _ in 0..<50 {
            var row = logits
            #expect(row.withUnsafeMutableBufferPointer { sampler.chooseToken(from: $0) } == best)
        }
    }
}

@Suite struct GenerationOptionsTests {
    @Test func lengthsFollowTransformers() throws {
        #expect(try GenerationOptions().resolvedMaxLength(promptLength: 6, contextLength: 64) == 20)
        #expect(try GenerationOptions(maxLength: 10).resolvedMaxLength(promptLength: 6, contextLength: 64) == 10)
        // max_new_tokens wins over max_length and does not count the prompt
        #expect(try GenerationOptions(maxLength: 10, maxNewTokens: 50).resolvedMaxLength(promptLength: 6, contextLength: 64) == 56)
    }

    @Test func impossibleLengthsThrow() {
        #expect(throws: GenerationError.lengthExceedsContext(maxLength: 65, contextLength: 64)) {
            try GenerationOptions(maxNewTokens: 59).resolvedMaxLength(promptLength: 6, contextLength: 64)
        }
        #expect(throws: GenerationError.promptTooLong(promptLength: 70, contextLength: 64)) {
            try GenerationOptions(maxNewTokens: 1).resolvedMaxLength(promptLength: 70, contextLength: 64)
        }
        #expect(throws: GenerationError.maxLengthNotAbovePrompt(maxLength: 6, promptLength: 6)) {
            try GenerationOptions(maxLength: 6).resolvedMaxLength(promptLength: 6, contextLength: 64)
        }
        #expect(throws: GenerationError.emptyPrompt) { try GenerationOptions().resolvedMaxLength(promptLength: 0, contextLength: 64) }
        #expect(throws: GenerationError.self) { try GenerationOptions(numReturnSequences: 0).validated() }
        // max_new_tokens = Int.max (generation_config.json or --max-new-tokens) used to trap on the addition.
        #expect(throws: GenerationError.newTokensExceedContext(maxNewTokens: Int.max, promptLength: 6, contextLength: 64)) {
            try GenerationOptions(maxNewTokens: Int.max).resolvedMaxLength(promptLength: 6, contextLength: 64)
        }
        #expect(throws: GenerationError.invalidOption(name: "num-return-sequences", value: "100000000000", expected: "an integer in 1...4096")) {
            try GenerationOptions(numReturnSequences: 100_000_000_000).validated()
        }
    }

    @Test func padFallsBackToEOS() {
        #expect(GenerationOptions(eosTokenIDs: [50256]).effectivePadTokenID == 50256)
        #expect(GenerationOptions(eosTokenIDs: [50256], padTokenID: 0).effectivePadTokenID == 0)
        #expect(GenerationOptions().effectivePadTokenID == nil)
    }
}
