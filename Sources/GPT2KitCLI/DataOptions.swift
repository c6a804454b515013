import ArgumentParser
import Foundation
import GPT2Kit

/// Where training or evaluation examples come from: one context/label pair, a JSONL file, or corpus data
/// (text files, folders of them, llm.c token shards) packed into blocks.
struct DataOptions: ParsableArguments {
    @Option(help: "Context text (its labels are masked to -100).") var context: String?
    @Option(help: "Label text that follows the context (the tokens that are learned).") var label: String?
    @Option(help: ArgumentHelp(
        "Training data: JSONL, text or token shards.",
        discussion: "A .jsonl file of {\"context\",\"label\"}, {\"prompt\",\"completion\"} or {\"text\"} objects (one example each); "
            + "a .txt file or a folder of .txt files (recursive, sorted; each file a document; tokenized in memory); "
            + "or llm.c token shards (.bin files or a folder of them, from `gpt2kit tokenize --shards`; memory-mapped). "
            + "Text and shards are joined with <|endoftext|> and cut into blocks of --block-size tokens. "
            + "Repeat --data to join several paths of one kind, in order.")) var data: [String] = []
    @Option(parsing: .unconditional, help: "Tokens per block for text and shards (default: the model's n_positions).") var blockSize: Int?
    @Option(help: "Cut over-long JSONL sequences from the left or right instead of failing.") var truncate: TruncationSide?
    @Option(help: "Tokenizer folder (default: the model folder).") var tokenizer: String?

    /// Loads the pair, the JSONL file or the corpus.
    func dataSet(tokenizer: GPT2Tokenizer, config: GPT2Config) throws -> TrainingDataSet {
        if !data.isEmpty {
            guard context == nil, label == nil else { throw ValidationError("--data: give either --data or --context/--label, not both") }
            // Option checks before any tokenizing.
            let kind = try CorpusFiles.resolve(data).kind
            if kind == .jsonl, blockSize != nil {
                throw ValidationError("--block-size: packs text or shards; a JSONL file keeps one example per record")
            }
            if kind != .jsonl, truncate != nil {
                throw ValidationError("--truncate: cuts JSONL records; text and shards are cut into blocks of --block-size")
            }
            return try dataSet(paths: data, tokenizer: tokenizer, config: config)
        }
        guard let context, let label else { throw ValidationError("--context/--label: give both, or --data FILE") }
        if blockSize != nil { throw ValidationError("--block-size: packs --data text or shards; it does not apply to --context/--label") }
        let record = TrainingRecord.pair(context: context, label: label)
        return TrainingDataSet(examples: [try record.example(encode: { tokenizer.encode($0) }, maximumLength: config.maxPositions,
                                                             truncation: truncate, source: "--context/--label")])
    }

    /// Loads `--data`/`--eval-data` paths with this command's block size and truncation.
    func dataSet(paths: [String], tokenizer: GPT2Tokenizer, config: GPT2Config) throws -> TrainingDataSet {
        try TrainingDataSet.load(paths: paths, tokenizer: tokenizer, maximumLength: config.maxPositions,
                                 vocabularySize: config.vocabularySize, blockSize: blockSize, truncate: truncate)
    }
}

extension TruncationSide: ExpressibleByArgument {}
