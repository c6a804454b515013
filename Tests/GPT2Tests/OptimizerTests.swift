import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

@Suite struct OptimizerTests {
    @Test func decayMaskExemptsBiasesAndNormsByName() throws {
        let config = GPT2Config(vocabularySize: 10, maxPositions: 4, embeddingSize: 4, layerCount: 1, headCount: 2)
        let layout = GPT2ParameterLayout(config: config)
        let mask = WeightDecayMask.exemptingBiasesAndNorms(layout.namedRanges)
        let exempt = Set(layout.entries.filter { e in mask.exemptRanges.contains(e.range) }.map(\.name))
        #expect(exempt == ["transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.bias",
                           "transformer.h.0.attn.c_proj.bias", "transformer.h.0.ln_2.weight", "transformer.h.0.ln_2.bias",
                           "transformer.h.0.mlp.c_fc.bias", "transformer.h.0.mlp.c_proj.bias",
                           "transformer.ln_f.weight", "transformer.ln_f.bias"])
        // with zero gradients only decay moves parameters: exempt ranges stay put
        let n = layout.totalCount
        let opt = AdamW(parameterCount: n, options: .init(learningRate: 0.1, weightDecay: 0.5), decayMask: mask)
        let params = FloatBuffer(count: n), grads = FloatBuffer(count: n)
        params.buffer.update(repeating: 1)
        opt.step(parameters: params.buffer, gradients: UnsafeBufferPointer(grads.buffer))
        for e in layout.entries {
            let expected: Float = exempt.contains(e.name) ? 1 : 0.95
            #expect(params[e.range].allSatisfy { $0 == expected }, "\(e.name)")
        }
    }

    @Test func matchesHandComputedTorchStep() {
        // torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), p=1, g=0.5, two steps:
        // step 1: p = 1·(1 − 0.001) − 0.1·1 = 0.899 (m̂/√v̂ = 1); step 2 with g = 0.5 again: again 1 → p = 0.899·0.999 − 0.1
        let opt = AdamW(parameterCount: 1, options: .init(learningRate: 0.1, eps: 1e-8, weightDecay: 0.01))
        let p = FloatBuffer(count: 1), g = FloatBuffer(count: 1)
        p.buffer[0] = 1; g.buffer[0] = 0.5
        opt.step(parameters: p.buffer, gradients: UnsafeBufferPointer(g.buffer))
        expectClose(Double(p.buffer[0]), 0.899, rtol: 1e-6)
        opt.step(parameters: p.buffer, gradients: UnsafeBufferPointer(g.buffer))
        expectClose(Double(p.buffer[0]), 0.899 * 0.999 - 0.1, rtol: 1e-6)
    }

    @Test func exportedStateResumesIdentically() throws {
        let n = 50
        var rng = TestRNG(9)
        let start = rng.array(n), grads = (0..<6).map { _ in rng.array(n) }
        func run(resumeAt: Int?) throws -> [Float] {
            let p = FloatBuffer(count: n), g = FloatBuffer(count: n)
            _ = p.buffer.update(from: start)
            var opt = AdamW(parameterCount: n, options: .init(learningRate: 0.01))
            for (k, gk) in grads.enumerated() {
                if k == resumeAt {
                    let saved = opt.exportState()
                    opt = AdamW(parameterCount: n, options: .init(learningRate: 0.01))
                    try opt.importState(saved)
                    #expect(opt.stepCount == k)
                }
                _ = g.buffer.update(from: gk)
                opt.step(parameters: p.buffer, gradients: UnsafeBufferPointer(g.buffer))
            }
            return p.toArray()
        }
        #expect(try run(resumeAt: nil) == run(resumeAt: 3))
        let opt = AdamW(parameterCount: n)
        var bad = opt.exportState()
        bad["exp_avg"] = Tensor(zeros: .f32, shape: [n + 1])
        #expect(throws: OptimizerStateError.wrongShape(name: "exp_avg", expected: [n], found: [n + 1])) { try opt.importState(bad) }
        bad.remove("exp_avg_sq")
        #expect(throws: OptimizerStateError.self) { try opt.importState(bad) }
    }

    @Test func clippingFollowsTorch() {
        let g = FloatBuffer(count: 2)
        g.buffer[0] = 3; g.buffer[1] = 4
        let norm = clipGradientNorm(g.buffer, maxNorm: 1)
        #expect(norm == 5)
        expectClose(Double(g.buffer[0]), 3 / (5 + 1e-6), rtol: 1e-6)
        let untouched = clipGradientNorm(g.buffer, maxNorm: 10)
        expectClose(untouched, 1, rtol: 1e-6)
        expectClose(Double(g.buffer[1]), 4 / (5 + 1e-6), rtol: 1e-6)
    }

    @Test func schedulesMatchTransformers() {
        // values of transformers' get_*_schedule_with_warmup lambdas (warmup 2, total 10)
        let linear = LearningRateSchedule.linear(warmupSteps: 2, totalSteps: 10)
        #expect([0, 1, 2, 6, 10, 12].map { linear.multiplier(step: $0) } == [0, 0.5, 1, 0.5, 0, 0])
        let cosine = LearningRateSchedule.cosine(warmupSteps: 2, totalSteps: 10)
        #expect(cosine.multiplier(step: 1) == 0.5 && cosine.multiplier(step: 2) == 1)
        expectClose(cosine.multiplier(step: 6), 0.5, rtol: 1e-12)
        expectClose(cosine.multiplier(step: 10), 0, rtol: 0, atol: 1e-12)
        #expect(LearningRateSchedule.constant.multiplier(step: 99) == 1)
        #expect(LearningRateSchedule.constantWithWarmup(warmupSteps: 4).multiplier(step: 1) == 0.25)
        #expect(linear.learningRate(base: 1e-3, step: 1) == 5e-4)
    }
}

@Suite struct InitializationTests {
    @Test func followsTransformersInitWeights() throws {
        var config = GPT2Config(vocabularySize: 500, maxPositions: 16, embeddingSize: 32, layerCount: 2, headCount: 4)
        config.initializerRange = 0.1
        let p = GPT2Parameters(config: config, seed: 3)
        #expect(p.storage.toArray() == GPT2Parameters(config: config, seed: 3).storage.toArray())
        func std(_ v: UnsafeMutableBufferPointer<Float>) -> Double {
            (v.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(v.count)).squareRoot()
        }
        expectClose(std(p.view(.wte)), 0.1, rtol: 0.03)
        expectClose(std(p.view(layer: 0, .fcWeight)), 0.1, rtol: 0.05)
        expectClose(std(p.view(layer: 1, .fcProjWeight)), 0.05, rtol: 0.05)
        #expect(p.view(layer: 1, .ln2Weight).allSatisfy { $0 == 1 } && p.view(.lnfBias).allSatisfy { $0 == 0 })
        #expect(p.view(layer: 0, .attnBias).allSatisfy { $0 == 0 })
        let model = try GPT2Model(parameters: p)
        let loss = try #require(try model.forward(inputIDs: [1, 2, 3, 4], batchSize: 1, sequenceLength: 4, labels: [1, 2, 3, 4]))
        #expect(abs(Double(loss) - Foundation.log(500.0)) < 1.5)
    }
}
