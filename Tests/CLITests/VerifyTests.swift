import Foundation
import GPT2Kit
import Testing
import TestSupport

/// `gpt2kit verify`: the bundled models against their own converted copies (bit-identical, or within the tolerance
/// of the stored type), corrupted copies that must fail naming the tensor, and the PyTorch reference.
@Suite(.serialized) struct VerifyTests {
    static let tiny = Fixtures.path("tiny-gpt2")
    static let micro = Fixtures.path("micro-gpt2")
    static let tokenizer = Fixtures.path("gpt2-tokenizer")
    static let reference = Fixtures.path("verify/tiny-gpt2.json")
    /// Every id below micro-gpt2's vocabulary of 1000: [40, 716, 257, 582, 286, 262, 995, 11, 290, 314, 481, 307, 994, 13].
    static let microPrompt = "I am a man of the world, and I will be here."
    static let perturbed = "transformer.h.1.attn.c_attn.weight"

    /// Runs `verify … --json`, expecting `status`, and returns the one JSON object on stdout.
    static func verifyJSON(_ arguments: [String], status: Int32, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let r = try CommandTests.run(["verify"] + arguments + ["--json"], sourceLocation: sourceLocation)
        #expect(r.exited && r.status == status, "status \(r.status): \(r.stdout.prefix(2000)) \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stdout.split(separator: "\n").count == 1, "stdout is more than one line", sourceLocation: sourceLocation)
        return try r.json()
    }

    static func tensors(_ o: [String: Any]) throws -> [[String: Any]] { try #require(o["tensors"] as? [[String: Any]]) }

    /// A copy of tiny-gpt2 (config and safetensors) with its state dict changed by `change`.
    static func modifiedCopy(in dir: String, _ change: (inout StateDict) -> Void) throws -> String {
        let folder = dir + "/modified"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: tiny + "/config.json", toPath: folder + "/config.json")
        var dict = try ModelIO.readStateDict(ModelLocation(path: tiny))
        change(&dict)
        try SafetensorsWriter.write(dict, to: folder + "/model.safetensors", metadata: ["format": "pt"])
        return folder
    }

    /// `h.1.attn.c_attn.weight[3, 5] += delta`.
    static func perturb(_ dict: inout StateDict, by delta: Float) {
        guard let tensor = dict[perturbed] else { return }
        var values = tensor.floats()
        values[3 * 96 + 5] += delta
        dict[perturbed] = Tensor(floats: values, shape: tensor.shape)
    }

    @Test(arguments: [("pytorch", "f32", "identical"), ("safetensors", "f16", "f16"), ("gguf", "q8_0", "q8_0")])
    func convertedCopiesPass(format: String, dtype: String, expected: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let copy = format == "gguf" ? dir + "/tiny.gguf" : dir + "/copy"
        try CommandTests.succeed(["convert", Self.tiny, copy, "--dtype", dtype, "--tokenizer", Self.tokenizer]
                                 + (format == "gguf" ? [] : ["--format", format]))
        let o = try Self.verifyJSON([Self.tiny, copy, "--tokenizer", Self.tokenizer], status: 0)
        #expect(o["passed"] as? Bool == true, "\(o["failures"] ?? "")")
        let rows = try Self.tensors(o)
        #expect(rows.count == 28)
        let statuses = Set(rows.compactMap { $0["status"] as? String })
        let forward = try #require(o["forward"] as? [String: Any])
        #expect(forward["greedy_equal"] as? Bool == true)
        #expect(forward["ids"] as? [Int] == [18308, 14179, 318, 257, 2168, 286])
        if expected == "identical" {
            #expect(statuses == ["identical"], "\(statuses)")
            #expect(rows.allSatisfy { $0["bit_identical"] as? Bool == true && $0["max_abs_diff"] as? Double == 0 })
            #expect(forward["max_abs_logit_diff"] as? Double == 0 && forward["loss_a"] as? Double == forward["loss_b"] as? Double)
            #expect(o["precision"] as? String == "f32")
            #expect(o["verdict"] as? String == "verified: A and B agree within f32 tolerances")
        } else {
            #expect(o["precision"] as? String == expected)
            #expect(statuses.contains("within_tolerance") && statuses.isSubset(of: ["identical", "within_tolerance"]), "\(statuses)")
            let b = try #require(o["b"] as? [String: Any])
            #expect((b["stored_types"] as? [String: Int])?[dtype.uppercased()] != nil, "\(b)")
            #expect(o["verdict"] as? String == "verified: A and B agree within \(expected) tolerances")
        }
        // The human form ends with the verdict line.
        let text = try CommandTests.succeed(["verify", Self.tiny, copy, "--tokenizer", Self.tokenizer]).stdout
        #expect(text.hasSuffix((o["verdict"] as? String ?? "-") + "\n"), "\(text)")
    }

