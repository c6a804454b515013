import Foundation
import GPT2Kit
import Testing
import TestSupport

/// GPT-2 as GGUF (llama.cpp) and as llm.c's checkpoint: round trips, running a GGUF directly, the embedded
/// tokenizer, and files that lie.
@Suite(.serialized) struct GGUFAndLLMCTests {
    static let tokenizer = Fixtures.path("gpt2-tokenizer")
    static let base = Fixtures.path("tiny-gpt2")
    static let pair = ["--context", "Harry Potter is a series of", "--label", "seven fantasy novels"]

    static func loss(_ arguments: [String]) throws -> Double {
        try #require(try CommandTests.succeed(["eval"] + arguments + pair + ["--json"]).json()["loss"] as? Double)
    }

    @Test(arguments: ["f32", "f16"])
    func ggufToFolderToGGUFIsBitIdentical(dtype: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CommandTests.succeed(["convert", Self.base, dir + "/a.gguf", "--tokenizer", Self.tokenizer, "--dtype", dtype])
        try CommandTests.succeed(["convert", dir + "/a.gguf", dir + "/folder"])
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/folder"))
        #expect(files.isSuperset(of: ["model.safetensors", "config.json", "vocab.json", "merges.txt"]), "\(files)")
        try CommandTests.succeed(["convert", dir + "/folder", dir + "/b.gguf", "--dtype", dtype])
        let a = FileManager.default.contents(atPath: dir + "/a.gguf"), b = FileManager.default.contents(atPath: dir + "/b.gguf")
        #expect(a != nil && a == b, "GGUF → folder → GGUF changed the file")
        // The folder's tokenizer files are GPT-2's (same ids for every golden text).
        let original = try ModelIO.loadTokenizer(folder: Self.tokenizer)
        let recovered = try ModelIO.loadTokenizer(folder: dir + "/folder")
        let embedded = try GGUFModel.tokenizer(path: dir + "/a.gguf")
        for line in try String(contentsOfFile: Fixtures.path("tokenizer-goldens.jsonl"), encoding: .utf8).split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let text = try #require(object["text"] as? String)
            #expect(recovered.encode(text) == original.encode(text) && embedded.encode(text) == original.encode(text), "\(text)")
        }
        #expect(embedded.mergeRules == original.mergeRules)
    }

    @Test func aGGUFIsAModelLikeAnyOther() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = try Self.loss(["--model", Self.base, "--tokenizer", Self.tokenizer])
        for dtype in ["f32", "f16", "q8_0"] {
            try CommandTests.succeed(["convert", Self.base, dir + "/\(dtype).gguf", "--tokenizer", Self.tokenizer, "--dtype", dtype])
            // No --tokenizer: the GGUF's own vocabulary is used.
            let loss = try Self.loss(["--model", dir + "/\(dtype).gguf"])
            // f32 is exact; f16 rounds weights to 11 bits (measured 2e-5 relative here), q8_0 to 8 bits (3e-4).
            let rtol = dtype == "f32" ? 0 : dtype == "f16" ? 1e-4 : 1e-3
            expectClose(loss, reference, rtol: rtol, "\(dtype) loss")
        }
        let inspect = try CommandTests.succeed(["inspect", dir + "/q8_0.gguf", "--json"]).json()
        #expect(inspect["format"] as? String == "gguf")
        let greedy = try CommandTests.succeed(["generate", "--model", dir + "/f32.gguf", "--prompt", "Harry Potter is a series of",
                                       "--max-new-tokens", "4", "--json"]).jsonLines
        let hf = try CommandTests.succeed(["generate", "--model", Self.base, "--tokenizer", Self.tokenizer, "--prompt", "Harry Potter is a series of",
                                   "--max-new-tokens", "4", "--json"]).jsonLines
        #expect(greedy.first?["ids"] as? [Int] == hf.first?["ids"] as? [Int])
    }

    @Test func llmcCheckpointRoundTripsBitIdentically() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CommandTests.succeed(["convert", Self.base, dir + "/model.bin", "--format", "llmc"])
        let bytes = try #require(FileManager.default.contents(atPath: dir + "/model.bin"))
        // 50257 → 50304 rows; 256-int header; 2 layers of n_embd 32.
        let header = bytes.withUnsafeBytes { raw in (0..<8).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } }
        #expect(header == [20240326, 3, 64, 50257, 2, 4, 32, 50304])
        try CommandTests.succeed(["convert", dir + "/model.bin", dir + "/back"])
        let original = try ModelIO.readStateDict(try ModelLocation(path: Self.base))
        let back = try ModelIO.readStateDict(try ModelLocation(path: dir + "/back"))
        for (name, tensor) in original { #expect(back[name].map { $0.isBitwiseEqual(to: tensor) } == true, "\(name)") }
        try CommandTests.succeed(["convert", dir + "/back", dir + "/again.bin", "--format", "llmc"])
        #expect(FileManager.default.contents(atPath: dir + "/again.bin") == bytes)
        expectClose(try Self.loss(["--model", dir + "/model.bin", "--tokenizer", Self.tokenizer]),
                    try Self.loss(["--model", Self.base, "--tokenizer", Self.tokenizer]), rtol: 0, "llm.c file loss")
        try CommandTests.succeed(["convert", Self.base, dir + "/bf16.bin", "--format", "llmc", "--dtype", "bf16"])
        let bf16 = try LLMCCheckpoint.read(path: dir + "/bf16.bin")
        #expect(bf16.stateDict["transformer.wte.weight"]?.dtype == .bf16)
        #expect(bf16.stateDict["transformer.h.1.mlp.c_fc.weight"]?.floats() == original["transformer.h.1.mlp.c_fc.weight"]?.converted(to: .bf16).floats())
    }

    @Test func lyingLLMCFilesAreRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CommandTests.succeed(["convert", Fixtures.path("micro-gpt2"), dir + "/good.bin", "--format", "llmc"])
        let good = try #require(FileManager.default.contents(atPath: dir + "/good.bin"))
        func with(_ index: Int, _ value: Int32) -> Data {
            var d = good
            withUnsafeBytes(of: value.littleEndian) { d.replaceSubrange(index * 4 ..< index * 4 + 4, with: $0) }
            return d
        }
        let cases: [(String, Data, String)] = [
            ("magic", with(0, 20240327), "bad magic"),
            ("version", with(1, 4), "version 4"),
            ("layers", with(4, 5000), "need"),
            ("too many layers", with(4, 1_000_000), "n_layer"),
            ("channels", with(6, Int32.max), "do not describe"),
            ("negative", with(3, -5), "do not describe"),
            ("padded smaller", with(7, 10), "do not describe"),
            ("truncated", good.prefix(good.count - 4), "need"),
            ("header only", good.prefix(100), "truncated"),
        ]
        for (name, data, message) in cases {
            let path = dir + "/\(name).bin"
            try data.write(to: URL(fileURLWithPath: path))
            do {
                _ = try LLMCCheckpoint.read(path: path)
                Issue.record("\(name): accepted")
            } catch {
                #expect("\(error)".contains(message) && "\(error)".contains(path), "\(name): \(error)")
            }
        }
    }

    @Test func ggufsThatAreNotAUsableGPT2AreRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (parameters, _) = (try ModelIO.loadParameters(try ModelLocation(path: Self.base)), 0)
        let tokenizer = try ModelIO.loadTokenizer(folder: Self.tokenizer)
        try GGUFModel.write(parameters, tokenizer: tokenizer, name: "t", to: dir + "/good.gguf", weightType: .f32)
        let good = try GGUF.read(path: dir + "/good.gguf")
        func rewrite(_ name: String, metadata change: ([(key: String, value: GGUF.Value)]) -> [(key: String, value: GGUF.Value)],
                     tensors: ([(name: String, tensor: Tensor, type: GGUF.TensorType)]) -> [(name: String, tensor: Tensor, type: GGUF.TensorType)] = { $0 }) throws -> String {
            let path = dir + "/\(name).gguf"
            let all = good.tensors.map { (name: $0.name, tensor: good.tensor($0), type: $0.type) }
            try GGUF.write(metadata: change(good.metadata.filter { $0.key != GGUF.alignmentKey }), tensors: tensors(all), to: path)
            return path
        }
        let cases: [(String, String, String)] = [
            ("llama", try rewrite("llama") { $0.map { $0.key == "general.architecture" ? ($0.key, .string("llama")) : $0 } }, "not gpt2"),
            ("no merges", try rewrite("nomerges") { $0.filter { $0.key != "tokenizer.ggml.merges" } }, "merges"),
            ("no tokens", try rewrite("notokens") { $0.filter { $0.key != "tokenizer.ggml.tokens" } }, "tokens"),
            ("short vocabulary", try rewrite("short") { $0.map {
                if $0.key == "tokenizer.ggml.tokens", case let .array(t, items) = $0.value { return ($0.key, .array(t, Array(items.prefix(1000)))) }
                return $0
            } }, "token_embd"),
            ("missing layer", try rewrite("missing", metadata: { $0 }, tensors: { $0.filter { !$0.name.hasPrefix("blk.1.ffn_up") } }), "missing"),
            ("extra tensor", try rewrite("extra", metadata: { $0 }, tensors: { $0 + [(name: "rope_freqs", tensor: Tensor(zeros: .f32, shape: [32]), type: .f32)] }), "rope_freqs"),
            ("zero heads", try rewrite("heads") { $0.map { $0.key == "gpt2.attention.head_count" ? ($0.key, .uint32(0)) : $0 } }, "head_count"),
        ]
        for (name, path, message) in cases {
            let r = try CommandTests.run(["eval", "--model", path, "--tokenizer", Self.tokenizer] + Self.pair)
            #expect(r.exited && r.status == 1 && r.stderr.contains(message), "\(name): \(r.stderr)")
        }
    }
}

