import ArgumentParser
import Foundation
import GPT2Kit

/// `gpt2kit generate`: greedy or sampled continuations of a prompt, decoded with a key/value cache.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt, greedy or sampled, with transformers' generate() rules.",
        discussion: """
        Defaults come from transformers' GenerationConfig, then the model's generation_config.json, then \
        these options: max length 20 (prompt included), top-k 50, top-p 1, temperature 1. Decoding is \
        greedy unless --sample. --repetition-penalty and --no-repeat-ngram-size (transformers' \
        processors, applied before temperature/top-k/top-p, greedy too) count the prompt's tokens. Sequences \
        stop at the EOS id (config.json or generation_config.json) or when their new text contains a --stop \
        string; rows of a batch that stopped are padded with the pad id (the EOS id when none is set).
        """
    )

    @Option(name: .long, help: "Model folder (config.json + weights) or weights file.")
    var model: String
    @Option(name: .long, help: "config.json to use instead of the model folder's.")
    var config: String?
    @Option(name: .long, help: "Tokenizer folder (vocab.json + merges.txt, or tokenizer.json); default: the model folder.")
    var tokenizer: String?
    @Option(name: .long, help: "LoRA adapter folder (PEFT format) applied to the model, unmerged.")
    var adapter: String?
    @Option(name: .long, help: "Text to continue.")
    var prompt: String?
    @Option(name: .long, help: ArgumentHelp("Prompts decoded together as one left-padded batch: one per line, or JSON Lines of {\"prompt\": …}; results in input order.", valueName: "FILE"))
    var promptsFile: String?
    @Option(name: .long, help: ArgumentHelp("Precision the projections are read in while decoding: f32, or f16 / q8_0 (re-encoded once at load; fewer bytes per token).", valueName: "f32|f16|q8_0"))
    var weights: WeightPrecision = .f32
    @Option(name: .long, parsing: .unconditional, help: "Total length in tokens, prompt included (transformers' max_length).")
    var maxLength: Int?
    @Option(name: .long, parsing: .unconditional, help: "New tokens after the prompt; overrides --max-length.")
    var maxNewTokens: Int?
    @Flag(name: .long, help: "Sample instead of greedy decoding.")
    var sample = false
    @Option(name: .long, parsing: .unconditional, help: "Divide the logits by this before sampling.")
    var temperature: Float?
    @Option(name: .long, parsing: .unconditional, help: "Sample among the k most likely tokens (0: no limit).")
    var topK: Int?
    @Option(name: .long, parsing: .unconditional, help: "Sample among the most likely tokens whose probability adds up to p.")
    var topP: Double?
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Penalise tokens already in the sequence, prompt included: logits divided by P (multiplied when negative); 1: off.", valueName: "P"))
    var repetitionPenalty: Float?
    @Option(name: .customLong("no-repeat-ngram-size"), parsing: .unconditional, help: ArgumentHelp("Never repeat an n-gram of N tokens, prompt included (0: off).", valueName: "N"))
    var noRepeatNGramSize: Int?
    @Option(name: .long, help: ArgumentHelp("Stop a sequence when its new text contains TEXT (repeatable); the text printed ends before it.", valueName: "TEXT"))
    var stop: [String] = []
    @Option(name: .long, help: ArgumentHelp("'left': a prompt too long for the context and --max-new-tokens keeps its last tokens instead of being refused.", valueName: "side"))
    var truncate: TruncationSide?
    @Option(name: .long, parsing: .unconditional, help: "Continuations decoded together as one batch.")
    var numReturnSequences = 1
    @Option(name: .long, parsing: .unconditional, help: "Seed of the sampling generator (xoshiro256**).")
    var seed: UInt64 = 0
    @Flag(name: .long, help: "Print tokens as they are generated (one sequence only).")
    var stream = false
    @Flag(name: .long, help: "Print one JSON object per sequence: {\"ids\", \"text\", \"finish_reason\": eos|length|stop, \"stop\" (the stop string, if one ended it)}; ids are every id generated, the text ends before the stop string.")
    var json = false

    func run() throws {
        try reportingErrors { try generate() }
    }

    private func generate() throws {
        if stream && json { throw CommandError("--stream and --json cannot be combined") }
        if truncate == .right { throw CommandError("--truncate right would cut the end of the prompt that generation continues; only --truncate left is supported") }
        if stream && numReturnSequences != 1 { throw CommandError("--stream prints one sequence; drop it or use --num-return-sequences 1") }
        if (prompt == nil) == (promptsFile == nil) { throw CommandError("give --prompt TEXT or --prompts-file FILE (one of them)") }
        if stream && promptsFile != nil { throw CommandError("--stream prints one sequence; it cannot be combined with --prompts-file") }

        let loaded = try LanguageModel(folder: model, tokenizer: tokenizer, adapter: adapter, configPath: config)
        let textTokenizer = loaded.tokenizer
        let prompts = try promptsFile.map { try PromptsFile.read(path: $0) } ?? [prompt ?? ""]
        let promptIDs = prompts.map { textTokenizer.encode($0) }

        let overrides = GenerationOverrides(
            maxLength: maxLength, maxNewTokens: maxNewTokens, sample: sample ? true : nil, temperature: temperature,
            topK: topK, topP: topP, repetitionPenalty: repetitionPenalty, noRepeatNGramSize: noRepeatNGramSize,
            stopStrings: stop.isEmpty ? nil : stop, numReturnSequences: numReturnSequences, seed: seed,
            truncation: truncate == .left ? .left : .none, weights: weights)
        let options = loaded.generationOptions(overrides)
        if options.strategy == .greedy {
            // transformers warns the same way: these only shape sampling
            for (flag, given) in [("--temperature", temperature != nil), ("--top-k", topK != nil), ("--top-p", topP != nil)] where given {
                FileHandle.standardError.write(Data("warning: \(flag) has no effect without --sample (greedy decoding)\n".utf8))
            }
        }
        let generator = try Generator(model: loaded.model, prompts: promptIDs, options: options, tokenizer: textTokenizer)
        for (i, ids) in promptIDs.enumerated() where generator.prompts[i].count < ids.count {
            let which = promptIDs.count > 1 ? "prompt \(i + 1)" : "prompt"
            FileHandle.standardError.write(Data("note: \(which) truncated to its last \(generator.prompts[i].count) of \(ids.count) tokens (--truncate left)\n".utf8))
        }

        if stream {
            let out = FileHandle.standardOutput
            out.write(Data(try textTokenizer.decodeBytes(generator.promptIDs)))
            while generator.next() != nil { out.write(Data(generator.takeNewText(row: 0).utf8)) }
            out.write(Data((generator.takeNewText(row: 0) + "\n").utf8))
            _ = try generator.text(row: 0) // reports an id the tokenizer cannot spell (the stream skipped it)
            return
        }

        let sequences = generator.run()
        for (i, ids) in sequences.enumerated() {
            let text = try generator.text(row: i)
            if json {
                var object: [String: Any] = ["ids": ids, "text": text]
                if promptsFile != nil { object["prompt_index"] = i / numReturnSequences }
                switch generator.finishReasons[i] {
                case .endOfSequence?: object["finish_reason"] = "eos"
                case .length?, nil: object["finish_reason"] = "length"
                case let .stopString(match)?: object["finish_reason"] = "stop"; object["stop"] = match.string
                }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            } else {
                if promptsFile != nil {
                    print("--- prompt \(i / numReturnSequences + 1)\(numReturnSequences > 1 ? ", sequence \(i % numReturnSequences + 1)" : "") ---")
                } else if sequences.count > 1 {
                    print("--- sequence \(i + 1) ---")
                }
                print(text)
            }
        }
    }
}

/// `--prompts-file`: one prompt per line, or JSON Lines of `{"prompt": …}` (when every non-blank line is such an
/// object). Blank lines are skipped; a file without prompts is an error naming it.
enum PromptsFile {
    static func read(path: String) throws -> [String] {
        let text = String(decoding: try readBytes(path: path), as: UTF8.self)
        let lines = jsonLines(text).filter { !$0.allSatisfy(\.isWhitespace) }
        guard !lines.isEmpty else { throw CommandError("\(path): no prompts") }
        let objects = lines.map { line -> String? in
            guard line.first == "{", let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["prompt"] as? String
        }
        if objects.allSatisfy({ $0 != nil }) { return objects.compactMap { $0 } }
        if let bad = lines.indices.first(where: { lines[$0].first == "{" && objects[$0] == nil }), objects.contains(where: { $0 != nil }) {
            throw CommandError("\(path):\(bad + 1): expected {\"prompt\": \"…\"} like the other lines")
        }
        return lines.map(String.init)
    }
}

/// A usage problem found by a command, printed as `error: <message>`.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
extension WeightPrecision: ExpressibleByArgument {}
