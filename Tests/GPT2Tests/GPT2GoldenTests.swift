import Foundation
import GPT2Kit
import Testing
import TestSupport

@Suite struct GPT2GoldenTests {
    @Test func tinyExamplesLossLogitsGradients() throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]])
        let model = try Golden.model("tiny-gpt2")
        let log = ErrorLog()
        for (k, ex) in examples.enumerated() {
            let ids = try Golden.ints(ex["input_ids"]), labels = try Golden.ints(ex["labels"])
            let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels))
            let gl = try Golden.double(ex["loss"])
            expectClose(Double(loss), gl, rtol: 1e-5, "example \(k) loss")
            log.note("loss", Double(loss), gl, "example \(k)")
            try checkLogits(model, try #require(ex["logits"] as? [Any]), what: "example \(k)", log: log)
            model.zeroGradients()
            model.backward()
            let grads = try #require(ex["grads"] as? [String: [String: Any]])
            #expect(grads.count == model.layout.entries.count)
            for e in model.layout.entries {
                let gs = try #require(grads[e.name], "no golden for \(e.name)")
                // gradients: rtol 1e-4; sums that cancel to ~1e-7 need an atol: 2e-5 (measured max 3.1e-6)
                try checkStats(UnsafeBufferPointer(model.gradients[e.range]), gs, rtol: 1e-4, atolSum: 2e-5, atolFirst: 1e-6,
                               "example \(k) grad \(e.name)", log: log, category: "grad")
            }
        }
        log.report("tiny examples")
    }

    @Test func tinyBatchWithPadding() throws {
        let g = try Golden.tiny()
        let batch = try #require(g["batch"] as? [String: Any])
        let rows = try #require(batch["input_ids"] as? [Any]), B = rows.count
        let ids = try rows.flatMap { try Golden.ints($0) }
        let mask = try #require(batch["attention_mask"] as? [Any]).flatMap { try Golden.mask($0) }
        let labels = try #require(batch["labels"] as? [Any]).flatMap { try Golden.ints($0) }
        let T = ids.count / B
        let model = try Golden.model("tiny-gpt2")
        let log = ErrorLog()
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: B, sequenceLength: T, attentionMask: mask, labels: labels))
        let gl = try Golden.double(batch["loss"])
        expectClose(Double(loss), gl, rtol: 1e-5, "batch loss")
        log.note("loss", Double(loss), gl, "batch")
        model.zeroGradients()
        model.backward()
        let grads = try #require(batch["grads"] as? [String: [String: Any]])
        for e in model.layout.entries {
            let gs = try #require(grads[e.name])
            try checkStats(UnsafeBufferPointer(model.gradients[e.range]), gs, rtol: 1e-4, atolSum: 2e-5, atolFirst: 1e-6,
                           "batch grad \(e.name)", log: log, category: "grad")
        }
        log.report("tiny batch")
    }

    @Test func microLossAndLogits() throws {
        let g = try Golden.micro()
        let model = try Golden.model("micro-gpt2")
        let ids = try Golden.ints(g["input_ids"]), labels = try Golden.ints(g["labels"])
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels))
        let log = ErrorLog()
        let gl = try Golden.double(g["loss"])
        expectClose(Double(loss), gl, rtol: 1e-5, "micro loss")
        log.note("loss", Double(loss), gl, "micro")
        try checkLogits(model, try #require(g["logits"] as? [Any]), what: "micro", log: log)
        let params = try #require(g["params"] as? [String: [String: Any]])
        for e in model.layout.entries {
            let ps = try #require(params[e.name])
            try checkStats(UnsafeBufferPointer(model.parameters.storage[e.range]), ps, rtol: 1e-6, atolSum: 1e-5, atolFirst: 0,
                           "micro param \(e.name)", log: log, category: "param")
        }
        log.report("micro")
    }

    @Test(arguments: [("model.fp16.safetensors", "logits_from_fp16_weights"), ("model.bf16.safetensors", "logits_from_bf16_weights")])
    func microHalfPrecisionWeights(file: String, key: String) throws {
        let g = try Golden.micro()
        let model = try Golden.model("micro-gpt2", file: file)
        let ids = try Golden.ints(g["input_ids"])
        try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count)
        try checkLogits(model, try #require(g[key] as? [Any]), what: file, log: ErrorLog())
    }

    @Test func microHubStyleNames() throws {
        let g = try Golden.micro()
        let dict = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/hub_style.safetensors"))
        #expect(GPT2Parameters.detectFormat(of: dict) == .hubStyle)
        let model = try GPT2Model(config: try Golden.config("micro-gpt2"), stateDict: dict)
        let ids = try Golden.ints(g["input_ids"]), labels = try Golden.ints(g["labels"])
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels))
        expectClose(Double(loss), try Golden.double(g["loss"]), rtol: 1e-5, "hub-style loss")
    }
}