/// Against llama.cpp and llm.c themselves: goldens made once by `scripts/verify_gguf_llamacpp.py` (llama.cpp
/// 0c1e570 from llama-cpp-python 0.3.36) and `scripts/verify_llmc.py` (llm.c f1e2ace), committed in `fixtures/`.
@Suite struct ReferenceRuntimeTests {
    static let promptIDs: [TokenID] = [18308, 14179, 318, 257, 2168, 286]

    @Test(arguments: [(GGUFModel.WeightType.f32, 1e-3), (.f16, 1e-3), (.q8_0, 3e-2)])
    func llamaCppGivesOurLogitsOnOurGGUF(type: GGUFModel.WeightType, scaledTolerance: Double) throws {
        // Measured max |llama.cpp − ours| / max|logit|: f32 3.9e-4 (llama.cpp's CPU GELU goes through an f16 table),
        // f16 5.3e-4 and q8_0 1.3e-2 (llama.cpp also rounds activations to f16 / 8-bit blocks before each product).
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parameters = try ModelIO.loadParameters(try ModelLocation(path: Fixtures.path("tiny-gpt2")))
        let tokenizer = try ModelIO.loadTokenizer(folder: Fixtures.path("gpt2-tokenizer"))
        let path = dir + "/tiny-\(type.rawValue).gguf"
        try GGUFModel.write(parameters, tokenizer: tokenizer, name: "tiny-gpt2", to: path, weightType: type)
        let (model, _) = try ModelIO.loadModel(path: path, trainsBase: false)
        try model.forward(inputIDs: Self.promptIDs, batchSize: 1, sequenceLength: Self.promptIDs.count)
        let golden = try #require(try SafetensorsReader.read(path: Fixtures.path("gguf-llamacpp/logits.safetensors"))[type.rawValue])
        let expected = golden.floats()
        let V = model.config.vocabularySize
        #expect(golden.shape == [6, V])
        let scale = Double(expected.map(abs).max() ?? 1)
        var worst = 0.0
        for t in 0..<6 {
            let ours = model.logits(batch: 0, position: t)
            let theirs = Array(expected[t * V ..< (t + 1) * V])
            for i in 0..<V { worst = max(worst, Double(abs(ours[i] - theirs[i]))) }
            #expect(ours.indices.max { ours[$0] < ours[$1] } == theirs.indices.max { theirs[$0] < theirs[$1] }, "top token at \(t)")
        }
        #expect(worst / scale <= scaledTolerance, "\(type.rawValue): max |llama.cpp − gpt2kit| = \(worst) (\(worst / scale) of the largest logit)")
    }

