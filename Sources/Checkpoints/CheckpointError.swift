/// Why a checkpoint could not be identified, or a sharded checkpoint folder was refused.
public enum CheckpointError: Error, Sendable, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    /// The magic bytes match no supported format.
    case unrecognizedFormat(path: String)
    /// The format is known but has no reader in this build.
    case unsupportedFormat(path: String, format: String)
    case noIndex(folder: String)
    case invalidIndex(path: String, reason: String)
    case missingShard(path: String, shard: String)
    /// A shard named with an absolute path or `..`, or resolving outside the folder.
    case shardOutsideFolder(path: String, shard: String)
    case tensorMissingFromShard(path: String, tensor: String, shard: String)
    case duplicateTensor(path: String, tensor: String, shards: [String])
    case unlistedTensor(path: String, tensor: String, shard: String)

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