    /// micro-gpt2's own files in every format and naming, against its safetensors.
    @Test(arguments: ["pytorch_model.bin", "pytorch_model_legacy.bin", "hub_style.safetensors", "tf_model.h5",
                      "model.fp16.safetensors", "model.bf16.safetensors", "pytorch_model.fp16.bin"])
    func microFormatsPass(file: String) throws {
        let o = try Self.verifyJSON([Self.micro + "/model.safetensors", Self.micro + "/" + file, "--tokenizer", Self.tokenizer,
                                     "--prompt", Self.microPrompt], status: 0)
        let expected = file.contains("bf16") ? "bf16" : file.contains("fp16") ? "f16" : "f32"
        #expect(o["precision"] as? String == expected)
        #expect(o["passed"] as? Bool == true, "\(o["failures"] ?? "")")
        if expected == "f32" {
            #expect(try Self.tensors(o).allSatisfy { $0["status"] as? String == "identical" }, "\(file)")
        }
    }

    @Test func perturbedTensorFailsNamingIt() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = try Self.modifiedCopy(in: dir) { Self.perturb(&$0, by: 0.5) }
        let r = try CommandTests.run(["verify", Self.tiny, bad, "--tokenizer", Self.tokenizer])
        #expect(r.exited && r.status == 1, "status \(r.status): \(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last?.hasPrefix("FAILED: \(Self.perturbed) max abs diff 0.5 > ") == true, "\(r.stdout)")
        #expect(lines.contains { $0.hasPrefix(Self.perturbed) && $0.hasSuffix("FAIL") }, "\(r.stdout)")
        let o = try Self.verifyJSON([Self.tiny, bad, "--tokenizer", Self.tokenizer], status: 1)
        #expect(o["passed"] as? Bool == false)
        for row in try Self.tensors(o) {
            let name = row["name"] as? String
            #expect(row["status"] as? String == (name == Self.perturbed ? "differs" : "identical"), "\(row)")
            if name == Self.perturbed {
                expectClose(try CLIGolden.double(row["max_abs_diff"]), 0.5, rtol: 1e-6, "max abs diff")
                #expect((row["worst"] as? [String: Any])?["index"] as? Int == 3 * 96 + 5)
            }
        }
    }

    /// One element 0.2% off, then the tensor rounded to f16: f16 rounding accounts for 2⁻¹¹ ≈ 0.05% at most, so it fails.
    @Test func smallChangeOutsideF16RoundingFails() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let changed = try Self.modifiedCopy(in: dir) { dict in
            guard let t = dict[Self.perturbed] else { return }
            var values = t.floats()
            values[3 * 96 + 5] *= 1.002
            dict[Self.perturbed] = Tensor(floats: values, shape: t.shape).converted(to: .f16)
        }
        let o = try Self.verifyJSON([Self.tiny, changed, "--tokenizer", Self.tokenizer], status: 1)
        let failures = try #require(o["failures"] as? [String])
        #expect(failures.first?.hasPrefix(Self.perturbed) == true, "\(failures)")
        let row = try #require(try Self.tensors(o).first { $0["name"] as? String == Self.perturbed })
        #expect(row["status"] as? String == "differs" && row["stored_type_b"] as? String == "F16")
    }

    @Test func missingTensorIsReported() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let incomplete = try Self.modifiedCopy(in: dir) { _ = $0.remove(Self.perturbed) }
        let o = try Self.verifyJSON([Self.tiny, incomplete, "--tokenizer", Self.tokenizer], status: 1)
        let row = try #require(try Self.tensors(o).first { $0["name"] as? String == Self.perturbed })
        #expect(row["status"] as? String == "missing_in_b" && row["stored_type_b"] is NSNull, "\(row)")
        #expect(o["forward"] is NSNull)
        #expect((o["forward_skipped"] as? String)?.contains("B does not load") == true)
        #expect((o["failures"] as? [String])?.first == "\(Self.perturbed) missing in B")
        // Swapped, it is missing in A.
        let swapped = try Self.verifyJSON([incomplete, Self.tiny, "--tokenizer", Self.tokenizer], status: 1)
        #expect(try Self.tensors(swapped).contains { $0["name"] as? String == Self.perturbed && $0["status"] as? String == "missing_in_a" })
    }

    @Test func referencePassesForTheModelAndFailsForAPerturbedOne() throws {
        let o = try Self.verifyJSON([Self.tiny, "--reference", Self.reference, "--tokenizer", Self.tokenizer], status: 0)
        #expect(o["passed"] as? Bool == true && o["ids_equal"] as? Bool == true, "\(o["failures"] ?? "")")
        #expect(o["torch"] as? String == "2.13.0+cpu" && o["transformers"] as? String == "4.57.6")
        let forward = try #require(o["forward"] as? [String: Any])
        // Measured 1.1e-6 against PyTorch; the F32 tolerance is 1e-5 + 1e-5·|x|.
        #expect(try CLIGolden.double(forward["max_abs_logit_diff"]) < 1e-5)
        #expect(forward["greedy_equal"] as? Bool == true)

        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = try Self.modifiedCopy(in: dir) { Self.perturb(&$0, by: 0.05) }
        let r = try CommandTests.run(["verify", bad, "--reference", Self.reference, "--tokenizer", Self.tokenizer])
        #expect(r.exited && r.status == 1, "status \(r.status): \(r.stderr)")
        #expect(r.stdout.split(separator: "\n").last?.hasPrefix("FAILED: logits max abs diff") == true, "\(r.stdout)")
    }

    @Test func jsonHasStableKeys() throws {
        let o = try Self.verifyJSON([Self.tiny, Self.tiny, "--tokenizer", Self.tokenizer], status: 0)
        #expect(Set(o.keys) == ["a", "b", "precision", "config_differences", "tensors", "forward", "forward_skipped", "failures",
                                "passed", "verdict"])
        #expect(Set((o["a"] as? [String: Any] ?? [:]).keys) == ["path", "weights", "format", "adapter", "stored_types", "load_error"])
        let row = try #require(try Self.tensors(o).first)
        #expect(Set(row.keys) == ["name", "status", "stored_type_a", "stored_type_b", "shape_a", "shape_b", "max_abs_diff",
                                  "max_rel_diff", "bit_identical", "tolerance", "worst"])
        let forward = try #require(o["forward"] as? [String: Any])
        #expect(Set(forward.keys) == ["prompt", "ids", "loss_a", "loss_b", "loss_diff", "loss_allowed", "max_abs_logit_diff",
                                      "max_rel_logit_diff", "worst_logit", "greedy_a", "greedy_b", "greedy_equal", "tolerance", "failures"])
    }

    @Test func inputProblemsAreOneErrorLine() throws {
        // A folder with weights and config but no tokenizer files.
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Self.tiny + "/" + name, toPath: dir + "/" + name)
        }
        try ErrorLineTests.expectErrorLine(["verify", dir, dir],
                                           "--tokenizer: no tokenizer files (vocab.json + merges.txt, or tokenizer.json) in '\(dir)' "
                                           + "or '\(dir)'; name a folder with --tokenizer")
        try ErrorLineTests.expectErrorLine(["verify", Self.tiny, Self.tiny, "--tokenizer", Self.tokenizer, "--prompt", "Harry"],
                                           "--prompt: 'Harry' is 1 token; the loss needs at least 2")
        try ErrorLineTests.expectErrorLine(["verify", Self.tiny], "<b>: required argument missing (or give --reference)")
        try ErrorLineTests.expectErrorLine(["verify", Self.tiny, Self.tiny, "--reference", Self.reference],
                                           "--reference: checks A against PyTorch; give B or --reference, not both")
        try ErrorLineTests.expectErrorLine(["verify", Self.tiny, "--reference", Self.tiny + "/config.json", "--tokenizer", Self.tokenizer],
                                           "\(Self.tiny)/config.json: not a reference file from scripts/reference.py: missing key 'format'")
        try ErrorLineTests.expectErrorLine(["verify", Self.micro, Self.micro, "--tokenizer", Self.tokenizer],
                                           "\(Self.micro)/model.safetensors: the prompt does not fit this model: token id 18308 at index 0 "
                                           + "outside vocabulary of 1000")
    }
}
