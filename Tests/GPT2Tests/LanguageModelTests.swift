import Foundation
import GPT2Kit
import Testing
import TestSupport

/// The facade runs the notebook on the bundled tiny model and gives the PyTorch goldens, as the CLI does.
@Suite(.serialized) struct LanguageModelTests {
    static let context = "Harry Potter is a series of", label = "seven fantasy novels"
    static func load(adapter: String? = nil) throws -> LanguageModel {
        try LanguageModel(folder: Fixtures.path("tiny-gpt2"), tokenizer: Fixtures.path("gpt2-tokenizer"), adapter: adapter)
    }

    @Test func notebookThroughTheFacade() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let overfit = try #require(g["finetune_overfit"] as? [String: Any])
        let model = try Self.load()
        #expect(model.encode(Self.context) == [18308, 14179, 318, 257, 2168, 286])
        #expect(model.encode(Self.label) == [26548, 8842, 16122])
        // loss before training: transformers' loss of the label given the context
        let loss = try model.loss(context: Self.context, label: Self.label)
        expectClose(loss, try Golden.double(ex["loss"]), rtol: 1e-5, "loss")
        #expect(model.model.gradients.count == 0, "evaluation keeps no gradient buffer")

        var options = TrainingOptions(learningRate: 1e-2, steps: 20)
        options.eps = 1e-6
        var seen: [Int] = []
        let progress = try model.finetune(examples: [.pair(context: Self.context, label: Self.label)], options: options) { seen.append($0.step) }
        #expect(seen == Array(1...20))
        expectAllClose(progress.losses, try Golden.doubles(overfit["losses"]), rtol: 1e-4, "losses")
        #expect(model.model.gradients.count == 0, "gradients are freed after finetune")

        // greedy: the label comes back (EOS and defaults from generation_config.json)
        let text = try model.generate(prompt: Self.context, options: GenerationOverrides(maxNewTokens: 3))
        #expect(text == Self.context + Self.label)
        // sampling is seeded: the same seed gives the same text
        let sampled = GenerationOverrides(maxNewTokens: 5, sample: true, topK: 10, topP: 0.75, seed: 3)
        #expect(try model.generate(prompt: Self.context, options: sampled) == model.generate(prompt: Self.context, options: sampled))

        // save → load gives the same model, tokenizer and generation config included
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let written = try model.save(to: folder + "/hp")
        for name in ["model.safetensors", "config.json", "generation_config.json", "vocab.json", "merges.txt"] {
            #expect(written.contains(folder + "/hp/" + name), "\(name) written")
        }
        let again = try LanguageModel(folder: folder + "/hp")
        #expect(try again.loss(context: Self.context, label: Self.label) == model.loss(context: Self.context, label: Self.label))
        #expect(again.generationConfig == model.generationConfig)
    }

    @Test func generationDefaultsComeFromTheConfigFileThenTheCaller() throws {
        var file = GenerationConfigFile()
        file.doSample = true; file.topK = 7; file.maxNewTokens = 9; file.eosTokenIDs = [5]
        let config = GPT2Config()
        let fromFile = file.options(GenerationOverrides(), modelConfig: config)
        #expect(fromFile.strategy == .sampling(SamplingOptions(temperature: 1, topK: 7, topP: 1)))
        #expect(fromFile.maxNewTokens == 9 && fromFile.eosTokenIDs == [5])
        let overridden = file.options(GenerationOverrides(maxLength: 12, sample: false), modelConfig: config)
        #expect(overridden.strategy == .greedy)
        #expect(overridden.maxLength == 12 && overridden.maxNewTokens == nil, "a caller's max length drops the file's max_new_tokens")
        let none = GenerationConfigFile().options(GenerationOverrides(), modelConfig: config)
        #expect(none.maxLength == 20 && none.strategy == .greedy && none.eosTokenIDs == [50256])
    }

    @Test func loraThroughTheFacadeKeepsTheBaseAndSavesAPEFTAdapter() throws {
        let model = try Self.load()
        let base = model.parameters.allValues()
        try model.addAdapter(LoRAConfiguration(rank: 4, alpha: 8, targetModules: ["c_attn", "c_proj"]), seed: 1)
        let before = try model.loss(context: Self.context, label: Self.label)
        var options = TrainingOptions(learningRate: 1e-2, steps: 5)
        options.eps = 1e-6
        let progress = try model.finetune(examples: [.pair(context: Self.context, label: Self.label)], options: options)
        #expect(progress.losses.count == 5 && progress.losses.last! < progress.losses.first!)
        #expect(model.parameters.allValues() == base, "the base is frozen")
        let after = try model.loss(context: Self.context, label: Self.label)
        #expect(after < before)

        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try model.saveAdapter(to: folder + "/adapter")
        let reloaded = try Self.load(adapter: folder + "/adapter")
        #expect(try reloaded.loss(context: Self.context, label: Self.label) == after)
        // save merges the adapter; the merged model scores the same within rounding
        try model.save(to: folder + "/merged")
        let merged = try LanguageModel(folder: folder + "/merged")
        expectClose(try merged.loss(context: Self.context, label: Self.label), after, rtol: 1e-5, "merged loss")
        #expect(model.parameters.allValues() == base, "saving merged leaves the model unmerged")
    }

    @Test func refusals() throws {
        let model = try Self.load()
        #expect(throws: LanguageModelError.noAdapter) { try model.saveAdapter(to: "/nonexistent") }
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gpt2") + "/config.json", toPath: folder + "/config.json")
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gpt2") + "/model.safetensors", toPath: folder + "/model.safetensors")
        #expect(throws: ModelLocationError.noTokenizer(folder: folder)) { try LanguageModel(folder: folder) }
        #expect(throws: ParameterAccessError.unknownName("nope")) { try model.parameters.setValues([1], named: "nope") }
        #expect(throws: ParameterAccessError.countMismatch(name: "transformer.ln_f.bias", expected: 32, found: 1)) {
            try model.parameters.setValues([1], named: "transformer.ln_f.bias")
        }
    }
}
