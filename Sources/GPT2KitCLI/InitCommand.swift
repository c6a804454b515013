import ArgumentParser
import Foundation
import GPT2Kit

extension GPT2Config.Preset: ExpressibleByArgument {}

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised GPT-2 model folder (default: the 124M gpt2 shape).",
        discussion: "Useful for benchmarks and tests where the real weights are not at hand.")

    @Option(help: "Output folder.") var out: String
    @Option(name: .customLong("config"), help: "config.json to use (default: gpt2 124M: 50257 vocab, 1024 positions, 768, 12 layers, 12 heads).")
    var configPath: String?
    @Option(help: "gpt2 | gpt2-medium | gpt2-large | gpt2-xl (the released shapes; default gpt2).") var preset: GPT2Config.Preset?
    @Option(parsing: .unconditional, help: "Initialisation seed.") var seed: UInt64 = 0
    @Option(help: "safetensors | pytorch | h5.") var format: ExportFormat = .safetensors
    @Option(help: "Copy the tokenizer files of this folder into OUT.") var tokenizer: String?

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
            let parameters = GPT2Parameters(config: config, seed: seed)
            let files = tokenizer.map { t in ModelLocation.tokenizerFileNames.map { t + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) } } ?? []
            let lock = try RunFolderLock(folder: out)
            defer { withExtendedLifetime(lock) {} }
            let written = try ModelIO.writeFolder(parameters, to: out, format: format, tokenizerFiles: files)
            for w in written { Console.out("wrote \(w)") }
        }
    }
}
