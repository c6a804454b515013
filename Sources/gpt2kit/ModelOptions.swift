import ArgumentParser
import GPT2Kit

/// Options shared by every command that reads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "config.json for a single weights file (default: the one beside it).")
    var configPath: String?
}

/// Runs `body`, turning library errors into `error: …` on stderr and exit code 1 (no stack traces).
func reportingErrors<R>(_ body: () throws -> R) throws -> R {
    do { return try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch let e as ValidationError {
        throw e
    } catch {
        Console.err("error: \(error)")
        throw ExitCode.failure
    }
}
