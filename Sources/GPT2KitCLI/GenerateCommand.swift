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
        greedy unless --sample. Sequences stop at the EOS id (config.json or generation_config.json); \
        rows of a batch that stopped are padded with the pad id (the EOS id when none is set).
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
    var prompt: String
    @Option(name: .long, help: "Total length in tokens, prompt included (transformers' max_length).")
    var maxLength: Int?
    @Option(name: .long, help: "New tokens after the prompt; overrides --max-length.")
    var maxNewTokens: Int?
    @Flag(name: .long, help: "Sample instead of greedy decoding.")
    var sample = false
    @Option(name: .long, help: "Divide the logits by this before sampling.")
    var temperature: Float?
    @Option(name: .long, help: "Sample among the k most likely tokens (0: no limit).")
    var topK: Int?
    @Option(name: .long, help: "Sample among the most likely tokens whose probability adds up to p.")
    var topP: Double?
    @Option(name: .long, help: "Continuations decoded together as one batch.")
    var numReturnSequences = 1
    @Option(name: .long, help: "Seed of the sampling generator (xoshiro256**).")
    var seed: UInt64 = 0
    @Flag(name: .long, help: "Print tokens as they are generated (one sequence only).")
    var stream = false
    @Flag(name: .long, help: "Print one JSON object per sequence: {\"ids\": [...], \"text\": ...}.")
    var json = false

    func run() throws {
        try reportingErrors { try generate() }
    }

    private func generate() throws {
        if stream && json { throw CommandError("--stream and --json cannot be combined") }
        if stream && numReturnSequences != 1 { throw CommandError("--stream prints one sequence; drop it or use --num-return-sequences 1") }

        let (gptModel, location) = try ModelIO.loadModel(path: model, configPath: config, adapter: adapter, trainsBase: false)
        let modelConfig = gptModel.config
        let fileDefaults = try location.generationConfigPath.map { try GenerationConfigFile(path: $0) } ?? GenerationConfigFile()

        if tokenizer == nil && location.weightsKind != .gguf && !location.hasTokenizer { throw ModelLocationError.noTokenizer(folder: location.folder) }
        let textTokenizer = try ModelIO.loadTokenizer(for: location, override: tokenizer)
        let promptIDs = textTokenizer.encode(prompt)

        let doSample = sample || (fileDefaults.doSample ?? false)
        if !doSample {
            // transformers warns the same way: these only shape sampling
            for (flag, given) in [("--temperature", temperature != nil), ("--top-k", topK != nil), ("--top-p", topP != nil)] where given {
                FileHandle.standardError.write(Data("warning: \(flag) has no effect without --sample (greedy decoding)\n".utf8))
            }
        }
        let strategy: DecodingStrategy = doSample
            ? .sampling(SamplingOptions(temperature: temperature ?? fileDefaults.temperature.map(Float.init) ?? 1,
                                        topK: topK ?? fileDefaults.topK ?? 50,
                                        topP: topP ?? fileDefaults.topP ?? 1))
            : .greedy
        let eos = fileDefaults.eosTokenIDs ?? modelConfig.eosTokenID.map { [$0] } ?? []
        let options = GenerationOptions(
            maxLength: maxLength ?? fileDefaults.maxLength ?? 20,
            maxNewTokens: maxNewTokens ?? (maxLength == nil ? fileDefaults.maxNewTokens : nil),
            strategy: strategy, eosTokenIDs: eos, padTokenID: fileDefaults.padTokenID,
            numReturnSequences: numReturnSequences, seed: seed)
        let generator = try Generator(model: gptModel, promptIDs: promptIDs, options: options)

        if stream {
            let out = FileHandle.standardOutput
            out.write(Data(try textTokenizer.decodeBytes(promptIDs)))
            var newIDs: [Int] = []
            var written = 0
            while let step = generator.next() {
                newIDs.append(step[0])
                let bytes = try textTokenizer.decodeBytes(newIDs)
                let complete = Self.completeUTF8Prefix(bytes)
                if complete > written { out.write(Data(bytes[written..<complete])); written = complete }
            }
            let bytes = try textTokenizer.decodeBytes(newIDs)
            if bytes.count > written { out.write(Data(bytes[written...])) }
            out.write(Data("\n".utf8))
            return
        }

        let sequences = generator.run()
        for (i, ids) in sequences.enumerated() {
            let text = try textTokenizer.decode(ids)
            if json {
                let object: [String: Any] = ["ids": ids, "text": text]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            } else {
                if sequences.count > 1 { print("--- sequence \(i + 1) ---") }
                print(text)
            }
        }
    }

    /// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
    static func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
        var i = bytes.count
        var back = 0
        while i > 0 && back < 4 {
            let b = bytes[i - 1]
            if b & 0xC0 != 0x80 { // lead byte or ASCII
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= need ? bytes.count : i - 1
            }
            i -= 1; back += 1
        }
        return bytes.count
    }
}

/// A usage problem found by a command, printed as `error: <message>`.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
