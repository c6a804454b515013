import Foundation
import Tensors

/// A checkpoint split into shards, described by `model.safetensors.index.json` or
/// `pytorch_model.bin.index.json` (`{"metadata": …, "weight_map": {tensor name: shard file}}`).
///
/// Before returning, every shard named in the map must exist inside the folder (no absolute paths, no `..`),
/// every listed tensor must be in its shard, and no tensor may appear in two shards or be left unlisted.
public enum ShardedCheckpoint {
    /// Index file names, in the order they are looked for.
    public static let indexNames = ["model.safetensors.index.json", "pytorch_model.bin.index.json"]

    /// The index file inside `folder`, if there is one.
    public static func indexPath(inFolder folder: String) -> String? {
        indexNames.map { folder + "/" + $0 }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Reads the sharded checkpoint in `folder`.
    public static func read(folder: String) throws -> StateDict {
        guard let index = indexPath(inFolder: folder) else { throw CheckpointError.noIndex(folder: folder) }
        return try read(indexPath: index)
    }

    /// Parses an index and returns its weight map (tensor name → shard file name), validated for shape only.
    public static func weightMap(indexPath: String) throws -> [String: String] {
        let data: Data
        do { data = Data(try InputFile.readBytes(indexPath, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
            throw CheckpointError.cannotOpen(path: indexPath, reason: error.reason)
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let top = object as? [String: Any] else {
            throw CheckpointError.invalidIndex(path: indexPath, reason: "not a JSON object")
        }
        guard let raw = top["weight_map"] as? [String: Any] else {
            throw CheckpointError.invalidIndex(path: indexPath, reason: "no weight_map object")
        }
        var map: [String: String] = [:]
        for (name, value) in raw {
            guard let shard = value as? String else {
                throw CheckpointError.invalidIndex(path: indexPath, reason: "shard of '\(name)' is not a string")
            }
            map[name] = shard
        }
        return map
    }

    /// The full path of `shard`, a name from the index at `indexPath`, after checking that it names an existing
    /// regular file inside the index's folder: relative, no empty, `.` or `..` component, and no symlink
    /// leading out of the folder. Readers and the stale-weights cleanup both go through this check, so a
    /// crafted index can neither read nor remove anything outside its folder.
    public static func shardPath(indexPath: String, shard: String) throws -> String {
        let folder = (indexPath as NSString).deletingLastPathComponent
        let root = URL(fileURLWithPath: folder.isEmpty ? "." : folder).standardizedFileURL.resolvingSymlinksInPath().path
        let parts = shard.split(separator: "/", omittingEmptySubsequences: false)
        guard !shard.isEmpty, !shard.hasPrefix("/"), !parts.contains(".."), !parts.contains("."), !parts.contains(""),
              !shard.utf8.contains(0) else {
            throw CheckpointError.shardOutsideFolder(path: indexPath, shard: shard)
        }
        let full = URL(fileURLWithPath: root + "/" + shard).standardizedFileURL.resolvingSymlinksInPath().path
        guard full.hasPrefix(root == "/" ? "/" : root + "/"), full != root else {
            throw CheckpointError.shardOutsideFolder(path: indexPath, shard: shard)
        }
        guard InputFile.isRegularFile(full) else { throw CheckpointError.missingShard(path: indexPath, shard: shard) }
        return full
    }

    /// Reads the shards listed by the index at `indexPath` (shard names are relative to its folder).
    public static func read(indexPath: String) throws -> StateDict {
        let map = try weightMap(indexPath: indexPath)
        let shards = Set(map.values).sorted()
        // Validate every shard path before reading any.
        var shardPaths: [String: String] = [:]
        for shard in shards { shardPaths[shard] = try shardPath(indexPath: indexPath, shard: shard) }
        var out = StateDict()
        var owner: [String: String] = [:]
        for shard in shards {
            guard let full = shardPaths[shard] else { continue }
            let dict = try CheckpointReader.read(path: full)
            for (name, tensor) in dict {
                if let previous = owner[name] {
                    throw CheckpointError.duplicateTensor(path: indexPath, tensor: name, shards: [previous, shard])
                }
                guard map[name] != nil else { throw CheckpointError.unlistedTensor(path: indexPath, tensor: name, shard: shard) }
                owner[name] = shard
                out[name] = tensor
            }
        }
        for (name, shard) in map.sorted(by: { $0.key < $1.key }) where owner[name] != shard {
            throw CheckpointError.tensorMissingFromShard(path: indexPath, tensor: name, shard: shard)
        }
        return out
    }
}
