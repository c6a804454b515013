import ArgumentParser
import GPT2Kit

@main
struct GPT2KitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt2kit",
        abstract: "Import, tokenize, fine-tune, export and sample GPT-2 models on the CPU.",
        subcommands: [InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
                      EvalCommand.self, FinetuneCommand.self, GenerateCommand.self, MergeCommand.self, InitCommand.self, TokenizerBenchmarkCommand.self]
    )
}
