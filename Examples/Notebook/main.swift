// The transformers notebook through GPT2Kit's library facade, using only the public API (this target is
// compiled outside the package's `package` scope). Run it on the bundled tiny model:
//
//     swift run notebook-example fixtures/tiny-gpt2
//
// or on the real gpt2 folder with the notebook's learning rate: `swift run notebook-example gpt2 gpt2 5e-4` (folder, tokenizer folder, learning rate).
import Foundation
import GPT2Kit

let arguments = CommandLine.arguments.dropFirst()
let folder = arguments.first ?? "fixtures/tiny-gpt2"
let tokenizer = arguments.dropFirst().first
let learningRate = arguments.dropFirst(2).first.flatMap(Double.init) ?? 1e-2

do {
    let model = try LanguageModel(folder: folder, tokenizer: tokenizer)
    let context = "Harry Potter is a series of", label = "seven fantasy novels"
    print("ids:", model.encode(context), model.encode(label))
    print("loss before:", try model.loss(context: context, label: label))

    var options = TrainingOptions(learningRate: learningRate, steps: 20)
    options.eps = 1e-6  // the notebook's transformers AdamW
    try model.finetune(examples: [.pair(context: context, label: label)], options: options) { step in
        if step.step % 5 == 0 { print("step \(step.step): loss \(step.loss)") }
    }
    print("loss after:", try model.loss(context: context, label: label))

    print("greedy:", try model.generate(prompt: context, options: GenerationOverrides(maxNewTokens: 3)))
    let sampling = GenerationOverrides(maxNewTokens: 8, sample: true, topK: 10, topP: 0.75, numReturnSequences: 3, seed: 42)
    for text in try model.generate(prompts: [context], options: sampling) { print("sampled:", text) }

    let out = FileManager.default.temporaryDirectory.appendingPathComponent("notebook-example").path
    try model.save(to: out)
    print("saved to \(out)")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
