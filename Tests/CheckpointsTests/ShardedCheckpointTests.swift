import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

@Suite struct ShardedCheckpointTests {
    let dir: String
    let model: StateDict
    init() throws {
        dir = try Fixtures.temporaryDirectory()
        model = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/model.safetensors"))
    }

    /// Splits the micro model into a safetensors shard and a torch shard, and writes `index` (weight_map overrides applied).
    func writeShards(indexName: String = "model.safetensors.index.json", edit: (inout [String: String]) -> Void = { _ in }) throws -> [String: String] {
        var first = StateDict(), second = StateDict()
        var map: [String: String] = [:]
        for (i, (name, t)) in model.enumerated() {
            if i % 2 == 0 { first[name] = t; map[name] = "model-00001-of-00002.safetensors" } else { second[name] = t; map[name] = "shards/model-00002-of-00002.bin" }
        }
        try FileManager.default.createDirectory(atPath: dir + "/shards", withIntermediateDirectories: true)
        try SafetensorsWriter.write(first, to: dir + "/model-00001-of-00002.safetensors")
        try TorchCheckpointWriter.write(second, to: dir + "/shards/model-00002-of-00002.bin")
        edit(&map)
        let json = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 1], "weight_map": map])
        try json.write(to: URL(fileURLWithPath: dir + "/" + indexName))
        return map
    }

    @Test(arguments: ["model.safetensors.index.json", "pytorch_model.bin.index.json"])
    func readsShardsIntoOneStateDict(indexName: String) throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try writeShards(indexName: indexName)
        let dict = try ShardedCheckpoint.read(folder: dir)
        #expect(Set(dict.names) == Set(model.names))
        for (name, t) in model { #expect(dict[name].map { $0.isBitwiseEqual(to: t) } == true, "\(name)") }
    }

    @Test func refusesBadIndexes() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let index = dir + "/model.safetensors.index.json"
        _ = try writeShards { $0["transformer.wte.weight"] = "model-00003-of-00003.safetensors" }
        #expect(throws: CheckpointError.missingShard(path: index, shard: "model-00003-of-00003.safetensors")) { try ShardedCheckpoint.read(folder: dir) }
        _ = try writeShards { $0["transformer.wte.weight"] = "../outside.safetensors" }
        #expect(throws: CheckpointError.shardOutsideFolder(path: index, shard: "../outside.safetensors")) { try ShardedCheckpoint.read(folder: dir) }
        _ = try writeShards { $0["transformer.wte.weight"] = "/etc/passwd" }
        #expect(throws: CheckpointError.shardOutsideFolder(path: index, shard: "/etc/passwd")) { try ShardedCheckpoint.read(folder: dir) }
        _ = try writeShards { $0["not.a.tensor"] = "model-00001-of-00002.safetensors" }
        #expect(throws: CheckpointError.tensorMissingFromShard(path: index, tensor: "not.a.tensor", shard: "model-00001-of-00002.safetensors")) {
            try ShardedCheckpoint.read(folder: dir)
        }
        let map = try writeShards { $0.removeValue(forKey: "transformer.wpe.weight") }
        #expect(map["transformer.wpe.weight"] == nil)
        #expect(throws: CheckpointError.self) { try ShardedCheckpoint.read(folder: dir) }
        let empty = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: CheckpointError.noIndex(folder: empty)) { try ShardedCheckpoint.read(folder: empty) }
    }

    @Test func duplicateTensorAcrossShardsIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try writeShards()
        // Put one of the second shard's tensors into the first shard as well.
        var first = try SafetensorsReader.read(path: dir + "/model-00001-of-00002.safetensors")
        let second = try TorchCheckpointReader.read(path: dir + "/shards/model-00002-of-00002.bin")
        let name = try #require(second.names.first)
        first[name] = second[name]
        try SafetensorsWriter.write(first, to: dir + "/model-00001-of-00002.safetensors")
        #expect(throws: CheckpointError.duplicateTensor(path: dir + "/model.safetensors.index.json", tensor: name,
                                                        shards: ["model-00001-of-00002.safetensors", "shards/model-00002-of-00002.bin"])) {
            try ShardedCheckpoint.read(folder: dir)
        }
    }
}
