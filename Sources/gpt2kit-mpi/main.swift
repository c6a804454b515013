// gpt2kit under Open MPI: `mpirun -np N gpt2kit-mpi finetune …` trains data-parallel over N processes
// (see docs/distributed.md). Every subcommand of gpt2kit is here; only finetune (and allreduce-benchmark) use
// every process, the others run on rank 0.
import ArgumentParser
import Foundation
import GPT2KitCLI

let world: OpenMPICommunicator
do { world = try OpenMPICommunicator() } catch {
    FileHandle.standardError.write(Data("error: \(error) (is this an Open MPI installation? run under mpirun)\n".utf8))
    exit(1)
}
CommandEnvironment.communicator = world

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    try CommandLineOutcome.checkSubcommand(arguments, root: GPT2KitMPICommand.self)
    var command = try GPT2KitMPICommand.parseAsRoot(arguments)
    // Commands other than finetune run on rank 0 alone; the other processes wait for it in MPI_Finalize.
    if command is DataParallelCommand || world.rank == 0 { try command.run() }
} catch {
    // One `error:` line and status 1, as gpt2kit (help and --version: text on stdout, status 0).
    let outcome = CommandLineOutcome(error: error, root: GPT2KitMPICommand.self, arguments: arguments)
    if world.rank == 0 {
        outcome.print()
    } else if outcome.status != 0 {
        // Usually every process meets the same error: rank 0 reports it and exits first, and mpirun ends this
        // process during the wait. An error of this process alone is printed after it.
        sleep(1)
        if let line = CommandEnvironment.pendingErrorLine ?? outcome.errorLines.first.map({ "rank \(world.rank): " + $0 }) {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
    if outcome.status != 0 {
        // Exiting without MPI_Finalize makes mpirun end the other processes too, wherever they wait (and,
        // unlike MPI_Abort, it keeps this process's last output lines).
        exit(outcome.status)
    }
}
world.finalize()
