import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Every micro-gpt2 weight file, every export format and dtype, through `ModelIO`: the parameters must come
/// back bit-identical (F32) or equal to the F32 values rounded once (F16/BF16), and each file must reproduce
/// the reference loss and logits.
@Suite struct ConversionMatrixTests {
    static let folder = "micro-gpt2"
    static var configPath: String { Fixtures.path(folder + "/config.json") }

    /// The F32 parameters of the reference `model.safetensors`.
    static func reference() throws -> GPT2Parameters {
        try ModelIO.loadParameters(ModelLocation(path: Fixtures.path(folder + "/model.safetensors")))
    }

    static func load(_ path: String) throws -> GPT2Parameters {
        try ModelIO.loadParameters(ModelLocation(path: path, configPath: configPath))
    }

    /// The reference parameters rounded to `dtype` (through `Tensor.converted(to:)`) and widened back to F32.
    static func rounded(_ p: GPT2Parameters, to dtype: DType) throws -> GPT2Parameters {
        let dict = p.stateDict(format: .huggingFace).converted(to: dtype)
        return try GPT2Parameters(config: p.config, stateDict: dict)
    }

    static let inputFiles = ["model.safetensors", "pytorch_model.bin", "pytorch_model_legacy.bin",
                             "hub_style.safetensors", "hub_style_legacy.bin", "tf_model.h5"]

    @Test(arguments: inputFiles)
    func everyInputFormatLoadsBitIdentical(file: String) throws {
        let loaded = try Self.load(Fixtures.path(Self.folder + "/" + file))
        CLIGolden.expectBitIdentical(loaded, try Self.reference(), file)
    }

    @Test(arguments: [("model.fp16.safetensors", DType.f16), ("pytorch_model.fp16.bin", .f16), ("model.bf16.safetensors", .bf16)])
    func halfPrecisionFilesEqualRoundedReference(file: String, dtype: DType) throws {
        let dict = try CheckpointReader.read(path: Fixtures.path(Self.folder + "/" + file))
        for (name, t) in dict { #expect(t.dtype == dtype, "\(file): \(name) is \(t.dtype)") }
        // torch's .half()/.bfloat16() round to nearest even, as Tensor.converted(to:) does.
        CLIGolden.expectBitIdentical(try Self.load(Fixtures.path(Self.folder + "/" + file)),
                                     try Self.rounded(try Self.reference(), to: dtype), file)
    }

    @Test(arguments: ExportFormat.allCases)
    func exportReadBackIsBitIdentical(format: ExportFormat) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = try Self.reference()
        // A bare weights file, read with the reference config.
        let file = dir + "/weights." + (format == .pytorch ? "bin" : format == .h5 ? "h5" : "safetensors")
        try ModelIO.writeWeights(reference, to: file, format: format)
        CLIGolden.expectBitIdentical(try Self.load(file), reference, "\(format) file")
        // A complete folder, resolved and loaded like a downloaded model.
        let out = dir + "/folder"
        let written = try ModelIO.writeFolder(reference, to: out, format: format)
        #expect(written.contains(out + "/" + format.weightsFileName))
        #expect(written.contains(out + "/config.json"))
        let (model, location) = try ModelIO.loadModel(path: out, trainsBase: true)
        #expect(location.weightsPath == out + "/" + format.weightsFileName)
        #expect(model.config.vocabularySize == reference.config.vocabularySize)
        CLIGolden.expectBitIdentical(model.parameters, reference, "\(format) folder")
    }

