import ArgumentParser
import Foundation
import GPT2Kit

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss (mean cross-entropy of the label tokens given their context, no dropout) and perplexity.",
        discussion: "--data takes JSONL, text files or folders, or token shards (see finetune --help); text and shards are "
            + "packed into blocks of --block-size tokens, every token after the first of a block a label.")

    @Option(help: "Model folder or weights file.") var model: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(parsing: .unconditional, help: "Sequences per forward pass.") var batchSize = 8
    @Option(help: "LoRA adapter folder (PEFT format) applied to the model, unmerged.") var adapter: String?
    @Flag(help: "Print one JSON object {\"loss\", \"perplexity\", \"label_tokens\", \"examples\"}.") var json = false

    func run() throws {
        try reportingErrors {
            let (gpt2, location) = try ModelIO.loadModel(path: model, configPath: modelOptions.configPath, adapter: adapter, trainsBase: false)
            let tokenizer = try ModelIO.loadTokenizer(for: location, override: dataOptions.tokenizer)
            let data = try dataOptions.dataSet(tokenizer: tokenizer, config: gpt2.config)
            // No Trainer: evaluation needs no optimizer moments (≈ 1 GB for 124M).
            let result = try Trainer.evaluation(model: gpt2, data: data.source, batchSize: max(1, batchSize),
                                                padTokenID: tokenizer.eosTokenID)
            let loss = result.loss, tokens = result.labelTokens, count = result.examples
            if json {
                var o: [String: Any] = ["loss": loss, "label_tokens": tokens, "examples": count, "perplexity": result.perplexity]
                if let blocks = data.blocks {
                    o["block_size"] = blocks.blockSize; o["tokens"] = blocks.tokenCount; o["dropped_tokens"] = blocks.droppedTokenCount
                }
                Console.out(Console.json(o))
            } else {
                if data.blocks != nil { Console.err(data.summary) }
                let unit = data.blocks != nil ? "block" : "example"
                Console.out("loss \(loss)  (\(tokens) label tokens in \(count) \(unit)\(count == 1 ? "" : "s"), perplexity \(String(format: "%.3f", result.perplexity)))")
            }
        }
    }
}
