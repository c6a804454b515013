import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

@Suite struct TorchCheckpointReaderTests {
    @Test(arguments: [
        ("pytorch_model.bin", CheckpointFormat.pytorchZip, ""),
        ("pytorch_model_legacy.bin", .pytorchLegacy, ""),
        ("pytorch_model.fp16.bin", .pytorchZip, ""),
        ("hub_style.safetensors", .safetensors, "transformer."),
        ("hub_style_legacy.bin", .pytorchLegacy, "transformer."),
    ])
    func microModelMatchesGoldens(file: String, format: CheckpointFormat, prefix: String) throws {
        let path = Fixtures.path("micro-gpt2/" + file)
        #expect(try CheckpointFormat.detect(path: path) == format)
        let dict = try CheckpointReader.read(path: path)
        let params = try CheckpointFixtures.microParams()
        var expectedNames = Set<String>()
        for (name, stats) in params {
            guard name.hasPrefix(prefix) else { continue }
            let stored = String(name.dropFirst(prefix.count))
            if prefix != "" && stored == "lm_head.weight" { continue } // hub-style files hold no lm_head
            expectedNames.insert(stored)
            let t = try #require(dict[stored], "\(file): missing \(stored)")
            try expectMatchesGolden(t, stats, "\(file) \(stored)")
        }
        // lm_head.weight (tied, absent from the goldens' params) equals wte; hub-style files have no lm_head but
        // hold the causal-mask buffers. Nothing else may appear.
        var extra = Set(dict.names).subtracting(expectedNames)
        if prefix == "" {
            let head = try #require(dict["lm_head.weight"]), wte = try #require(dict["transformer.wte.weight"])
            #expect(head.isBitwiseEqual(to: wte))
            extra.remove("lm_head.weight")
        }
        #expect(extra.allSatisfy { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") }, "\(file): unexpected \(extra)")
        if prefix != "" { #expect(extra.count == 4, "\(file): \(extra)") }
        #expect(dict.count == expectedNames.count + extra.count + (prefix == "" ? 1 : 0))
    }

    @Test(arguments: ["pytorch_model.bin", "pytorch_model_legacy.bin"])
    func tiedWeightsShareStorage(file: String) throws {
        let dict = try TorchCheckpointReader.read(path: Fixtures.path("micro-gpt2/" + file))
        let head = try #require(dict["lm_head.weight"]), wte = try #require(dict["transformer.wte.weight"])
        #expect(head.sharesBytes(with: wte))
        #expect(head.isMapped, "stored entries are views of the mapping")
        let wpe = try #require(dict["transformer.wpe.weight"])
        #expect(!wpe.sharesBytes(with: wte))
    }

    @Test(arguments: ["noncontiguous.pt", "noncontiguous_legacy.pt"])
    func stridedAndOffsetTensors(file: String) throws {
        let dict = try CheckpointReader.read(path: Fixtures.path("torch/" + file))
        let t = try #require(dict["t"]), row = try #require(dict["row"]), h = try #require(dict["h"])
        #expect(t.shape == [4, 3])
        #expect(t.floats() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
        #expect(!t.isMapped, "a transposed tensor is materialised")
        #expect(row.shape == [4])
        #expect(row.floats() == [4, 5, 6, 7])
        // Zip data is 64-byte aligned, so an offset view stays a view; the legacy fixture's data is not 4-byte
        // aligned, so its storage is copied. Either way the floats are aligned.
        #expect(row.isMapped == (file == "noncontiguous.pt"))
        #expect(row.withUnsafeBytes { Int(bitPattern: $0.baseAddress) % 4 } == 0)
        #expect(h.dtype == .f16)
        #expect(h.floats() == [0, 1, 2, 3, 4, 5])
    }

    @Test func wrapperDictsAndParametersAreUnwrapped() throws {
        let wrapped = try TorchCheckpointReader.read(path: Fixtures.path("torch/wrapped.pt"))
        #expect(wrapped.names == ["weight", "bias"])
        #expect(wrapped["weight"]?.shape == [3, 2])
        #expect(wrapped["weight"]?.floats() == [0, 1, 2, 3, 4, 5])
        #expect(wrapped["bias"]?.floats() == [-1, 0, 1])
        let parameter = try TorchCheckpointReader.read(path: Fixtures.path("torch/parameter.pt"))
        #expect(parameter["p"]?.floats() == [0, 1, 2])
    }

    @Test func deflatedEntriesAreInflated() throws {
        let dict = try TorchCheckpointReader.read(path: Fixtures.path("torch/deflated.pt"))
        let a = try #require(dict["a"])
        #expect(a.floats() == (0 ..< 64).map(Float.init))
        #expect(!a.isMapped)
    }

    @Test func zipArchiveParsesTorchZip64Records() throws {
        let archive = try ZipArchive(path: Fixtures.path("micro-gpt2/pytorch_model.bin"))
        #expect(archive.entries.count == 34)
        #expect(archive.entries.allSatisfy { $0.dataOffset % 64 == 0 })
        let order = try archive.contents(named: "pytorch_model/byteorder")
        #expect(order.array == Array("little".utf8))
    }

    @Test func detectsFormatsByMagic() throws {
        #expect(try CheckpointFormat.detect(path: Fixtures.path("micro-gpt2/model.safetensors")) == .safetensors)
        #expect(try CheckpointFormat.detect(path: Fixtures.path("micro-gpt2/tf_model.h5")) == .kerasHDF5)
        #expect(CheckpointFormat.detect(Array("hello world, not a model".utf8)) == nil)
    }
}
