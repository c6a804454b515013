import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Corpus data through the `gpt2kit` command: `tokenize --shards`, `finetune`/`eval --data` on text and shards.
@Suite(.serialized) struct CorpusCommandTests {
    static let tokenizer = Fixtures.path("gpt2-tokenizer")
    static let base = Fixtures.path("tiny-gpt2")

    /// A small text folder: three documents in two folders, a hidden file and a non-text file that are skipped.
    static func corpus(in dir: String) throws -> String {
        let fm = FileManager.default
        let root = dir + "/corpus"
        try fm.createDirectory(atPath: root + "/part2", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/.cache", withIntermediateDirectories: true)
        let sentences = ["Harry Potter is a series of seven fantasy novels.", "The capital of France is Paris.",
                         "A tiny model learns slowly, but it learns.", "Tokens are packed into blocks."]
        for (i, name) in ["part1.txt", "part2/a.txt", "part2/b.txt"].enumerated() {
            let text = (0 ..< 12 + 5 * i).map { sentences[($0 + i) % sentences.count] }.joined(separator: "\n") + "\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/" + name))
        }
        try Data("skipped".utf8).write(to: URL(fileURLWithPath: root + "/.cache/x.txt"))
        try Data("skipped".utf8).write(to: URL(fileURLWithPath: root + "/README.md"))
        return root
    }

    static func losses(_ lines: [[String: Any]]) -> [Double] { lines.compactMap { ($0["loss"] as? NSNumber)?.doubleValue } }

    @Test func tokenizeShardsThenTrainAndEvaluateLikeText() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try Self.corpus(in: dir)
        let made = try CommandTests.succeed(["tokenize", "--tokenizer", Self.tokenizer, "--shards", dir + "/shards", "--shard-tokens", "300",
                                             "--json", corpus]).json()
        let shards = try #require(made["shards"] as? [String])
        let tokens = try #require(made["tokens"] as? Int)
        #expect(made["documents"] as? Int == 3 && made["ignored_files"] as? Int == 1)
        #expect(shards.count == (tokens + 299) / 300 && shards.first?.hasSuffix("/shard_000000.bin") == true)
        // The shards hold the ids of each document, <|endoftext|> first, in sorted file order.
        let tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: Self.tokenizer))
        var expected: [UInt16] = []
        for name in ["part1.txt", "part2/a.txt", "part2/b.txt"] {
            let text = try String(contentsOfFile: corpus + "/" + name, encoding: .utf8)
            expected += [50256] + tokenizer.encode(text, allowSpecial: false).map { UInt16($0) }
        }
        var stored: [UInt16] = []
        for path in shards {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            stored += stride(from: 1024, to: bytes.count, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
        }
        #expect(stored == expected)

        // Training on the text folder and on its shards sees the same blocks: the same losses.
        let common = ["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--block-size", "16", "--batch-size", "2",
                      "--steps", "3", "--lr", "1e-3", "--seed", "4", "--json"]
        let fromText = try CommandTests.succeed(common + ["--data", corpus, "--out", dir + "/t"]).jsonLines
        let fromShards = try CommandTests.succeed(common + ["--data", dir + "/shards", "--out", dir + "/s",
                                                            "--eval-data", corpus, "--eval-every", "3"]).jsonLines
        #expect(Self.losses(fromText).count == 3 && Self.losses(fromText) == Self.losses(fromShards))
        let last = try #require(fromShards.last)
        let evalLoss = try #require(last["eval_loss"] as? Double), perplexity = try #require(last["eval_perplexity"] as? Double)
        expectClose(perplexity, exp(evalLoss), rtol: 1e-12, "eval perplexity")

        // eval on text and on shards: one loss, block count, perplexity.
        let evalText = try CommandTests.succeed(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer, "--data", corpus,
                                                 "--block-size", "32", "--json"]).json()
        let evalShards = try CommandTests.succeed(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer, "--data", dir + "/shards",
                                                   "--block-size", "32", "--json"]).json()
        #expect(evalText["loss"] as? Double == evalShards["loss"] as? Double)
        #expect(evalText["examples"] as? Int == tokens / 32 && evalText["label_tokens"] as? Int == tokens / 32 * 31)
        #expect(evalText["tokens"] as? Int == tokens && evalText["dropped_tokens"] as? Int == tokens % 32)
        let loss = try #require(evalText["loss"] as? Double)
        expectClose(try #require(evalText["perplexity"] as? Double), exp(loss), rtol: 1e-12, "perplexity")
        // The default block is n_positions (64 for the tiny model).
        let evalDefault = try CommandTests.succeed(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer, "--data", corpus, "--json"]).json()
        #expect(evalDefault["block_size"] as? Int == 64)
    }

    /// `--stop-after` then `--resume` on shards writes the same weights and optimizer state as one run.
    @Test func shardRunStopAndResumeIsByteIdentical() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try Self.corpus(in: dir)
        try CommandTests.succeed(["tokenize", "--tokenizer", Self.tokenizer, "--shards", dir + "/shards", "--shard-tokens", "200", corpus])
        let data = ["--data", dir + "/shards", "--block-size", "16"]
        let common = ["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--steps", "5", "--lr", "1e-3", "--seed", "9",
                      "--dropout", "0.1", "--batch-size", "3", "--json"] + data
        let straight = try CommandTests.succeed(common + ["--out", dir + "/a"]).jsonLines
        let first = try CommandTests.succeed(common + ["--out", dir + "/b", "--stop-after", "2"]).jsonLines
        let second = try CommandTests.succeed(["finetune", "--resume", dir + "/b", "--out", dir + "/b", "--tokenizer", Self.tokenizer,
                                               "--json"] + data).jsonLines
        #expect((first + second).map { $0["step"] as? Int } == [1, 2, 3, 4, 5])
        #expect(Self.losses(first + second) == Self.losses(straight))
        for file in ["model.safetensors", "trainer_state/optimizer.safetensors"] {
            let a = FileManager.default.contents(atPath: dir + "/a/" + file), b = FileManager.default.contents(atPath: dir + "/b/" + file)
            #expect(a != nil && a == b, "\(file) differs between the straight and the resumed run")
        }
        // Another block size is other data: the resume is refused.
        let other = try CommandTests.run(["finetune", "--resume", dir + "/b", "--out", dir + "/b", "--tokenizer", Self.tokenizer,
                                          "--data", dir + "/shards", "--block-size", "8", "--steps", "6"])
        HostileInputTests.expectRefused(other, mentioning: "differs from the data of the run being resumed")
    }

    @Test func badCorpusInputIsRefusedWithTheReason() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try Self.corpus(in: dir)
        let run = { (data: [String]) in
            try CommandTests.run(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer] + data, seconds: 60)
        }
        try Data("a,b\n".utf8).write(to: URL(fileURLWithPath: dir + "/data.csv"))
        HostileInputTests.expectRefused(try run(["--data", dir + "/data.csv"]), mentioning: "give a .jsonl file, a .txt file or a folder")
        try Data("tiny".utf8).write(to: URL(fileURLWithPath: dir + "/small.txt"))
        HostileInputTests.expectRefused(try run(["--data", dir + "/small.txt"]), mentioning: "fewer than one block of 64")
        HostileInputTests.expectRefused(try run(["--data", corpus, "--block-size", "65"]), mentioning: "2...64")
        HostileInputTests.expectRefused(try run(["--data", corpus, "--block-size", "1"]), mentioning: "--block-size")
        // A shard whose ids the model does not have: a typed error naming the file, never a trap.
        var shard = [UInt8](repeating: 0, count: 1024)
        for (i, v) in [Int32(20240520), 1, 40].enumerated() { withUnsafeBytes(of: v.littleEndian) { for k in 0 ..< 4 { shard[4 * i + k] = $0[k] } } }
        for t in 0 ..< 40 { shard += t == 33 ? [0xFF, 0xFF] : [UInt8(t), 0] }
        try FileManager.default.createDirectory(atPath: dir + "/bad", withIntermediateDirectories: true)
        try Data(shard).write(to: URL(fileURLWithPath: dir + "/bad/shard_000000.bin"))
        HostileInputTests.expectRefused(try run(["--data", dir + "/bad", "--block-size", "8"]), mentioning: dir + "/bad/shard_000000.bin: token 33 is id 65535")
        try Data(shard.dropLast(2)).write(to: URL(fileURLWithPath: dir + "/bad/shard_000000.bin"))
        HostileInputTests.expectRefused(try run(["--data", dir + "/bad", "--block-size", "8"]), mentioning: "not an llm.c token shard")
        // JSONL options that do not apply to blocks, and block options that do not apply to JSONL.
        // (usage errors: one `error: <flag>: <problem>` line and status 1, as every other failure)
        let usage = { (r: CommandTests.Result, text: String) in
            #expect(r.exited && r.status == 1 && r.stderr.hasPrefix("error: " + text), "status \(r.status): \(r.stderr)")
        }
        usage(try run(["--data", corpus, "--truncate", "left"]), "--truncate: cuts JSONL records")
        try Data("{\"text\": \"hello\"}\n".utf8).write(to: URL(fileURLWithPath: dir + "/x.jsonl"))
        usage(try run(["--data", dir + "/x.jsonl", "--block-size", "8"]), "--block-size: packs text or shards")
        // tokenize --shards refuses a folder that already holds shards.
        try CommandTests.succeed(["tokenize", "--tokenizer", Self.tokenizer, "--shards", dir + "/out", corpus])
        HostileInputTests.expectRefused(try CommandTests.run(["tokenize", "--tokenizer", Self.tokenizer, "--shards", dir + "/out", corpus]),
                                        mentioning: "already holds 1 shard file")
    }
}
