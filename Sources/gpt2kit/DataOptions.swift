import ArgumentParser
import Foundation
import GPT2Kit

/// Where training or evaluation examples come from: one context/label pair or a JSONL file.
struct DataOptions: ParsableArguments {
    @Option(help: "Context text (its labels are masked to -100).") var context: String?
    @Option(help: "Label text that follows the context (the tokens that are learned).") var label: String?
    @Option(help: "JSONL of {\"context\",\"label\"}, {\"prompt\",\"completion\"} or {\"text\"} objects.") var data: String?
    @Option(help: "Cut over-long sequences from the left or right instead of failing.") var truncate: TruncationSide?
    @Option(help: "Tokenizer folder (default: the model folder).") var tokenizer: String?

    /// Tokenizes the pair or the file into examples.
    func examples(tokenizer: GPT2Tokenizer, maximumLength: Int) throws -> [TrainingExample] {
        if let data {
            guard context == nil, label == nil else { throw ValidationError("give either --data or --context/--label, not both") }
            return try Self.examples(path: data, tokenizer: tokenizer, maximumLength: maximumLength, truncate: truncate)
        }
        guard let context, let label else { throw ValidationError("give --context and --label, or --data FILE") }
        let record = TrainingRecord.pair(context: context, label: label)
        return [try record.example(encode: { tokenizer.encode($0) }, maximumLength: maximumLength, truncation: truncate,
                                   source: "--context/--label")]
    }

    static func examples(path: String, tokenizer: GPT2Tokenizer, maximumLength: Int, truncate: TruncationSide?) throws -> [TrainingExample] {
        let records = try TrainingRecord.readJSONL(path: path)
        var out: [TrainingExample] = []
        out.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            out.append(try r.example(encode: { tokenizer.encode($0) }, maximumLength: maximumLength, truncation: truncate,
                                     source: path, line: i + 1))
        }
        return out
    }
}

extension TruncationSide: ExpressibleByArgument {}
