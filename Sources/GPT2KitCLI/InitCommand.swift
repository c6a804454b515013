import ArgumentParser
import Foundation
import GPT2Kit

extension GPT2Config.Preset: ExpressibleByArgument {}

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised GPT-2 model folder (default: the 124M gpt2 shape).",
        discussion: """
            Useful for benchmarks and tests where the real weights are not at hand. A model folder needs GPT-2's \
            tokenizer files (vocab.json + merges.txt) too: --tokenizer DIR copies them from a folder that has them \
            (a Hugging Face gpt2 folder, or fixtures/gpt2-tokenizer of a GPT2Kit checkout); without it the folder \
            has none, and the commands that use it need --tokenizer.
            """)

    @Option(help: "Output folder.") var out: String
    @Option(name: .customLong("config"), help: "config.json to use (default: gpt2 124M: 50257 vocab, 1024 positions, 768, 12 layers, 12 heads).")
    var configPath: String?
    @Option(help: "gpt2 | gpt2-medium | gpt2-large | gpt2-xl (the released shapes; default gpt2).") var preset: GPT2Config.Preset?
    @Option(parsing: .unconditional, help: "Initialisation seed.") var seed: UInt64 = 0
    @Option(help: "safetensors | pytorch | h5.") var format: ExportFormat = .safetensors
    @Option(help: "Copy the tokenizer files (vocab.json + merges.txt, or tokenizer.json) of this folder into OUT.") var tokenizer: String?

    func run() throws {
        try reportingErrors {
            var config = GPT2Config()
            if let preset {
                guard configPath == nil else { throw ValidationError("--preset: give --preset or --config, not both") }
                config = GPT2Config(preset: preset)
            }
            if let configPath {
                config = try GPT2Config(jsonData: readConfigBytes(path: configPath), path: configPath)
            }
            try config.validate(path: configPath)
            try ModelIO.checkMemory(for: config, floatCopies: 1, purpose: "the weights")
            // Checked before anything is made or written: the tokenizer loads and fits the model's vocabulary.
            let files = try tokenizer.map { try ModelIO.tokenizerFiles(folder: $0, for: config) } ?? []
            let parameters = GPT2Parameters(config: config, seed: seed)
            let lock = try RunFolderLock(folder: out)
            defer { withExtendedLifetime(lock) {} }
            let written = try ModelIO.writeFolder(parameters, to: out, format: format, tokenizerFiles: files)
            for w in written { Console.out("wrote \(w)") }
            if try tokenizer == nil && !ModelLocation(path: out).hasTokenizer {
                Console.err("note: \(out) has no tokenizer files (vocab.json + merges.txt); add them with --tokenizer DIR (a folder "
                            + "that has them, such as fixtures/gpt2-tokenizer of a GPT2Kit checkout) or copy them in; until then "
                            + "give --tokenizer to the commands that use \(out)")
            }
        }
    }
}
