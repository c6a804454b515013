import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Tokenizer files travel with models: `init --tokenizer DIR` copies them (after checking they load and fit the
/// model), `init` without it says the folder has none and how to add them, and the bundled tiny model carries its own.
@Suite(.serialized) struct InitCommandTests {
    static var tinyConfig: String { Fixtures.path("tiny-gpt2/config.json") }

    @Test func initWithTokenizerWritesAFolderThatGenerates() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/model"
        let r = try CommandTests.succeed(["init", "--config", Self.tinyConfig, "--tokenizer", CommandTests.tokenizer, "--out", out])
        #expect(!r.stderr.contains("note:"), "\(r.stderr)")
        for name in ["vocab.json", "merges.txt"] {
            #expect(r.stdout.contains("wrote \(out)/\(name)"), "\(r.stdout)")
            let copied = FileManager.default.contents(atPath: out + "/" + name)
            #expect(copied != nil && copied == FileManager.default.contents(atPath: CommandTests.tokenizer + "/" + name), "\(name) differs")
        }
        #expect(try ModelLocation(path: out).hasTokenizer)
        let generated = try CommandTests.succeed(["generate", "--model", out, "--prompt", "Harry", "--max-new-tokens", "2", "--json"])
        #expect((generated.jsonLines.first?["ids"] as? [Int])?.first == 18308, "\(generated.stdout)")
    }

    @Test func initWithoutTokenizerSaysHowToAddOne() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/model"
        let r = try CommandTests.succeed(["init", "--config", Self.tinyConfig, "--out", out])
        #expect(r.stderr.hasPrefix("note: \(out) has no tokenizer files (vocab.json + merges.txt); add them with --tokenizer DIR"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/vocab.json"))
        let generate = try CommandTests.run(["generate", "--model", out, "--prompt", "Harry"])
        #expect(generate.status == 1 && generate.stderr.hasPrefix("error: \(out): no tokenizer files"), "\(generate.stderr)")
    }

    @Test func aTokenizerThatCannotServeTheModelIsRefusedBeforeWriting() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // micro-gpt2 has 1000 tokens; GPT-2's tokenizer 50257.
        let small = try CommandTests.run(["init", "--config", Fixtures.path("micro-gpt2/config.json"), "--tokenizer", CommandTests.tokenizer,
                                          "--out", dir + "/a"])
        #expect(small.status == 1 && small.stderr == "error: \(CommandTests.tokenizer): the tokenizer has 50257 tokens, more than the model's vocab_size 1000\n",
                "\(small.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/a"), "nothing is written")
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        let empty = try CommandTests.run(["init", "--config", Self.tinyConfig, "--tokenizer", dir + "/empty", "--out", dir + "/b"])
        #expect(empty.status == 1 && empty.stderr.hasPrefix("error: \(dir)/empty: no tokenizer files"), "\(empty.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/b"))
    }

    /// The bundled tiny model has GPT-2's tokenizer files (copies of `gpt2-tokenizer/`), so it needs no --tokenizer.
    @Test func theTinyFixtureCarriesItsTokenizer() throws {
        for name in ["vocab.json", "merges.txt"] {
            let a = FileManager.default.contents(atPath: Fixtures.path("tiny-gpt2/" + name))
            #expect(a != nil && a == FileManager.default.contents(atPath: CommandTests.tokenizer + "/" + name), "tiny-gpt2/\(name)")
        }
        let plain = try CommandTests.succeed(["generate", "--model", Fixtures.path("tiny-gpt2"), "--prompt", "Harry", "--max-new-tokens", "3", "--json"])
        let named = try CommandTests.succeed(["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer,
                                              "--prompt", "Harry", "--max-new-tokens", "3", "--json"])
        #expect(plain.stdout == named.stdout && !plain.stdout.isEmpty)
    }
}
