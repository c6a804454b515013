import ArgumentParser
import Foundation
import GPT2Kit

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean cross-entropy of the label tokens given their context (no dropout).")

    @Option(help: "Model folder or weights file.") var model: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "Sequences per forward pass.") var batchSize = 8
    @Option(help: "LoRA adapter folder (PEFT format) applied to the model, unmerged.") var adapter: String?
    @Flag(help: "Print one JSON object {\"loss\", \"label_tokens\"}.") var json = false

    func run() throws {
        try reportingErrors {
            let (gpt2, location) = try ModelIO.loadModel(path: model, configPath: modelOptions.configPath, adapter: adapter, trainsBase: false)
            let tokenizer = try ModelIO.loadTokenizer(for: location, override: dataOptions.tokenizer)
            let examples = try dataOptions.examples(tokenizer: tokenizer, maximumLength: gpt2.config.maxPositions)
            // No Trainer: evaluation needs no optimizer moments (≈ 1 GB for 124M).
            let loss = try Trainer.evaluate(model: gpt2, data: examples, batchSize: max(1, batchSize),
                                            padTokenID: Int32(tokenizer.eosTokenID))
            let tokens = examples.reduce(0) { $0 + $1.labelTokenCount }
            if json {
                Console.out(Console.json(["loss": loss, "label_tokens": tokens, "examples": examples.count, "perplexity": exp(loss)]))
            } else {
                Console.out("loss \(loss)  (\(tokens) label tokens in \(examples.count) example\(examples.count == 1 ? "" : "s"), perplexity \(String(format: "%.3f", exp(loss))))")
            }
        }
    }
}
