import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

/// The reference fine-tuning trajectories (torch.optim.AdamW, 20 steps on example 0).
@Suite struct FinetuneGoldenTests {
    struct Run {
        var losses: [Double] = []
        var norms: [Double] = []
    }

    static func options(_ o: [String: Any]) throws -> (AdamW.Options, clip: Double?, steps: Int) {
        let betas = try Golden.doubles(o["betas"])
        let opts = AdamW.Options(learningRate: try Golden.double(o["lr"]), beta1: betas[0], beta2: betas[1],
                                 eps: try Golden.double(o["eps"]), weightDecay: try Golden.double(o["weight_decay"]))
        return (opts, (o["clip_grad_norm"] as? NSNumber)?.doubleValue, try #require(o["steps"] as? Int))
    }

    /// Runs `steps` AdamW steps (decaying every parameter, as the reference did) and records losses and norms.
    static func train(_ model: GPT2Model, ids: [TokenID], B: Int, mask: [Int32]? = nil, labels: [TokenID],
                      options: AdamW.Options, clip: Double?, steps: Int) throws -> Run {
        let opt = AdamW(parameterCount: model.layout.totalCount, options: options)
        var run = Run()
        for _ in 0..<steps {
            model.zeroGradients()
            let loss = try #require(try model.forward(inputIDs: ids, batchSize: B, sequenceLength: ids.count / B,
                                                      attentionMask: mask, labels: labels, training: true))
            model.backward()
            run.losses.append(Double(loss))
            if let clip { run.norms.append(clipGradientNorm(model.gradients.buffer, maxNorm: clip)) }
            else { run.norms.append(gradientNorm(UnsafeBufferPointer(model.gradients.buffer))) }
            opt.step(parameters: model.parameters.storage.buffer, gradients: UnsafeBufferPointer(model.gradients.buffer))
        }
        return run
    }

    /// Greedy continuation by repeated full forwards (no KV cache).
    static func greedy(_ model: GPT2Model, context: [TokenID], newTokens: Int) throws -> [TokenID] {
        var ids = context
        for _ in 0..<newTokens {
            try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count)
            let row = model.logits(batch: 0, position: ids.count - 1)
            var best = 0
            for i in row.indices where row[i] > row[best] { best = i }
            ids.append(best)
        }
        return ids
    }

    @Test(arguments: ["finetune_seed", "finetune_wd_clip", "finetune_overfit"])
    func trajectory(key: String) throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let golden = try #require(g[key] as? [String: Any])
        let (opts, clip, steps) = try Self.options(try #require(golden["optimizer"] as? [String: Any]))
        let model = try Golden.model("tiny-gpt2")
        let ids = try Golden.ints(ex["input_ids"]), labels = try Golden.ints(ex["labels"])
        let run = try Self.train(model, ids: ids, B: 1, labels: labels, options: opts, clip: clip, steps: steps)
        let log = ErrorLog()
        let losses = try Golden.doubles(golden["losses"])
        expectAllClose(run.losses, losses, rtol: 1e-4, "\(key) losses")
        for (a, b) in zip(run.losses, losses) { log.note("losses", a, b, key) }
        if let normsAny = golden["grad_norms_before_clip"] {
            let norms = try Golden.doubles(normsAny)
            expectAllClose(run.norms, norms, rtol: 1e-4, "\(key) grad norms")
            for (a, b) in zip(run.norms, norms) { log.note("grad norms", a, b, key) }
        }
        if let finals = golden["final_params"] as? [String: [String: Any]] {
            for e in model.layout.entries {
                let s = try #require(finals[e.name])
                // parameters after AdamW: rtol 1e-4, atol 1e-5 (STYLE table). Sums get atol 5e-4: the key part of
                // c_attn.bias has a mathematically zero gradient, so its updates are float rounding noise amplified by
                // Adam (eps 1e-8). Measured: ours vs golden 2.96e-4 on finetune_wd_clip h.1.attn.c_attn.bias sum;
                // torch float64 vs the float32 golden 2.95e-4 on the same sum.
                try checkStats(UnsafeBufferPointer(model.parameters.storage[e.range]), s, rtol: 1e-4, atolSum: 5e-4, atolFirst: 1e-5,
                               "\(key) final \(e.name)", log: log, category: "final params")
            }
        }
        if let greedyAfter = golden["greedy_after"] {
            let expected = try Golden.ints(greedyAfter)
            let context = try Golden.ints(ex["context_ids"])
            let out = try Self.greedy(model, context: context, newTokens: expected.count - context.count)
            #expect(out == expected, "\(key) greedy after fine-tuning")
        }
        log.report(key)
    }

    @Test func batchFiveSteps() throws {
        let g = try Golden.tiny()
        let batch = try #require(g["batch"] as? [String: Any])
        let rows = try #require(batch["input_ids"] as? [Any])
        let ids = try rows.flatMap { try Golden.ints($0) }
        let mask = try #require(batch["attention_mask"] as? [Any]).flatMap { try Golden.mask($0) }
        let labels = try #require(batch["labels"] as? [Any]).flatMap { try Golden.ints($0) }
        let losses = try Golden.doubles((batch["finetune_5_steps"] as? [String: Any])?["losses"])
        let seed = try #require(g["finetune_seed"] as? [String: Any])
        let (opts, _, _) = try Self.options(try #require(seed["optimizer"] as? [String: Any]))
        let model = try Golden.model("tiny-gpt2")
        let run = try Self.train(model, ids: ids, B: rows.count, mask: mask, labels: labels, options: opts, clip: nil, steps: losses.count)
        expectAllClose(run.losses, losses, rtol: 1e-4, "batch 5-step losses")
        let log = ErrorLog()
        for (a, b) in zip(run.losses, losses) { log.note("losses", a, b, "batch") }
        log.report("batch 5 steps")
    }

    @Test func greedyFromPretrained() throws {
        let g = try Golden.tiny()
        let greedy = try #require(g["greedy"] as? [String: Any])
        let context = try Golden.ints(greedy["prompt_ids"]), expected = try Golden.ints(greedy["output_ids"])
        let model = try Golden.model("tiny-gpt2")
        #expect(try Self.greedy(model, context: context, newTokens: expected.count - context.count) == expected)
    }
}
