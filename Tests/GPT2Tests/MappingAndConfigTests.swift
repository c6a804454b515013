import Foundation
import GPT2Kit
import Testing
import TestSupport

@Suite struct MappingTests {
    static func micro() throws -> (GPT2Config, StateDict) {
        (try Golden.config("micro-gpt2"), try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/model.safetensors")))
    }

    @Test func missingUnexpectedAndWrongShapeAreAllListed() throws {
        var (config, dict) = try Self.micro()
        dict.remove("transformer.h.1.ln_2.bias")
        dict["transformer.h.0.extra.weight"] = Tensor(floats: [1, 2], shape: [2])
        dict["transformer.wpe.weight"] = Tensor(zeros: .f32, shape: [24, 32])
        #expect(throws: StateDictError.mismatch(
            missing: ["transformer.h.1.ln_2.bias"], unexpected: ["transformer.h.0.extra.weight"],
            wrongShapes: [.init(name: "transformer.wpe.weight", expected: [32, 24], found: [24, 32])], nonFloat: [])) {
            try GPT2Parameters(config: config, stateDict: dict)
        }
        do { _ = try GPT2Parameters(config: config, stateDict: dict) } catch {
            let text = "\(error)"
            #expect(text.contains("tensor 'transformer.wpe.weight': expected [32, 24], found [24, 32]"))
            #expect(text.contains("'transformer.h.1.ln_2.bias'"))
        }
    }

    @Test func nonFloatTensorIsRejected() throws {
        var (config, dict) = try Self.micro()
        dict["transformer.ln_f.bias"] = Tensor(zeros: .i32, shape: [24])
        #expect(throws: StateDictError.mismatch(missing: [], unexpected: [], wrongShapes: [], nonFloat: ["transformer.ln_f.bias"])) {
            try GPT2Parameters(config: config, stateDict: dict)
        }
    }

    @Test func tiedOutputWeightMustEqualEmbedding() throws {
        var (config, dict) = try Self.micro()
        let wte = try #require(dict["transformer.wte.weight"])
        dict["lm_head.weight"] = wte
        let ok = try GPT2Parameters(config: config, stateDict: dict)
        #expect(ok.layout.totalCount > 0)
        var other = wte.floats(); other[5] += 1
        dict["lm_head.weight"] = Tensor(floats: other, shape: wte.shape)
        #expect(throws: StateDictError.untiedOutputWeight(name: "lm_head.weight", tiedTo: "transformer.wte.weight")) {
            try GPT2Parameters(config: config, stateDict: dict)
        }
    }

    @Test(arguments: [GPT2Parameters.KeyFormat.huggingFace, .hubStyle, .tensorFlow])
    func exportRoundTrip(format: GPT2Parameters.KeyFormat) throws {
        let (config, dict) = try Self.micro()
        let params = try GPT2Parameters(config: config, stateDict: dict)
        let exported = params.stateDict(format: format, includeOutputWeight: true)
        #expect(GPT2Parameters.detectFormat(of: exported) == format)
        switch format {
        case .huggingFace:
            #expect(exported.names.first == "transformer.wte.weight")
            let lm = try #require(exported["lm_head.weight"]), wte = try #require(exported["transformer.wte.weight"])
            #expect(lm.sharesBytes(with: wte))
            for (name, t) in dict { #expect(exported[name]?.isBitwiseEqual(to: t) == true, "\(name)") }
        case .hubStyle:
            #expect(exported.contains("h.0.attn.c_attn.weight"))
        case .tensorFlow:
            #expect(exported["tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/bias:0"]?.shape == [1, 72])
            #expect(exported["tfgpt2lm_head_model/transformer/h_._1/ln_2/gamma:0"]?.shape == [24])
            #expect(exported["tfgpt2lm_head_model/transformer/wte/embeddings:0"]?.shape == [1000, 24])
            #expect(!exported.contains("lm_head.weight"))
        }
        let back = try GPT2Parameters(config: config, stateDict: exported)
        #expect(back.storage.toArray() == params.storage.toArray())
    }

    @Test func tensorFlowNamesWithOuterScopeAndWeightAlias() throws {
        let (config, dict) = try Self.micro()
        let params = try GPT2Parameters(config: config, stateDict: dict)
        var tf = StateDict()
        for (name, t) in params.stateDict(format: .tensorFlow, tensorFlowScope: "transformer/tfgpt2lm_head_model") {
            tf[name.replacingOccurrences(of: "wte/embeddings:0", with: "wte/weight:0")] = t
        }
        let back = try GPT2Parameters(config: config, stateDict: tf)
        #expect(back.storage.toArray() == params.storage.toArray())
        tf.remove("transformer/tfgpt2lm_head_model/transformer/h_._0/ln_1/beta:0")
        #expect(throws: StateDictError.mismatch(missing: ["transformer/h_._0/ln_1/beta:0"], unexpected: [], wrongShapes: [], nonFloat: [])) {
            try GPT2Parameters(config: config, stateDict: tf)
        }
    }

    @Test func hubStyleIgnoresOnlyTheNamedBuffers() throws {
        let config = try Golden.config("micro-gpt2")
        var dict = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/hub_style.safetensors"))
        #expect(dict.contains("h.0.attn.bias") && dict.contains("h.1.attn.masked_bias"))
        _ = try GPT2Parameters(config: config, stateDict: dict)
        dict["h.2.attn.bias"] = Tensor(zeros: .f32, shape: [1])
        #expect(throws: StateDictError.mismatch(missing: [], unexpected: ["h.2.attn.bias"], wrongShapes: [], nonFloat: [])) {
            try GPT2Parameters(config: config, stateDict: dict)
        }
    }
}

