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

do {
    var command = try GPT2KitMPICommand.parseAsRoot()
    // Commands other than finetune run on rank 0 alone; the other processes wait for it in MPI_Finalize.
    if command is DataParallelCommand || world.rank == 0 { try command.run() }
} catch {
    let code = GPT2KitMPICommand.exitCode(for: error)
    let message = GPT2KitMPICommand.fullMessage(for: error)
    if world.rank == 0 {
        if !message.isEmpty {
            let text = Data((message + "\n").utf8)
            if code.isSuccess { FileHandle.standardOutput.write(text) } else { FileHandle.standardError.write(text) }
        }
    } else if !code.isSuccess {
        // Usually every process meets the same error: rank 0 reports it and exits first, and mpirun ends this
        // process during the wait. An error of this process alone is printed after it.
        sleep(1)
        if let line = CommandEnvironment.pendingErrorLine ?? (message.isEmpty ? nil : "rank \(world.rank): " + message) {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
    if !code.isSuccess {
        // Exiting without MPI_Finalize makes mpirun end the other processes too, wherever they wait (and,
        // unlike MPI_Abort, it keeps this process's last output lines).
        exit(code.rawValue)
    }
}
world.finalize()
