import ArgumentParser
import GPT2Kit

/// The `gpt2kit` command line: its subcommands, shared by the `gpt2kit` and `gpt2kit-mpi` executables.
public struct GPT2KitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gpt2kit",
        abstract: "Import, tokenize, fine-tune, export and sample GPT-2 models on the CPU.",
        subcommands: [InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
                      EvalCommand.self, FinetuneCommand.self, GenerateCommand.self, MergeCommand.self, InitCommand.self, TokenizerBenchmarkCommand.self]
    )

    public init() {}
}
