import ArgumentParser
import Foundation
import GPT2Kit

/// Writes `error: <message>` to stderr and returns the failure exit code to throw.
func reportFailure(_ error: any Error) -> ExitCode {
    Console.err("error: \(error)")
    return ExitCode.failure
}

/// Reads a whole file as bytes, with the path in the error.
func readBytes(path: String) throws -> Data {
    do {
        return Data(try InputFile.readBytes(path))
    } catch {
        throw TokenizerError.unreadableFile(path: path, reason: error.reason)
    }
}

/// Reads a JSON config file (a regular file of bounded size), with the path in the error.
func readConfigBytes(path: String) throws -> Data {
    do { return Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
        throw ConfigError.invalidJSON(path: path, reason: error.reason)
    }
}

/// Writes text to stdout without the per-call overhead of `print` for large outputs.
func writeStandardOutput(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// `[18308, 14179, 318]`.
func formatIDs(_ ids: [Int], separator: String = ", ") -> String {
    "[" + ids.map(String.init).joined(separator: separator) + "]"
}

/// The JSON string literal for `text`.
func jsonStringLiteral(_ text: String) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    guard let data = try? encoder.encode(text) else { return "\"\"" }
    return String(decoding: data, as: UTF8.self)
}

/// Splits JSON Lines input into its lines (a final newline does not start another line).
func jsonLines(_ text: String) -> [Substring] {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    return lines.map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text into GPT-2 token ids.",
        discussion: """
            Text comes from the arguments (joined by spaces), --file, or stdin. With --jsonl every \
            input line is {"text": …} and every output line is {"ids": […]}, in order.

            With --shards OUT the arguments are text files and folders (their .txt files, recursive, \
            sorted; hidden files skipped), tokenized on every core into llm.c token shards \
            OUT/shard_000000.bin, … (256 int32 header: magic 20240520, version 1, token count; then \
            uint16 ids), each document starting with <|endoftext|> and special-token text read as \
            plain text, as llm.c's fineweb.py does. `finetune --data OUT` trains from them, \
            memory-mapped, without tokenizing again.
            """
    )

    @Option(name: .long, help: "Folder with vocab.json + merges.txt, or tokenizer.json.")
    var tokenizer: String

    @Option(name: .long, help: "Read the text from this UTF-8 file.")
    var file: String?

    @Flag(name: .long, help: "Input is JSON Lines of {\"text\": …}; output JSON Lines of {\"ids\": […]}.")
    var jsonl = false

    @Flag(name: .long, help: "Treat <|endoftext|> and added tokens as plain text (tiktoken's encode_ordinary).")
    var ordinary = false

    @Flag(name: .long, help: "Print the ids as a compact JSON array.")
    var json = false

    @Option(name: .long, parsing: .upToNextOption, help: "Tokens to add before encoding (e.g. [PAD] → 50257).")
    var addToken: [String] = []

    @Option(name: .long, help: "Write the ids of the text files/folders given as arguments as llm.c token shards into this folder.")
    var shards: String?

    @Option(name: .long, parsing: .unconditional, help: "Tokens per shard with --shards (default \(TokenShard.defaultShardTokens), as llm.c).")
    var shardTokens: Int?

    @Option(name: .long, parsing: .unconditional, help: "Threads to encode on (default: every core).")
    var threads: Int?

    /// `--threads`, else every core.
    var threadCount: Int { max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount) }

    @Argument(help: "Text to tokenize (joined by spaces); with --shards, text files and folders. Without it, --file or stdin is read.")
    var text: [String] = []

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads: must be at least 1") }
        if shards != nil {
            if text.isEmpty { throw ValidationError("--shards: needs the text files or folders to tokenize as arguments") }
            if file != nil || jsonl { throw ValidationError("--shards: reads the files given as arguments, not --file or --jsonl") }
            if !addToken.isEmpty { throw ValidationError("--shards: writes GPT-2 ids only (uint16); --add-token does not apply") }
            return
        }
        if shardTokens != nil { throw ValidationError("--shard-tokens: needs --shards") }
        if file != nil && !text.isEmpty { throw ValidationError("--file: give the text as arguments or --file, not both") }
        if jsonl && !text.isEmpty { throw ValidationError("--jsonl: reads --file or stdin, not arguments") }
    }

    func run() throws {
        do {
            var tokenizer = try ModelIO.loadTokenizer(folder: self.tokenizer)
            if let shards { return try writeShards(into: shards, tokenizer: tokenizer) }
            if !addToken.isEmpty { try tokenizer.addTokens(addToken) }
            let input: String
            if !text.isEmpty {
                input = text.joined(separator: " ")
            } else {
                let data = try file.map(readBytes(path:)) ?? FileHandle.standardInput.readDataToEndOfFile()
                do {
                    input = try GPT2Tokenizer.text(fromUTF8: data)
                } catch {
                    throw TokenizeInputError.inFile(path: file ?? "stdin", error)
                }
            }
            if jsonl {
                try runJSONLines(input, tokenizer: tokenizer)
            } else {
                let threads = threadCount
                let ids = tokenizer.encode(input, allowSpecial: !ordinary, threadCount: threads)
                writeStandardOutput(formatIDs(ids, separator: json ? "," : ", ") + "\n")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw reportFailure(error)
        }
    }

    private func writeShards(into folder: String, tokenizer: GPT2Tokenizer) throws {
        let (files, ignored) = try CorpusFiles.textFiles(text)
        let encoder = try CorpusEncoder(tokenizer: tokenizer, threadCount: threadCount)
        let start = DispatchTime.now().uptimeNanoseconds
        let seconds = { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let showProgress = Console.stderrIsTerminal && !json
        let (paths, statistics) = try encoder.writeShards(files: files, folder: folder,
                                                          shardTokens: shardTokens ?? TokenShard.defaultShardTokens) { s in
            if showProgress {
                let line = String(format: "%d files, %.1f MB, %d tokens, %.1f MB/s", s.documents, Double(s.bytes) / 1e6, s.tokens,
                                  Double(s.bytes) / 1e6 / max(seconds(), 1e-9))
                FileHandle.standardError.write(Data((ProgressDisplay.clearLine + line.prefix(max(Console.terminalColumns() - 1, 10))).utf8))
            }
        }
        if showProgress { Console.err("") }
        let elapsed = seconds()
        if json {
            Console.out(Console.json(["shards": paths, "tokens": statistics.tokens, "documents": statistics.documents,
                                      "bytes": statistics.bytes, "ignored_files": ignored, "seconds": elapsed,
                                      "megabytes_per_second": Double(statistics.bytes) / 1e6 / max(elapsed, 1e-9)]))
        } else {
            Console.out("wrote \(paths.count) shard\(paths.count == 1 ? "" : "s") to \(folder): \(statistics.tokens) tokens from "
                        + "\(statistics.documents) file\(statistics.documents == 1 ? "" : "s") (\(String(format: "%.1f", Double(statistics.bytes) / 1e6)) MB) in "
                        + String(format: "%.2f s, %.1f MB/s", elapsed, Double(statistics.bytes) / 1e6 / max(elapsed, 1e-9))
                        + (ignored > 0 ? "; \(ignored) non-.txt file\(ignored == 1 ? "" : "s") in the folders ignored" : ""))
        }
    }

    private func runJSONLines(_ input: String, tokenizer: GPT2Tokenizer) throws {
        var texts: [String] = []
        for (index, line) in jsonLines(input).enumerated() {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            guard let entry = object as? [String: Any], let text = entry["text"] as? String else {
                throw TokenizeInputError.badJSONLine(line: index + 1)
            }
            texts.append(text)
        }
        let threads = threadCount
        let results = tokenizer.encode(batch: texts, allowSpecial: !ordinary, threadCount: threads)
        var output = ""
        for ids in results { output += "{\"ids\": " + formatIDs(ids) + "}\n" }
        writeStandardOutput(output)
    }
}

/// Problems with the command-line input itself (as opposed to tokenizer files).
enum TokenizeInputError: Error, CustomStringConvertible {
    case badJSONLine(line: Int)
    case badID(String)
    case inFile(path: String, TokenizerError)

    var description: String {
        switch self {
        case let .badJSONLine(line): return "input line \(line): expected a json object with a string 'text'"
        case let .badID(text): return "'\(text)' is not a token id"
        case let .inFile(path, error): return "'\(path)': \(error)"
        }
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Turn GPT-2 token ids back into text.",
        discussion: """
            Ids come from the arguments or stdin (separated by spaces, commas or brackets, so the \
            output of `tokenize` can be piped in). With --jsonl every input line is {"ids": […]} and \
            every output line is {"text": …}.
            """
    )

    @Option(name: .long, help: "Folder with vocab.json + merges.txt, or tokenizer.json.")
    var tokenizer: String

    @Flag(name: .long, help: "Input is JSON Lines of {\"ids\": […]}; output JSON Lines of {\"text\": …}.")
    var jsonl = false

    @Option(name: .long, parsing: .upToNextOption, help: "Tokens added when the ids were made (e.g. [PAD]).")
    var addToken: [String] = []

    @Argument(help: "Token ids. Without them, stdin is read.")
    var ids: [String] = []

    func run() throws {
        do {
            var tokenizer = try ModelIO.loadTokenizer(folder: self.tokenizer)
            if !addToken.isEmpty { try tokenizer.addTokens(addToken) }
            let input = ids.isEmpty
                ? try GPT2Tokenizer.text(fromUTF8: FileHandle.standardInput.readDataToEndOfFile())
                : ids.joined(separator: " ")
            if jsonl {
                var output = ""
                for (index, line) in jsonLines(input).enumerated() {
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
                    guard let entry = object as? [String: Any], let ids = entry["ids"] as? [Int] else {
                        throw TokenizeInputError.badJSONLine(line: index + 1)
                    }
                    output += "{\"text\": " + jsonStringLiteral(try tokenizer.decode(ids)) + "}\n"
                }
                writeStandardOutput(output)
            } else {
                let ids = try input.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "[" || $0 == "]" }).map { field in
                    guard let id = Int(field) else { throw TokenizeInputError.badID(String(field)) }
                    return id
                }
                writeStandardOutput(try tokenizer.decode(ids) + "\n")
            }
        } catch {
            throw reportFailure(error)
        }
    }
}
