/// Why a checkpoint could not be identified, or a sharded checkpoint folder was refused.
public enum CheckpointError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file could not be opened (the system's reason).
    case cannotOpen(path: String, reason: String)
    /// The magic bytes match no supported format.
    case unrecognizedFormat(path: String)
    /// The format is known but has no reader in this build.
    case unsupportedFormat(path: String, format: String)
    /// A folder without `model.safetensors.index.json` or `pytorch_model.bin.index.json`.
    case noIndex(folder: String)
    /// The index file is not a JSON object with a `weight_map` of tensor name → shard file.
    case invalidIndex(path: String, reason: String)
    /// A shard the index lists is not a regular file in the folder.
    case missingShard(path: String, shard: String)
    /// A shard named with an absolute path or `..`, or resolving outside the folder.
    case shardOutsideFolder(path: String, shard: String)
    /// The index maps `tensor` to `shard`, which does not hold it.
    case tensorMissingFromShard(path: String, tensor: String, shard: String)
    /// A tensor stored in more than one shard (the shards named).
    case duplicateTensor(path: String, tensor: String, shards: [String])
    /// A shard holds a tensor the index does not list.
    case unlistedTensor(path: String, tensor: String, shard: String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .cannotOpen(p, r): return "\(p): cannot open: \(r)"
        case let .unrecognizedFormat(p): return "\(p): unrecognized checkpoint format"
        case let .unsupportedFormat(p, f): return "\(p): \(f) checkpoints are not supported here"
        case let .noIndex(f): return "\(f): no model.safetensors.index.json or pytorch_model.bin.index.json"
        case let .invalidIndex(p, r): return "\(p): invalid index: \(r)"
        case let .missingShard(p, s): return "\(p): shard '\(s)' does not exist"
        case let .shardOutsideFolder(p, s): return "\(p): shard '\(s)' lies outside the checkpoint folder"
        case let .tensorMissingFromShard(p, t, s): return "\(p): tensor '\(t)' is not in shard '\(s)'"
        case let .duplicateTensor(p, t, s): return "\(p): tensor '\(t)' appears in more than one shard: \(s.joined(separator: ", "))"
        case let .unlistedTensor(p, t, s): return "\(p): shard '\(s)' holds tensor '\(t)', which the weight_map does not list"
        }
    }
}
