import ArgumentParser
import Foundation
import GPT2Kit

/// The `gpt2kit` command line: its subcommands, shared by the `gpt2kit` and `gpt2kit-mpi` executables.
public struct GPT2KitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gpt2kit",
        abstract: "Import, tokenize, fine-tune, export and sample GPT-2 models on the CPU.",
        version: GPT2KitVersion.current,
        subcommands: [InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
                      EvalCommand.self, FinetuneCommand.self, GenerateCommand.self, MergeCommand.self, VerifyCommand.self, InitCommand.self,
                      TokenizerBenchmarkCommand.self]
    )

    public init() {}

    /// Parses the process's arguments, runs the command and exits: every failure is one
    /// `error: <flag or file>: <problem>` line on stderr and status 1 (see `CommandLineOutcome`).
    public static func runMain() -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let outcome: CommandLineOutcome
        do {
            try CommandLineOutcome.checkSubcommand(arguments, root: self)
            var command = try parseAsRoot(arguments)
            try command.run()
            outcome = .success
        } catch {
            outcome = CommandLineOutcome(error: error, root: self, arguments: arguments)
        }
        outcome.print()
        Foundation.exit(outcome.status)
    }
}
