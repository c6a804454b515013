import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

@Suite struct CheckpointWriterTests {
    static func expectBitIdentical(_ a: StateDict, _ b: StateDict, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.names == b.names, sourceLocation: sourceLocation)
        for (name, t) in a {
            guard let u = b[name] else { Issue.record("missing \(name)", sourceLocation: sourceLocation); continue }
            #expect(t.isBitwiseEqual(to: u), "\(name) differs", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: ["model.safetensors", "model.fp16.safetensors", "model.bf16.safetensors", "hub_style.safetensors"])
    func safetensorsBytesEqualReference(file: String) throws {
        let path = Fixtures.path("micro-gpt2/" + file)
        let dict = try SafetensorsReader.read(path: path)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out.safetensors"
        try SafetensorsWriter.write(dict, to: out)
        #expect(try CheckpointFixtures.bytes(out) == CheckpointFixtures.bytes(path))
        // Writing again replaces the file atomically and leaves no temporary behind.
        try SafetensorsWriter.write(dict, to: out)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.safetensors"])
    }

    @Test func safetensorsOrdersByAlignmentThenName() throws {
        var dict = StateDict()
        dict["b"] = Tensor(zeros: .f16, shape: [3])
        dict["a"] = Tensor(zeros: .u8, shape: [5])
        dict["c"] = Tensor(zeros: .i64, shape: [1])
        dict["B"] = Tensor(zeros: .f32, shape: [2])
        let (header, order) = SafetensorsWriter.serializedHeader(dict, metadata: [:])
        #expect(order == ["c", "B", "b", "a"])
        #expect(header.count % 8 == 0)
        let text = String(decoding: header, as: UTF8.self)
        #expect(text.hasPrefix(#"{"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"B":"#))
        #expect(SafetensorsWriter.jsonString("a\"\\\n\u{1}é") == #""a\"\\\n\u0001é""#)
    }

    @Test(arguments: [DType.f32, .f16, .bf16])
    func safetensorsRoundTrip(dtype: DType) throws {
        let dict = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/model.safetensors")).converted(to: dtype)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SafetensorsWriter.write(dict, to: dir + "/m.safetensors")
        let back = try SafetensorsReader.read(path: dir + "/m.safetensors")
        #expect(Set(back.names) == Set(dict.names))
        for (name, t) in dict { #expect(back[name].map { $0.isBitwiseEqual(to: t) } == true, "\(name)") }
    }

    @Test(arguments: [DType.f32, .f16, .bf16])
    func torchRoundTripKeepsTiedWeights(dtype: DType) throws {
        var dict = try TorchCheckpointReader.read(path: Fixtures.path("micro-gpt2/pytorch_model.bin"))
        if dtype != .f32 {
            dict = dict.converted(to: dtype)
            dict["lm_head.weight"] = dict["transformer.wte.weight"] // re-tie after conversion
        }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/pytorch_model.bin"
        try TorchCheckpointWriter.write(dict, to: out)
        #expect(try CheckpointFormat.detect(path: out) == .pytorchZip)
        let back = try TorchCheckpointReader.read(path: out)
        Self.expectBitIdentical(dict, back)
        let head = try #require(back["lm_head.weight"]), wte = try #require(back["transformer.wte.weight"])
        #expect(head.sharesBytes(with: wte))
        let archive = try ZipArchive(path: out)
        #expect(archive.entries.allSatisfy { $0.dataOffset % 64 == 0 })
        #expect(archive.entry(named: "pytorch_model/data/28") == nil, "28 storages for 29 tensors")
        #expect(try archive.contents(named: "pytorch_model/version").array == Array("3\n".utf8))
    }

    @Test func safetensorsTorchSafetensorsIsBitIdentical() throws {
        let original = Fixtures.path("micro-gpt2/model.safetensors")
        let dict = try SafetensorsReader.read(path: original)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TorchCheckpointWriter.write(dict, to: dir + "/m.bin")
        let viaTorch = try TorchCheckpointReader.read(path: dir + "/m.bin")
        Self.expectBitIdentical(dict, viaTorch)
        try SafetensorsWriter.write(viaTorch, to: dir + "/m.safetensors")
        #expect(try CheckpointFixtures.bytes(dir + "/m.safetensors") == CheckpointFixtures.bytes(original))
    }

    @Test func stridedTensorsRoundTripThroughTheWriter() throws {
        let dict = try TorchCheckpointReader.read(path: Fixtures.path("torch/noncontiguous.pt"))
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TorchCheckpointWriter.write(dict, to: dir + "/x.pt", archiveName: "x")
        let back = try TorchCheckpointReader.read(path: dir + "/x.pt")
        Self.expectBitIdentical(dict, back)
        #expect(try ZipArchive(path: dir + "/x.pt").entry(named: "x/data.pkl") != nil)
    }

    @Test func failedWriteLeavesTheOldFile() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: SafetensorsError.self) { try SafetensorsWriter.write(StateDict(), to: dir + "/missing/x.safetensors") }
        #expect(throws: TorchArchiveError.self) { try TorchCheckpointWriter.write(StateDict(), to: dir + "/missing/x.bin") }
    }
}