@Suite struct ConfigTests {
    @Test func defaultsMatchTransformers() throws {
        let c = try GPT2Config(jsonData: Data("{}".utf8))
        #expect(c.vocabularySize == 50257 && c.maxPositions == 1024 && c.embeddingSize == 768)
        #expect(c.layerCount == 12 && c.headCount == 12 && c.feedForwardSize == 3072)
        #expect(c.activationFunction == "gelu_new" && c.residualDropout == 0.1 && c.layerNormEpsilon == 1e-5)
        #expect(c.scaleAttentionWeights && !c.scaleAttentionByInverseLayerIndex && !c.reorderAndUpcastAttention)
        #expect(c.bosTokenID == 50256 && c.eosTokenID == 50256)
    }

    @Test func oldNCtxAliasAndUnknownKeysRoundTrip() throws {
        let json = #"{"n_ctx": 128, "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100, "n_inner": 100, "custom": {"a": [1, 2.5, "x"]}}"#
        let c = try GPT2Config(jsonData: Data(json.utf8))
        #expect(c.maxPositions == 128 && c.feedForwardSize == 100)
        let again = try GPT2Config(jsonData: try c.jsonData())
        var expected = c
        expected.extraKeys["model_type"] = .string("gpt2") // written when absent, as save_pretrained does
        #expect(again == expected)
        #expect(again.extraKeys["custom"] == .object(["a": .array([.int(1), .double(2.5), .string("x")])]))
        #expect(again.extraKeys["n_ctx"] == .int(128))
    }

    @Test func tinyConfigRoundTrips() throws {
        let c = try Golden.config("tiny-gpt2")
        #expect(c.embeddingSize == 32 && c.residualDropout == 0 && c.extraKeys["model_type"] == .string("gpt2"))
        #expect(try GPT2Config(jsonData: try c.jsonData()) == c)
    }

