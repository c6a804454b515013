import Foundation
import GPT2Kit
import Testing
import TestSupport

/// The LoRA workflow and the run-folder rules through the `gpt2kit` command.
@Suite(.serialized) struct LoRACommandTests {
    static let tokenizer = Fixtures.path("gpt2-tokenizer")
    static let base = Fixtures.path("tiny-gpt2")
    static let pair = ["--context", "Harry Potter is a series of", "--label", "seven fantasy novels"]

    @Test func loraRunWritesAPEFTAdapterAndNoBaseWeights() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = dir + "/run"
        try CommandTests.succeed(["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--steps", "20", "--lr", "1e-2",
                          "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "c_attn,c_proj,c_fc", "--out", run] + Self.pair)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: run))
        #expect(files == ["adapter_model.safetensors", "adapter_config.json", "trainer_state", "loss_curve.svg"], "\(files)")
        let adapter = try SafetensorsReader.read(path: run + "/adapter_model.safetensors")
        #expect(adapter.count == 16)
        #expect(adapter["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]?.shape == [4, 32])
        #expect(adapter["base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight"]?.shape == [32, 4])
        // eval with the adapter (unmerged) equals eval of the merged model; greedy learns the label.
        let withAdapter = try CommandTests.succeed(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer, "--adapter", run, "--json"] + Self.pair).json()
        try CommandTests.succeed(["merge", "--model", Self.base, "--adapter", run, "--out", dir + "/merged"])
        let merged = try CommandTests.succeed(["eval", "--model", dir + "/merged", "--tokenizer", Self.tokenizer, "--json"] + Self.pair).json()
        let a = try #require(withAdapter["loss"] as? Double), m = try #require(merged["loss"] as? Double)
        expectClose(a, m, rtol: 1e-5, "adapter vs merged loss")
        let base = try CommandTests.succeed(["eval", "--model", Self.base, "--tokenizer", Self.tokenizer, "--json"] + Self.pair).json()
        #expect(try #require(base["loss"] as? Double) > a + 1, "the adapter learned nothing")
        let greedy = try CommandTests.succeed(["generate", "--model", Self.base, "--tokenizer", Self.tokenizer, "--adapter", run,
                                       "--prompt", "Harry Potter is a series of", "--max-new-tokens", "3", "--json"]).jsonLines
        let mergedGreedy = try CommandTests.succeed(["generate", "--model", dir + "/merged", "--tokenizer", Self.tokenizer,
                                             "--prompt", "Harry Potter is a series of", "--max-new-tokens", "3", "--json"]).jsonLines
        #expect(greedy.first?["ids"] as? [Int] == mergedGreedy.first?["ids"] as? [Int])
    }

    @Test func loraRunResumesBitIdenticallyAndContinuesAnAdapter() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--steps", "6", "--lr", "1e-2", "--seed", "4",
                      "--lora-rank", "2", "--lora-dropout", "0.1", "--lora-targets", "c_attn,mlp.c_proj", "--json"] + Self.pair
        let straight = try CommandTests.succeed(common + ["--out", dir + "/a"]).jsonLines
        let first = try CommandTests.succeed(common + ["--out", dir + "/b", "--stop-after", "3", "--save-every", "1", "--save-total-limit", "2"]).jsonLines
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir + "/b").filter { $0.hasPrefix("checkpoint-") }.sorted()
        #expect(kept == ["checkpoint-1", "checkpoint-2"] || kept == ["checkpoint-2", "checkpoint-3"], "\(kept)")
        let second = try CommandTests.succeed(["finetune", "--resume", dir + "/b", "--out", dir + "/b", "--tokenizer", Self.tokenizer, "--json"]
                                      + Self.pair).jsonLines
        let losses = { (lines: [[String: Any]]) in lines.compactMap { ($0["loss"] as? NSNumber)?.doubleValue } }
        #expect(losses(first + second) == losses(straight))
        for file in ["adapter_model.safetensors", "trainer_state/optimizer.safetensors"] {
            let x = FileManager.default.contents(atPath: dir + "/a/" + file), y = FileManager.default.contents(atPath: dir + "/b/" + file)
            #expect(x != nil && x == y, "\(file) differs between the straight and the resumed run")
        }
        // Train the finished adapter further as a new run (--adapter): it starts from its weights.
        let more = try CommandTests.succeed(["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--adapter", dir + "/a",
                                     "--steps", "2", "--lr", "1e-2", "--out", dir + "/c", "--json"] + Self.pair).jsonLines
        let continued = try #require(losses(more).first), last = try #require(losses(straight).last)
        #expect(continued < last + 0.5, "continued from \(continued), the adapter ended at \(last)")
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/c/adapter_config.json"))) as? [String: Any])
        #expect(config["target_modules"] as? [String] == ["c_attn", "mlp.c_proj"] && config["r"] as? Int == 2)
    }

    @Test func aUsedRunFolderIsRefusedUnlessOverwrite() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = dir + "/run"
        let args = ["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--steps", "2", "--save-every", "1", "--out", run] + Self.pair
        try CommandTests.succeed(args)
        #expect(FileManager.default.fileExists(atPath: run + "/checkpoint-1"))
        let refused = try CommandTests.run(args)
        #expect(refused.exited && refused.status == 1 && refused.stderr.contains("--overwrite"), "\(refused.stderr)")
        try CommandTests.succeed(["finetune", "--model", Self.base, "--tokenizer", Self.tokenizer, "--steps", "1", "--out", run, "--overwrite"] + Self.pair)
        #expect(!FileManager.default.fileExists(atPath: run + "/checkpoint-1"), "the old run's checkpoint stayed")
        let state = try TrainingRun.readState(folder: run)
        #expect(state.totalSteps == 1)
        // The base model's own folder is never cleared.
        let copy = dir + "/model"
        try FileManager.default.copyItem(atPath: Self.base, toPath: copy)
        let own = try CommandTests.run(["finetune", "--model", copy, "--tokenizer", Self.tokenizer, "--steps", "1", "--out", copy, "--overwrite"] + Self.pair)
        #expect(own.status == 1 && FileManager.default.fileExists(atPath: copy + "/model.safetensors"), "\(own.stderr)")
    }

    @Test func initPresetsHaveTheReleasedShapes() throws {
        for (preset, layers, embd, heads) in [("gpt2", 12, 768, 12), ("gpt2-medium", 24, 1024, 16), ("gpt2-large", 36, 1280, 20), ("gpt2-xl", 48, 1600, 25)] {
            let config = GPT2Config(preset: try #require(GPT2Config.Preset(rawValue: preset)))
            #expect(config.layerCount == layers && config.embeddingSize == embd && config.headCount == heads && config.vocabularySize == 50257)
        }
        #expect(GPT2Config(preset: .gpt2XL).checkedParameterCount == 1_557_611_200)
        #expect(GPT2Config(preset: .gpt2).checkedParameterCount == 124_439_808)
    }
}
