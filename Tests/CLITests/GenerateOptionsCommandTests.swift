import Foundation
import GPT2Kit
import Testing
import TestSupport

/// `gpt2kit generate` with the repetition controls, stop strings, streaming and truncation.
@Suite(.serialized) struct GenerateOptionsCommandTests {
    static let prompt = "Harry Potter is a series of"
    static var base: [String] { ["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer, "--prompt", prompt] }
    // with --repetition-penalty 1.3 the greedy continuation is "ults forbidmarginKal understand Republican…"
    static let penalisedIDs = [18308, 14179, 318, 257, 2168, 286, 8376, 33277, 36153, 41428, 1833, 3415, 34743, 24408, 32824, 33007]

    @Test func repetitionPenaltyMatchesTheGolden() throws {
        let r = try CommandTests.succeed(Self.base + ["--max-new-tokens", "10", "--repetition-penalty", "1.3", "--json"])
        #expect(r.jsonLines.first?["ids"] as? [Int] == Self.penalisedIDs)
        #expect(r.jsonLines.first?["finish_reason"] as? String == "length")
    }

    @Test func stopStringEndsTheTextAndJSONSaysWhich() throws {
        let r = try CommandTests.succeed(Self.base + ["--max-new-tokens", "10", "--repetition-penalty", "1.3",
                                                      "--stop", "never", "--stop", "bidmar", "--json"])
        let line = try #require(r.jsonLines.first)
        #expect(line["finish_reason"] as? String == "stop" && line["stop"] as? String == "bidmar")
        #expect(line["text"] as? String == Self.prompt + "ults for")
        #expect(line["ids"] as? [Int] == Array(Self.penalisedIDs.prefix(9))) // every id generated, the stop's token included
        let streamed = try CommandTests.succeed(Self.base + ["--max-new-tokens", "10", "--repetition-penalty", "1.3", "--stop", "bidmar", "--stream"])
        #expect(streamed.stdout == Self.prompt + "ults for\n")
        let plain = try CommandTests.succeed(Self.base + ["--max-new-tokens", "10", "--repetition-penalty", "1.3", "--stop", "bidmar"])
        #expect(plain.stdout == streamed.stdout)
    }

    @Test func streamEqualsThePrintedText() throws {
        let args = Self.base + ["--max-new-tokens", "24", "--no-repeat-ngram-size", "2"]
        let streamed = try CommandTests.succeed(args + ["--stream"]).stdout
        #expect(streamed == (try CommandTests.succeed(args).stdout))
    }

    @Test func generationConfigFileSuppliesTheNewFields() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gpt2/" + file), toPath: dir + "/" + file)
        }
        let generationConfig = #"{"eos_token_id": 50256, "repetition_penalty": 1.3, "stop_strings": "bidmar", "max_new_tokens": 10}"#
        try Data(generationConfig.utf8).write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
        let r = try CommandTests.succeed(["generate", "--model", dir, "--tokenizer", CommandTests.tokenizer, "--prompt", Self.prompt, "--json"])
        #expect(r.jsonLines.first?["stop"] as? String == "bidmar")
        #expect(r.jsonLines.first?["ids"] as? [Int] == Array(Self.penalisedIDs.prefix(9)))
        // flags win over the file
        let flags = try CommandTests.succeed(["generate", "--model", dir, "--tokenizer", CommandTests.tokenizer, "--prompt", Self.prompt,
                                              "--repetition-penalty", "1", "--stop", "zzz", "--json"])
        #expect(flags.jsonLines.first?["finish_reason"] as? String == "length")
        #expect(flags.jsonLines.first?["ids"] as? [Int] == [18308, 14179, 318, 257, 2168, 286, 8376] + Array(repeating: 33277, count: 9))
    }

    @Test func truncateLeftKeepsTheEndOfALongPrompt() throws {
        let long = String(repeating: "a b ", count: 60) // 121 tokens, the tiny model has 64 positions
        let refused = try CommandTests.run(["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer,
                                            "--prompt", long, "--max-new-tokens", "5"])
        #expect(refused.status != 0 && refused.stderr.contains("prompt has 121 tokens, more than the model's 64 positions"), "\(refused.stderr)")
        let r = try CommandTests.succeed(["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer,
                                          "--prompt", long, "--max-new-tokens", "5", "--truncate", "left", "--json"])
        #expect(r.stderr.contains("prompt truncated to its last 59 of 121 tokens"))
        let ids = try #require(r.jsonLines.first?["ids"] as? [Int])
        let tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: CommandTests.tokenizer))
        #expect(ids.count == 64 && Array(ids.prefix(59)) == Array(tokenizer.encode(long).suffix(59)))
    }

    @Test(arguments: [
        (["--repetition-penalty", "0"], "--repetition-penalty: 0.0 is not a finite number > 0"),
        (["--repetition-penalty", "nan"], "--repetition-penalty: nan is not a finite number > 0"),
        (["--no-repeat-ngram-size=-2"], "--no-repeat-ngram-size: -2 is not an integer >= 0"),
        (["--stop", ""], "--stop: \"\" is not a non-empty string"),
        (["--truncate", "right"], "--truncate right would cut the end of the prompt"),
    ])
    func badValuesAreRefusedByName(arguments: [String], message: String) throws {
        let r = try CommandTests.run(Self.base + arguments)
        #expect(r.exited && r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }

    @Test func promptsFileDecodesEveryPromptInOneBatchInInputOrder() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prompts = ["Harry Potter is a series of", "The", "seven fantasy novels written by"]
        let common = ["generate", "--model", Fixtures.path("tiny-gpt2"), "--tokenizer", CommandTests.tokenizer, "--max-new-tokens", "6", "--json"]
        let alone = try prompts.map { try CommandTests.succeed(common + ["--prompt", $0]).jsonLines.first?["ids"] as? [Int] }
        try Data(prompts.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/prompts.txt"))
        let lines = try CommandTests.succeed(common + ["--prompts-file", dir + "/prompts.txt"]).jsonLines
        #expect(lines.map { $0["ids"] as? [Int] } == alone)
        #expect(lines.map { $0["prompt_index"] as? Int } == [0, 1, 2])
        let jsonl = prompts.map { #"{"prompt": "\#($0)"}"# }.joined(separator: "\n") + "\n"
        try Data(jsonl.utf8).write(to: URL(fileURLWithPath: dir + "/prompts.jsonl"))
        #expect(try CommandTests.succeed(common + ["--prompts-file", dir + "/prompts.jsonl", "--weights", "f16"]).jsonLines.map { $0["ids"] as? [Int] } == alone)
        let q8 = try CommandTests.succeed(common + ["--prompts-file", dir + "/prompts.jsonl", "--weights", "q8_0"]).jsonLines
        #expect(q8.count == 3)
        let both = try CommandTests.run(common + ["--prompts-file", dir + "/prompts.txt", "--prompt", "x"])
        #expect(both.status != 0 && both.stderr.contains("--prompt TEXT or --prompts-file FILE"))
    }
}