    @Test func exportedSafetensorsFolderEqualsSavePretrainedBytes() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelIO.writeFolder(try Self.reference(), to: dir, format: .safetensors)
        let mine = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors"))
        let theirs = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(Self.folder + "/model.safetensors")))
        #expect(mine.count == theirs.count)
        if let i = zip(mine, theirs).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("exported model.safetensors differs from save_pretrained's at byte \(i)")
        }
    }

    @Test func chainSafetensorsPytorchH5SafetensorsIsBitIdentical() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = try Self.reference()
        var current = reference
        for (i, format) in [ExportFormat.pytorch, .h5, .safetensors].enumerated() {
            let path = dir + "/step\(i)." + (format == .pytorch ? "bin" : format == .h5 ? "h5" : "safetensors")
            try ModelIO.writeWeights(current, to: path, format: format)
            current = try Self.load(path)
            CLIGolden.expectBitIdentical(current, reference, "chain step \(i + 1) (\(format))")
        }
        // After the round trip the safetensors file is again byte for byte what save_pretrained wrote.
        let last = try Data(contentsOf: URL(fileURLWithPath: dir + "/step2.safetensors"))
        #expect(last == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(Self.folder + "/model.safetensors")))))
    }

    // HDF5 has no bfloat16 type, so h5 is exported in F32 and F16 only.
    @Test(arguments: [(ExportFormat.safetensors, DType.f16), (.safetensors, .bf16), (.pytorch, .f16), (.pytorch, .bf16), (.h5, .f16)])
    func halfPrecisionExportEqualsRoundedValues(format: ExportFormat, dtype: DType) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = try Self.reference()
        let out = dir + "/out"
        try ModelIO.writeFolder(reference, to: out, format: format, dtype: dtype)
        let location = try ModelLocation(path: out)
        let dict = try ModelIO.readStateDict(location)
        for (name, t) in dict { #expect(t.dtype == dtype, "\(format) \(dtype): \(name) is \(t.dtype)") }
        CLIGolden.expectBitIdentical(try ModelIO.loadParameters(location), try Self.rounded(reference, to: dtype), "\(format) \(dtype)")
        // The converted tensors themselves: bytes equal Tensor.converted(to:) of the F32 export.
        let f32 = ModelIO.exportStateDict(reference, format: format, dtype: .f32)
        if format != .h5 {
            for (name, t) in f32 {
                let back = try #require(dict[name], "\(format) \(dtype): \(name) missing")
                #expect(back.isBitwiseEqual(to: t.converted(to: dtype)), "\(format) \(dtype): \(name) bytes")
            }
        }
    }

    /// (weights file, goldens key): every file format through `GPT2Model.forward`.
    static let logitCases: [(String, String)] = inputFiles.map { ($0, "logits") } + [
        ("model.fp16.safetensors", "logits_from_fp16_weights"), ("pytorch_model.fp16.bin", "logits_from_fp16_weights"),
        ("model.bf16.safetensors", "logits_from_bf16_weights"),
    ]

    @Test(arguments: logitCases)
    func lossAndLogitsFromEveryFile(file: String, key: String) throws {
        let g = try CLIGolden.micro()
        let (model, _) = try ModelIO.loadModel(path: Fixtures.path(Self.folder + "/" + file), trainsBase: true)
        let ids = try CLIGolden.ints(g["input_ids"]), labels = try CLIGolden.ints(g["labels"])
        let loss = try #require(try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: labels))
        if key == "logits" {
            // loss: rtol 1e-5 (reference README)
            expectClose(Double(loss), try CLIGolden.double(g["loss"]), rtol: 1e-5, "\(file) loss")
        }
        let golden = try #require(g[key] as? [[String: Any]])
        #expect(golden.count == ids.count)
        let V = model.config.vocabularySize
        for (t, gt) in golden.enumerated() {
            let row = model.logits(batch: 0, position: t).map(Double.init)
            // logits: rtol 1e-5 as the reference README states, atol 1e-5 for values near zero (STYLE table's atol).
            expectAllClose(Array(row.prefix(8)), try CLIGolden.doubles(gt["first8"]), rtol: 1e-5, atol: 1e-5, "\(file) t=\(t) first8")
            let maxValue = row.max() ?? 0
            let argmax = try #require(row.firstIndex(of: maxValue))
            #expect(argmax == (gt["argmax"] as? Int), "\(file) t=\(t) argmax")
            let lse = maxValue + log(row.reduce(0) { $0 + exp($1 - maxValue) })
            expectClose(lse, try CLIGolden.double(gt["logsumexp"]), rtol: 1e-5, "\(file) t=\(t) logsumexp")
            // A sum of V = \(V) float32 logits: summation order differs from torch's, atol 1e-3 as in GPT2GoldenTests.
            expectClose(row.reduce(0, +), try CLIGolden.double(gt["sum"]), rtol: 1e-5, atol: 1e-3, "\(file) t=\(t) sum (V \(V))")
        }
    }
}