    @Test(arguments: [
        (#"{"n_embd": 30, "n_head": 4}"#, "n_embd"),
        (#"{"n_layer": 0}"#, "n_layer"),
        (#"{"vocab_size": -3}"#, "vocab_size"),
        (#"{"n_head": "twelve"}"#, "n_head"),
        (#"{"activation_function": "mish2"}"#, "activation_function"),
        (#"{"resid_pdrop": 1.5}"#, "resid_pdrop"),
        (#"{"scale_attn_weights": 1}"#, "scale_attn_weights"),
    ])
    func invalidConfigNamesTheKey(json: String, key: String) {
        do {
            _ = try GPT2Config(jsonData: Data(json.utf8), path: "config.json")
            Issue.record("\(json) accepted")
        } catch {
            switch error {
            case let .wrongType(k, _, _, _), let .invalidValue(k, _, _, _): #expect(k == key, "\(error)")
            case .invalidJSON, .tooManyParameters: Issue.record("\(error)")
            }
        }
    }

    @Test func absurdSizesAreRefusedBeforeAnyLayoutIsBuilt() throws {
        func config(_ json: String) throws(ConfigError) -> GPT2Config { try GPT2Config(jsonData: Data(json.utf8)) }
        // 3e9 · 9e9 overflows Int: formerly "Fatal error: shape … overflows" in the layout.
        #expect(throws: ConfigError.tooManyParameters(count: nil, limit: GPT2Config.maximumParameterCount, path: nil)) {
            try config(#"{"n_embd": 3000000000, "n_head": 1, "vocab_size": 2000000000}"#)
        }
        // 1.08e12 floats (4.3 TB) fits Int but not the limit.
        do {
            _ = try config(#"{"n_embd": 30000, "n_head": 1, "n_layer": 100}"#)
            Issue.record("4.3 TB config accepted")
        } catch {
            guard case let .tooManyParameters(count, _, _) = error else { Issue.record("\(error)"); return }
            #expect((count ?? 0) > GPT2Config.maximumParameterCount)
            #expect("\(error)".contains("more than the supported"))
        }
        // 12e9 layout entries: formerly hung.
        #expect(throws: ConfigError.invalidValue(key: "n_layer", value: "1000000000", reason: "is more than the supported 10000", path: nil)) {
            try config(#"{"n_layer": 1000000000}"#)
        }
        // An n_inner whose products overflow.
        #expect(throws: ConfigError.self) { try config(#"{"n_inner": 4611686018427387904}"#) }
    }

    @Test func checkedParameterCountMatchesTheLayout() throws {
        for c in [GPT2Config(), try Golden.config("micro-gpt2"), GPT2Config(vocabularySize: 7, maxPositions: 5, embeddingSize: 6, layerCount: 3, headCount: 2, innerSize: 10)] {
            #expect(c.checkedParameterCount == GPT2ParameterLayout(config: c).totalCount)
        }
        #expect(GPT2Config().checkedParameterCount == 124_439_808)
    }

    @Test func largeValidConfigFailsOnNamesBeforeAllocating() throws {
        // ≈ 9.7e9 floats (39 GB): valid, but the micro weights must be refused before the buffer is allocated.
        let config = GPT2Config(vocabularySize: 50257, maxPositions: 1024, embeddingSize: 4096, layerCount: 48, headCount: 1)
        try config.validate()
        let dict = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/model.safetensors"))
        #expect(throws: StateDictError.self) { try GPT2Parameters(config: config, stateDict: dict) }
    }

    @Test func notAnObject() {
        #expect(throws: ConfigError.self) { try GPT2Config(jsonData: Data("[1]".utf8)) }
    }
}

@Suite struct ModelInputTests {
    @Test func badInputsThrow() throws {
        let model = try Golden.model("micro-gpt2")
        #expect(throws: ModelInputError.tokenOutOfRange(index: 1, id: 1000, vocabularySize: 1000)) {
            try model.forward(inputIDs: [1, 1000], batchSize: 1, sequenceLength: 2)
        }
        #expect(throws: ModelInputError.sequenceTooLong(length: 33, maximum: 32)) {
            try model.forward(inputIDs: [TokenID](repeating: 1, count: 33), batchSize: 1, sequenceLength: 33)
        }
        #expect(throws: ModelInputError.countMismatch(what: "input ids", expected: 4, found: 3)) {
            try model.forward(inputIDs: [1, 2, 3], batchSize: 2, sequenceLength: 2)
        }
        #expect(throws: ModelInputError.labelOutOfRange(index: 0, label: -1, vocabularySize: 1000)) {
            try model.forward(inputIDs: [1, 2], batchSize: 1, sequenceLength: 2, labels: [-1, 2])
        }
    }
}
