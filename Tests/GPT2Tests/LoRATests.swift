import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

/// LoRA against PEFT 0.21.2 + torch 2.13 goldens (`fixtures/peft-tiny`, made by `scripts/make_peft_goldens.py`),
/// finite differences of the adapter backward, frozen bases, refused adapters, and the trainable-subset core.
@Suite struct LoRATests {
    static let base = Fixtures.path("tiny-gpt2")
    static let adapters = ["all-modules", "rslora-attn"]

    struct Golden {
        var loss: Double
        var grads: [String: [Double]]
        var trajectory: [Double]
        var trajectoryLearningRate: Double
        var mergedLoss: Double
    }

    /// PEFT's adapter gradients for the golden example computed in float64 (`scripts/make_peft_fp64_gradients.py`):
    /// the exact answer a float32 computation approaches. PEFT's own float32 gradients (`Golden.grads`) differ from
    /// them by up to 2.7e-6 (rslora-attn), more than the tests' atol, so two equally good float32 results can land
    /// on opposite sides of them.
    static func float64Gradients(_ name: String) throws -> [String: [Double]] {
        let object = try #require(try Fixtures.json("peft-tiny/\(name)/gradients_fp64.json") as? [String: Any])
        return try #require(object["grads"] as? [String: [Double]])
    }

