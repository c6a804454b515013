import Tensors

/// Writes the safetensors format as the reference library (`save_file`, `save_pretrained`) writes it:
/// tensors sorted by dtype alignment (descending) then name, `__metadata__` first, compact JSON, header
/// padded with spaces to a multiple of 8, data packed without gaps. The file is replaced atomically.
///
/// Every name is written, even when tensors share bytes; callers that follow `save_pretrained` drop tied
/// duplicates (such as `lm_head.weight`) first. Convert dtypes beforehand with `StateDict.converted(to:)`.
public enum SafetensorsWriter {
    /// Writes `dict` to `path`. `metadata` defaults to the dict's metadata, or `{"format": "pt"}` when it has none;
    /// pass `[:]` to write no `__metadata__` entry.
    public static func write(_ dict: StateDict, to path: String, metadata: [String: String]? = nil) throws(SafetensorsError) {
        let file: AtomicFileWriter
        do { file = try AtomicFileWriter(path: path) } catch { throw .writeFailed(path: path, reason: error.reason) }
        do {
            try serialize(dict, metadata: metadata) { bytes throws(FileWriteFailure) in try file.write(bytes) }
            try file.commit()
        } catch {
            file.abandon()
            throw .writeFailed(path: path, reason: error.reason)
        }
    }

    /// Writes `dict` in the same layout to the open file or pipe `descriptor`, from its current position,
    /// unbuffered and without syncing (the libhdf5 helper's channel).
    static func write(_ dict: StateDict, metadata: [String: String]? = nil, toDescriptor descriptor: Int32) throws(FileWriteFailure) {
        try serialize(dict, metadata: metadata) { bytes throws(FileWriteFailure) in try writeAll(descriptor, bytes) }
    }

    /// Hands the length prefix, the header and every tensor's bytes, in order, to `emit`.
    private static func serialize(_ dict: StateDict, metadata: [String: String]?,
                                  _ emit: (UnsafeRawBufferPointer) throws(FileWriteFailure) -> Void) throws(FileWriteFailure) {
        let (header, order) = serializedHeader(dict, metadata: metadata)
        var prefix: [UInt8] = []
        prefix.appendLittleEndian64(header.count)
        prefix += header
        try prefix.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try emit(raw) } }.get()
        for name in order {
            guard let t = dict[name] else { continue }
            try t.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try emit(raw) } }.get()
        }
    }

    /// The padded JSON header and the names in data order.
    public static func serializedHeader(_ dict: StateDict, metadata: [String: String]? = nil) -> (header: [UInt8], order: [String]) {
        let meta = metadata ?? (dict.metadata.isEmpty ? ["format": "pt"] : dict.metadata)
        let order = dict.names.sorted { a, b in
            let ra = alignmentRank(dict[a]?.dtype), rb = alignmentRank(dict[b]?.dtype)
            if ra != rb { return ra > rb }
            return a.utf8.lexicographicallyPrecedes(b.utf8)
        }
        var json = "{"
        var first = true
        if !meta.isEmpty {
            json += "\"__metadata__\":{"
            json += meta.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                .map { jsonString($0) + ":" + jsonString(meta[$0] ?? "") }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for name in order {
            guard let t = dict[name] else { continue }
            if !first { json += "," }
            first = false
            let end = offset + t.byteCount
            json += jsonString(name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
                + t.shape.dims.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var bytes = Array(json.utf8)
        bytes += [UInt8](repeating: 0x20, count: (8 - bytes.count % 8) % 8)
        return (bytes, order)
    }

    /// The position of `dtype` in safetensors' `Dtype` enum, which is declared in increasing alignment order.
    static func alignmentRank(_ dtype: DType?) -> Int {
        switch dtype {
        case .bool?: return 0
        case .u8?: return 4
        case .i8?: return 5
        case .i16?: return 11
        case .f16?: return 13
        case .bf16?: return 14
        case .i32?: return 15
        case .f32?: return 17
        case .f64?: return 19
        case .i64?: return 20
        case nil: return -1
        }
    }

    /// A JSON string literal escaped as serde_json escapes it.
    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
