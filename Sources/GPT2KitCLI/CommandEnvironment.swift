import ArgumentParser
import GPT2Kit

/// What the executable that runs the commands provides: `gpt2kit` leaves the defaults (one process);
/// `gpt2kit-mpi` sets an Open MPI communicator before it parses the command line.
public enum CommandEnvironment {
    /// The processes that `finetune` trains with (data-parallel). Set once, before a command runs.
    nonisolated(unsafe) public static var communicator: any Communicator = SingleProcessCommunicator()

    /// The error line of a process other than rank 0, kept for the executable to print after rank 0 has had
    /// the chance to report the same error (every process usually meets the same bad input).
    nonisolated(unsafe) public private(set) static var pendingErrorLine: String?

    /// Prints an error line, or keeps it (with the rank) on a process other than rank 0.
    static func reportError(_ line: String) {
        if communicator.isDistributed && communicator.rank != 0 {
            pendingErrorLine = "rank \(communicator.rank): " + line
        } else {
            Console.err(line)
        }
    }
}

/// A command whose processes work together under `mpirun` (`finetune`). Under `gpt2kit-mpi` every other
/// command runs on rank 0 alone, so that N processes do not write the same files N times.
public protocol DataParallelCommand: ParsableCommand {}
