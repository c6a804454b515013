#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import GPT2Kit

/// Options shared by every command that reads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "config.json for a single weights file (default: the one beside it).")
    var configPath: String?
}

/// Runs `body`, turning library errors into `error: …` on stderr and exit code 1 (no stack traces).
func reportingErrors<R>(_ body: () throws -> R) throws -> R {
    installMappedFileGuard()
    do { return try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch let e as ValidationError {
        throw e
    } catch {
        CommandEnvironment.reportError("error: \(error)")
        throw ExitCode.failure
    }
}

/// Weights are memory-mapped; if another program truncates a mapped file while a command reads it, the kernel
/// raises SIGBUS at the first access past the new end (safetensors and `torch.load(mmap=True)` do the same).
/// The command cannot recover the missing bytes, so it ends with one error line and status 1 instead of a
/// crash report. GPT2Kit's own writers never change a file in place (they write a temporary and rename it),
/// so a gpt2kit process writing a file that another one reads is safe. See docs/security.md.
func installMappedFileGuard() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in
        let message: StaticString = "error: an input file shrank or was rewritten in place while gpt2kit was reading it (memory-mapped files must not change while in use)\n"
        _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
        _exit(1)
    }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(SIGBUS, &action, nil)
}