    @Test func llamaCppTokenizesLikeUsWithTheEmbeddedVocabulary() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parameters = try ModelIO.loadParameters(try ModelLocation(path: Fixtures.path("tiny-gpt2")))
        try GGUFModel.write(parameters, tokenizer: try ModelIO.loadTokenizer(folder: Fixtures.path("gpt2-tokenizer")),
                            name: "tiny-gpt2", to: dir + "/t.gguf", weightType: .f32)
        let tokenizer = try GGUFModel.tokenizer(path: dir + "/t.gguf")
        let cases = try #require(try Fixtures.json("gguf-llamacpp/tokenization.json") as? [[String: Any]])
        #expect(cases.count >= 44)
        for c in cases {
            let text = try #require(c["text"] as? String)
            #expect(tokenizer.encode(text, allowSpecial: false) == (c["ids"] as? [Int]), "\(text)")
            #expect(tokenizer.encode(text, allowSpecial: true) == (c["ids_parse_special"] as? [Int]), "\(text) (special)")
        }
    }

    @Test func llmcTrainerGetsOurFirstStepLossFromOurCheckpoint() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parameters = try ModelIO.loadParameters(try ModelLocation(path: Fixtures.path("tiny-gpt2")))
        try LLMCCheckpoint.write(parameters, to: dir + "/gpt2_124M.bin")
        let batch = try #require(try Fixtures.json("llmc/batch.json") as? [String: Any])
        let inputs = try #require(batch["inputs"] as? [[Int]]).flatMap { $0 }
        let targets = try #require(batch["targets"] as? [[Int]])
        let llmcLoss = try #require(batch["llmc_step0_train_loss"] as? Double)
        let (model, _) = try ModelIO.loadModel(path: dir + "/gpt2_124M.bin", trainsBase: false)
        // GPT2LMHeadModel labels are shifted inside the model: row b's labels are its inputs' successors, which are
        // llm.c's targets; put each row's last target after the row so the shift scores all 64 positions.
        let B = targets.count, T = targets[0].count
        var ids: [TokenID] = [], labels: [TokenID] = []
        for b in 0..<B {
            ids += inputs[b * T ..< (b + 1) * T] + [targets[b][T - 1]]
            labels += [-100] + targets[b]
        }
        // T + 1 positions per row exceed the tiny model's 64; score the rows through a window of 64 instead.
        _ = ids; _ = labels
        var total = 0.0
        for b in 0..<B {
            let row = Array(inputs[b * T ..< (b + 1) * T])
            try model.forward(inputIDs: row, batchSize: 1, sequenceLength: T)
            for t in 0..<T {
                let logits = model.logits(batch: 0, position: t).map(Double.init)
                let maxLogit = logits.max() ?? 0
                let logSum = log(logits.reduce(0) { $0 + exp($1 - maxLogit) }) + maxLogit
                total += logSum - logits[targets[b][t]]
            }
        }
        let loss = total / Double(B * T)
        expectClose(loss, llmcLoss, rtol: 1e-4, "llm.c step-0 loss")
    }
}
