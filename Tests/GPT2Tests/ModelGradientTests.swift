import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

/// Whole-model backward against central differences on a tiny random GPT-2, with dropout, padding mask
/// and inverse-layer attention scaling switched on.
@Suite struct ModelGradientTests {
    static func randomModel(activation: String = "gelu_new", dropout: Double = 0.2) throws -> GPT2Model {
        var config = GPT2Config(vocabularySize: 23, maxPositions: 8, embeddingSize: 12, layerCount: 2, headCount: 3,
                                activationFunction: activation, dropout: dropout)
        config.scaleAttentionByInverseLayerIndex = true
        let params = GPT2Parameters(config: config)
        var rng = TestRNG(11)
        for e in params.layout.entries {
            let v = params.storage[e.range]
            let isNormWeight = e.name.hasSuffix("ln_1.weight") || e.name.hasSuffix("ln_2.weight") || e.name.hasSuffix("ln_f.weight")
            for i in v.indices { v[i] = (isNormWeight ? 1 : 0) + (rng.next() * 2 - 1) * 0.4 }
        }
        return try GPT2Model(parameters: params)
    }

    // ReLU is left out: h = 1e-2 steps across its kink (its kernel is checked away from 0 in KernelGradientTests).
    @Test(arguments: [("gelu_new", 0.2), ("silu", 0.0), ("gelu", 0.1)])
    func backwardMatchesFiniteDifferences(activation: String, dropout: Double) throws {
        let model = try Self.randomModel(activation: activation, dropout: dropout)
        let ids: [TokenID] = [3, 7, 1, 22, 5, 9, 9, 0, 4, 4]
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        let labels: [TokenID] = [-100, 7, 1, 22, 5, -100, 9, 0, -100, -100]
        func loss() throws -> Double {
            Double(try #require(try model.forward(inputIDs: ids, batchSize: 2, sequenceLength: 5, attentionMask: mask,
                                                  labels: labels, training: true, dropoutSeed: 1234)))
        }
        model.zeroGradients()
        _ = try loss()
        model.backward()
        let h: Float = 1e-2
        for e in model.layout.entries {
            let p = model.parameters.storage[e.range], g = model.gradients[e.range]
            let step = max(1, e.range.count / 3)
            for i in stride(from: 0, to: e.range.count, by: step) {
                let saved = p[i]
                p[i] = saved + h; let plus = try loss()
                p[i] = saved - h; let minus = try loss()
                p[i] = saved
                let numeric = (plus - minus) / Double(2 * h)
                expectClose(Double(g[i]), numeric, rtol: 3e-2, atol: 2e-3, "\(activation) \(e.name)[\(i)]")
            }
        }
    }

    @Test func paddingDoesNotChangeUnpaddedRows() throws {
        let model = try Self.randomModel(dropout: 0)
        try model.forward(inputIDs: [3, 7, 1], batchSize: 1, sequenceLength: 3)
        let alone = (0..<3).map { model.logits(batch: 0, position: $0) }
        try model.forward(inputIDs: [3, 7, 1, 5, 5, 2, 8, 6, 4, 1], batchSize: 2, sequenceLength: 5,
                          attentionMask: [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
        for t in 0..<3 {
            let padded = model.logits(batch: 0, position: t)
            for (a, b) in zip(alone[t], padded) { #expect(abs(a - b) <= 1e-5 * max(1, abs(a))) }
        }
    }

    @Test func evalModeIgnoresDropoutAndGradientsAccumulate() throws {
        let model = try Self.randomModel(dropout: 0.5)
        let ids: [TokenID] = [1, 2, 3, 4], labels: [TokenID] = [1, 2, 3, 4]
        let a = try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: 4, labels: labels)
        let b = try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: 4, labels: labels, training: true, dropoutSeed: 1)
        let c = try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: 4, labels: labels)
        #expect(a == c && a != b)
        model.zeroGradients()
        model.backward()
        let once = model.gradients.toArray()
        model.backward()
        let twice = model.gradients.toArray()
        for i in once.indices { #expect(abs(twice[i] - 2 * once[i]) <= 1e-6 * max(1, abs(once[i]))) }
    }

    /// Scoring only the counted positions (training's path) gives the full path's loss and gradients.
    @Test func scoredPositionsOnlyMatchesAllLogits() throws {
        let model = try Self.randomModel(dropout: 0.2)
        let ids: [TokenID] = [3, 7, 1, 22, 5, 9, 9, 0, 4, 4]
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        let labels: [TokenID] = [-100, 7, 1, 22, 5, -100, 9, 0, -100, -100]
        var losses: [Float] = [], grads: [[Float]] = []
        for all in [true, false] {
            model.zeroGradients()
            losses.append(try #require(try model.forward(inputIDs: ids, batchSize: 2, sequenceLength: 5, attentionMask: mask,
                                                         labels: labels, training: true, dropoutSeed: 9, computeAllLogits: all)))
            model.backward()
            grads.append(model.gradients.toArray())
        }
        expectClose(Double(losses[1]), Double(losses[0]), rtol: 1e-6, "loss")
        var worst = 0.0
        for i in grads[0].indices { worst = max(worst, Double(abs(grads[1][i] - grads[0][i])) / (1e-7 + 1e-5 * Double(abs(grads[0][i])))) }
        #expect(worst <= 1, "gradients differ by up to \(worst)× the tolerance (atol 1e-7, rtol 1e-5)")
        // No scored position: NaN loss, backward adds nothing.
        model.zeroGradients()
        let none = try model.forward(inputIDs: [1, 2], batchSize: 1, sequenceLength: 2, labels: [1, -100], computeAllLogits: false)
        #expect(none?.isNaN == true)
        model.backward()
        #expect(model.gradients.toArray().allSatisfy { $0 == 0 })
    }
}
