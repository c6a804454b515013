import Foundation
import GPT2Kit
import Testing
import TestSupport

/// The original notebook end to end on the real 124M GPT-2, when `GPT2KIT_GPT2_DIR` names a local Hugging Face
/// `gpt2` folder (config.json, vocab.json, merges.txt and weights). Never touches the network.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["GPT2KIT_GPT2_DIR"] != nil, "set GPT2KIT_GPT2_DIR to a local gpt2 folder"))
struct RealGPT2Tests {
    static var folder: String { ProcessInfo.processInfo.environment["GPT2KIT_GPT2_DIR"] ?? "" }
    static let context = "Harry Potter is a series of", label = "seven fantasy novels"
    static let contextIDs = [18308, 14179, 318, 257, 2168, 286], labelIDs = [26548, 8842, 16122]

    @Test func tokenIDsOfTheNotebookStrings() throws {
        let tokenizer = try ModelIO.loadTokenizer(folder: Self.folder)
        #expect(tokenizer.encode(Self.context) == Self.contextIDs)
        #expect(tokenizer.encode(Self.label) == Self.labelIDs)
    }

    @Test func twentyStepsTeachTheLabel() throws {
        let tokenizer = try ModelIO.loadTokenizer(folder: Self.folder)
        let (model, _) = try ModelIO.loadModel(path: Self.folder, trainsBase: true)
        #expect(model.config.layerCount == 12 && model.config.embeddingSize == 768, "expected the 124M gpt2")
        let example = TrainingExample(contextIDs: tokenizer.encode(Self.context), labelIDs: tokenizer.encode(Self.label))
        // The notebook: transformers' AdamW(lr 5e-4, eps 1e-6, weight decay 0), 20 steps on the one example.
        var options = TrainingOptions()
        options.learningRate = 5e-4; options.eps = 1e-6; options.weightDecay = 0; options.steps = 20
        let trainer = try Trainer(model: model, examples: [example], options: options, padTokenID: tokenizer.eosTokenID)
        try trainer.run { _ in true }
        let losses = trainer.progress.losses
        #expect(losses.count == 20)
        #expect(losses.allSatisfy { $0.isFinite })
        #expect((losses.last ?? .infinity) < (losses.first ?? 0), "loss \(losses.first ?? .nan) → \(losses.last ?? .nan)")
        let generator = try Generator(model: model, promptIDs: Self.contextIDs, options: GenerationOptions(maxNewTokens: Self.labelIDs.count))
        let output = try #require(generator.run().first)
        #expect(Array(output.dropFirst(Self.contextIDs.count)) == Self.labelIDs)
        #expect(try tokenizer.decode(Array(output.dropFirst(Self.contextIDs.count))) == Self.label)
    }
}