    static func golden(_ name: String) throws -> Golden {
        let object = try #require(try Fixtures.json("peft-tiny/\(name)/goldens.json") as? [String: Any])
        let grads = try #require(object["grads"] as? [String: [Double]])
        return Golden(loss: try #require(object["loss"] as? Double), grads: grads,
                      trajectory: try #require(object["trajectory_losses"] as? [Double]),
                      trajectoryLearningRate: try #require(object["trajectory_lr"] as? Double),
                      mergedLoss: try #require(object["merged_loss"] as? Double))
    }

    static func example() throws -> (ids: [TokenID], labels: [TokenID]) {
        let g = try #require(try Fixtures.json("tiny-gpt2/goldens.json") as? [String: Any])
        let e = try #require((g["examples"] as? [[String: Any]])?.first)
        let ids = try #require(e["input_ids"] as? [Int])
        let labels = try #require(e["labels"] as? [Int])
        return (ids, labels)
    }

    static func loraModel(_ name: String) throws -> GPT2Model {
        let (base, _) = try ModelIO.loadModel(path: Self.base, trainsBase: true)
        let adapter = try AdapterFiles.read(folder: Fixtures.path("peft-tiny/\(name)"), modelConfig: base.config)
        return try GPT2Model(parameters: base.parameters, trainable: .none(base.layout), adapter: adapter)
    }

    /// PEFT's loss (its float32 run) and adapter gradients (its float64 run: see `float64Gradients`).
    @Test(arguments: adapters)
    func peftAdapterGivesPEFTsLossAndGradients(name: String) throws {
        let model = try Self.loraModel(name)
        let g = try Self.golden(name)
        let (ids, labels) = try Self.example()
        model.zeroGradients()
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels, training: true))
        expectClose(Double(loss), g.loss, rtol: 1e-5, "loss")
        model.backward()
        #expect(model.gradients.count == model.adapter?.parameterCount, "only the adapter has gradients")
        let adapter = try #require(model.adapter)
        let exact = try Self.float64Gradients(name)
        #expect(Set(exact.keys) == Set(g.grads.keys))
        for (key, shape, range) in adapter.namedTensors {
            let expected = try #require(exact[key], "no golden for \(key)")
            #expect(expected.count == shape.elementCount)
            let actual = Array(model.adapterGradients[range]).map(Double.init)
            expectAllClose(actual, expected, rtol: 1e-3, atol: 1e-6, key)
        }
    }

    @Test(arguments: adapters)
    func tenAdamWStepsFollowPEFTsTrajectory(name: String) throws {
        let model = try Self.loraModel(name)
        let g = try Self.golden(name)
        let before = model.parameters.storage.toArray()
        var options = TrainingOptions()
        options.learningRate = g.trajectoryLearningRate; options.eps = 1e-6; options.steps = 10; options.shuffle = false
        let (ids, labels) = try Self.example()
        let example = TrainingExample(inputIDs: ids, labels: labels)
        let trainer = try Trainer(model: model, examples: [example], options: options, padTokenID: 50256)
        try trainer.run { _ in true }
        expectAllClose(trainer.progress.losses, g.trajectory, rtol: 1e-4, "losses")
        let after = try SafetensorsReader.read(path: Fixtures.path("peft-tiny/\(name)/after_10_steps.safetensors"))
        let adapter = try #require(model.adapter)
        for (key, _, range) in adapter.namedTensors {
            let expected = try #require(after[key]).floats().map(Double.init)
            expectAllClose(Array(adapter.storage[range]).map(Double.init), expected, rtol: 1e-4, atol: 1e-5, key)
        }
        #expect(model.parameters.storage.toArray() == before, "the frozen base changed")
    }

    @Test(arguments: adapters)
    func mergeEqualsMergeAndUnload(name: String) throws {
        let (parameters, _) = try ModelIO.loadMerged(path: Self.base, adapter: Fixtures.path("peft-tiny/\(name)"))
        let merged = try SafetensorsReader.read(path: Fixtures.path("peft-tiny/\(name)/merged.safetensors"))
        #expect(merged.count == 8)
        for (key, tensor) in merged {
            let view = try #require(parameters.view(named: key), "\(key)")
            expectAllClose(Array(view).map(Double.init), tensor.floats().map(Double.init), rtol: 0, atol: 1e-6, key)
        }
        let model = try GPT2Model(parameters: parameters)
        let (ids, labels) = try Self.example()
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels))
        expectClose(Double(loss), try Self.golden(name).mergedLoss, rtol: 1e-5, "merged loss")
    }

    @Test func adapterBackwardMatchesFiniteDifferences() throws {
        var config = GPT2Config(vocabularySize: 23, maxPositions: 8, embeddingSize: 12, layerCount: 2, headCount: 3,
                                activationFunction: "gelu_new", dropout: 0.2)
        config.scaleAttentionByInverseLayerIndex = true
        let params = GPT2Parameters(config: config, seed: 5)
        let lora = LoRAConfiguration(rank: 3, alpha: 5, dropout: 0.25, targetModules: ["c_attn", "c_proj", "c_fc"])
        let adapter = try LoRAAdapter(configuration: lora, modelConfig: config)
        var rng = TestRNG(3)
        for i in 0..<adapter.parameterCount { adapter.storage.buffer[i] = (rng.next() * 2 - 1) * 0.5 }
        let model = try GPT2Model(parameters: params, trainable: .none(params.layout), adapter: adapter)
        let ids: [TokenID] = [3, 7, 1, 22, 5, 9, 9, 0, 4, 4]
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        let labels: [TokenID] = [-100, 7, 1, 22, 5, -100, 9, 0, -100, -100]
        func loss() throws -> Double {
            Double(try #require(try model.forward(inputIDs: ids, batchSize: 2, sequenceLength: 5, attentionMask: mask,
                                                  labels: labels, training: true, dropoutSeed: 99)))
        }
        model.zeroGradients()
        _ = try loss()
        model.backward()
        let analytic = Array(model.adapterGradients)
        var values = adapter.storage.toArray()
        finiteDifferenceCheck(&values, analytic: analytic, samples: 60, h: 2e-3, "adapter") { x in
            _ = adapter.storage.buffer.update(from: x)
            return (try? loss()) ?? .nan
        }
    }

    @Test func trainingASubsetLeavesTheRestAndMatchesFullGradients() throws {
        let (full, _) = try ModelIO.loadModel(path: Self.base, trainsBase: true)
        let (ids, labels) = try Self.example()
        full.zeroGradients()
        _ = try full.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels)
        full.backward()
        let (reloaded, _) = try ModelIO.loadModel(path: Self.base, trainsBase: true)
        let names: Set = ["transformer.h.1.mlp.c_fc.weight", "transformer.ln_f.bias", "transformer.h.1.ln_2.weight"]
        let subset = TrainableParameters(layout: reloaded.layout) { names.contains($0.name) }
        let model = try GPT2Model(parameters: reloaded.parameters, trainable: subset)
        model.zeroGradients()
        _ = try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels)
        model.backward()
        for e in model.layout.entries {
            if names.contains(e.name) {
                let g = try #require(model.gradient(named: e.name))
                #expect(Array(g) == Array(try #require(full.gradient(named: e.name))), "\(e.name)")
            } else {
                #expect(model.gradient(named: e.name) == nil, "\(e.name) is frozen")
            }
        }
        #expect(model.gradients.count == names.reduce(0) { n, name in n + (model.layout.entry(named: name)?.range.count ?? 0) })
        let before = model.parameters.storage.toArray()
        var options = TrainingOptions()
        options.learningRate = 1e-2; options.steps = 3
        let trainer = try Trainer(model: model, examples: [TrainingExample(inputIDs: ids, labels: labels)], options: options, padTokenID: 50256)
        try trainer.run { _ in true }
        let after = model.parameters.storage.toArray()
        for e in model.layout.entries {
            let changed = after[e.range] != before[e.range]
            #expect(changed == names.contains(e.name), "\(e.name): changed \(changed)")
        }
    }

    @Test func pefTargetsMatchBySuffix() throws {
        let config = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-gpt2/config.json"))))
        func kinds(_ targets: [String]) throws -> [String] {
            try LoRAConfiguration(rank: 2, targetModules: targets).modules(layerCount: config.layerCount).map { "h.\($0.layer).\($0.kind.path)" }
        }
        #expect(try kinds(["c_proj"]) == ["h.0.attn.c_proj", "h.0.mlp.c_proj", "h.1.attn.c_proj", "h.1.mlp.c_proj"])
        #expect(try kinds(["attn.c_proj"]) == ["h.0.attn.c_proj", "h.1.attn.c_proj"])
        #expect(try kinds(["h.1.mlp.c_fc"]) == ["h.1.mlp.c_fc"])
        #expect(throws: LoRAError.unknownTarget("q_proj")) { try kinds(["c_attn", "q_proj"]) }
        #expect(throws: LoRAError.unknownTarget("lm_head")) { try kinds(["lm_head"]) }
    }

    @Test func adaptersTheCodeCannotHonourAreRefusedNamingTheField() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            Fixtures.path("peft-tiny/all-modules/adapter_config.json")))) as? [String: Any])
        let config = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-gpt2/config.json"))))
        let cases: [(String, [String: Any], String)] = [
            ("dora", ["use_dora": true], "use_dora"),
            ("rank-pattern", ["rank_pattern": ["c_attn": 8]], "rank_pattern"),
            ("alpha-pattern", ["alpha_pattern": ["c_attn": 8]], "alpha_pattern"),
            ("modules-to-save", ["modules_to_save": ["lm_head"]], "modules_to_save"),
            ("missing-target", ["target_modules": ["c_attn", "q_proj"]], "q_proj"),
            ("ia3", ["peft_type": "IA3"], "peft_type"),
            ("bias", ["bias": "all"], "bias"),
            ("rank", ["r": 0], "'r'"),
            ("layers", ["layers_to_transform": [0]], "layers_to_transform"),
        ]
        for (name, change, field) in cases {
            let folder = dir + "/" + name
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var object = good
            for (k, v) in change { object[k] = v }
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: folder + "/adapter_config.json"))
            try FileManager.default.copyItem(atPath: Fixtures.path("peft-tiny/all-modules/adapter_model.safetensors"),
                                             toPath: folder + "/adapter_model.safetensors")
            do {
                _ = try AdapterFiles.read(folder: folder, modelConfig: config)
                Issue.record("\(name) was accepted")
            } catch {
                #expect("\(error)".contains(field) && "\(error)".contains("adapter_config.json"), "\(name): \(error)")
            }
        }
        // An adapter of another base: shapes do not fit the micro model (n_embd 24).
        let micro = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("micro-gpt2/config.json"))))
        #expect(throws: AdapterError.self) { try AdapterFiles.read(folder: Fixtures.path("peft-tiny/all-modules"), modelConfig: micro) }
        // Unknown harmless keys (PEFT writes many) are accepted; a regex string target is honoured.
        let folder = dir + "/extra"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var object = good
        object["some_future_key"] = ["x": 1]
        object["target_modules"] = #".*\.(c_attn|c_proj|c_fc)"#
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: folder + "/adapter_config.json"))
        try FileManager.default.copyItem(atPath: Fixtures.path("peft-tiny/all-modules/adapter_model.safetensors"),
                                         toPath: folder + "/adapter_model.safetensors")
        let adapter = try AdapterFiles.read(folder: folder, modelConfig: config)
        #expect(adapter.modules.count == 8)
    }

    @Test func writtenAdapterReadsBackAndLooksLikePEFTs() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-gpt2/config.json"))))
        let original = try AdapterFiles.read(folder: Fixtures.path("peft-tiny/all-modules"), modelConfig: config)
        try AdapterFiles.write(original, to: dir + "/a", baseModel: "tiny-gpt2")
        let again = try AdapterFiles.read(folder: dir + "/a", modelConfig: config)
        #expect(again.storage.toArray() == original.storage.toArray())
        #expect(again.configuration == original.configuration)
        let ours = try SafetensorsReader.read(path: dir + "/a/adapter_model.safetensors")
        let peft = try SafetensorsReader.read(path: Fixtures.path("peft-tiny/all-modules/adapter_model.safetensors"))
        #expect(ours.names.sorted() == peft.names.sorted())
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/a/adapter_config.json"))) as? [String: Any])
        #expect(json["peft_type"] as? String == "LORA" && json["task_type"] as? String == "CAUSAL_LM" && json["fan_in_fan_out"] as? Bool == true)
        #expect(json["bias"] as? String == "none" && json["base_model_name_or_path"] as? String == "tiny-gpt2")
    }

    @Test func initialisationIsPEFTs() throws {
        let config = try GPT2Config(jsonData: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-gpt2/config.json"))))
        let adapter = try LoRAAdapter(configuration: LoRAConfiguration(rank: 4, targetModules: ["c_fc", "mlp.c_proj"]), modelConfig: config)
        adapter.initialize(seed: 1)
        for m in adapter.modules {
            let a = adapter.storage[m.a], b = adapter.storage[m.b]
            let bound = 1 / Float(m.inputFeatures).squareRoot()
            #expect(a.allSatisfy { abs($0) <= bound } && a.contains { $0 != 0 })
            #expect(b.allSatisfy { $0 == 0 })
        }
    }
}
