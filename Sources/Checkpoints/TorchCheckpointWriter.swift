import Tensors

/// Writes a state dict as a PyTorch zip checkpoint that `torch.load(path, weights_only=True)` loads.
///
/// Layout as `torch.save` writes it: `<stem>/data.pkl` (protocol 2, an `OrderedDict` of
/// `_rebuild_tensor_v2` calls whose persistent ids name storages), `<stem>/data/<key>` (raw little-endian
/// bytes, 64-byte aligned), `byteorder`, `version`. Tensors that share bytes (`sharesBytes`) are written
/// once as one storage, so tied weights stay tied. The file is replaced atomically.
public enum TorchCheckpointWriter {
    /// Writes `dict` to `path`. The archive's folder is `archiveName`, by default the file's stem.
    public static func write(_ dict: StateDict, to path: String, archiveName: String? = nil) throws(TorchArchiveError) {
        let folder = archiveName ?? defaultArchiveName(for: path)
        let file: AtomicFileWriter
        do { file = try AtomicFileWriter(path: path) } catch { throw .writeFailed(path: path, reason: error.reason) }
        do {
            let (pickle, storages) = dataPickle(dict)
            var zip = ZipWriter(file: file)
            try zip.add(name: folder + "/data.pkl", bytes: pickle)
            try zip.add(name: folder + "/.format_version", bytes: Array("1".utf8))
            try zip.add(name: folder + "/.storage_alignment", bytes: Array("64".utf8))
            try zip.add(name: folder + "/byteorder", bytes: Array("little".utf8))
            for (key, tensor) in storages {
                let result = tensor.withUnsafeBytes { raw in
                    Result { () throws(FileWriteFailure) in try zip.add(name: folder + "/data/" + key, bytes: raw) }
                }
                try result.get()
            }
            try zip.add(name: folder + "/version", bytes: Array("3\n".utf8))
            try zip.finish()
            try file.commit()
        } catch {
            file.abandon()
            throw .writeFailed(path: path, reason: error.reason)
        }
    }

    /// The file name without folders and extension, restricted to characters torch accepts in archive names.
    static func defaultArchiveName(for path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? "archive"
        if let dot = name.lastIndex(of: "."), dot != name.startIndex { name = String(name[..<dot]) }
        let cleaned = String(name.unicodeScalars.map { s -> Character in
            (s.isASCII && (s.properties.isAlphabetic || ("0" ... "9").contains(s) || s == "_" || s == "-" || s == ".")) ? Character(s) : "_"
        })
        return cleaned.isEmpty ? "archive" : cleaned
    }

    static func storageTypeName(_ dtype: DType) -> String {
        switch dtype {
        case .f32: return "FloatStorage"
        case .f16: return "HalfStorage"
        case .bf16: return "BFloat16Storage"
        case .f64: return "DoubleStorage"
        case .i64: return "LongStorage"
        case .i32: return "IntStorage"
        case .i16: return "ShortStorage"
        case .i8: return "CharStorage"
        case .u8: return "ByteStorage"
        case .bool: return "BoolStorage"
        }
    }

    /// The `data.pkl` bytes and the storages to write (key and the tensor whose bytes it holds).
    static func dataPickle(_ dict: StateDict) -> (pickle: [UInt8], storages: [(key: String, tensor: Tensor)]) {
        var storages: [(key: String, tensor: Tensor)] = []
        // Tensors viewing the same bytes of the same storage (`sharesBytes`) map to one key.
        struct Region: Hashable { var storage: ObjectIdentifier; var offset: Int; var count: Int; var dtype: DType }
        var keys: [Region: String] = [:]
        var p = PickleBuilder()
        p.bytes += [0x80, 0x02]                                   // PROTO 2
        p.global("collections", "OrderedDict")
        p.bytes += [0x29, 0x52]                                   // EMPTY_TUPLE, REDUCE
        var pending = 0
        p.bytes.append(0x28)                                      // MARK
        for (name, tensor) in dict {
            let region = Region(storage: ObjectIdentifier(tensor.storage), offset: tensor.byteOffset, count: tensor.byteCount, dtype: tensor.dtype)
            let key: String
            if let shared = keys[region] {
                key = shared
            } else {
                key = String(storages.count)
                keys[region] = key
                storages.append((key, tensor))
            }
            p.string(name)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.bytes.append(0x28)                                  // MARK (arguments)
            p.bytes.append(0x28)                                  // MARK (persistent id)
            p.string("storage")
            p.global("torch", storageTypeName(tensor.dtype))
            p.string(key)
            p.string("cpu")
            p.int(tensor.elementCount)
            p.bytes += [0x74, 0x51]                               // TUPLE, BINPERSID
            p.int(0)                                              // storage offset
            p.tuple(tensor.shape.dims)
            p.tuple(tensor.shape.contiguousStrides)
            p.bytes.append(0x89)                                  // NEWFALSE (requires_grad)
            p.global("collections", "OrderedDict")
            p.bytes += [0x29, 0x52]                               // backward hooks: OrderedDict()
            p.bytes += [0x74, 0x52]                               // TUPLE, REDUCE
            pending += 1
            if pending == 1000 { p.bytes += [0x75, 0x28]; pending = 0 } // SETITEMS, MARK
        }
        p.bytes += [0x75, 0x2E]                                   // SETITEMS, STOP
        return (p.bytes, storages)
    }
}

/// Emits protocol-2 pickle opcodes.
struct PickleBuilder {
    var bytes: [UInt8] = []

    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array(module.utf8); bytes.append(0x0A)
        bytes += Array(name.utf8); bytes.append(0x0A)
    }

    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)
        bytes.appendLittleEndian32(UInt32(u.count))
        bytes += u
    }

    mutating func int(_ v: Int) {
        switch v {
        case 0 ... 0xFF: bytes += [0x4B, UInt8(v)]
        case 0x100 ... 0xFFFF: bytes.append(0x4D); bytes.appendLittleEndian16(v)
        case Int(Int32.min) ... Int(Int32.max): bytes.append(0x4A); bytes.appendLittleEndian32(UInt32(bitPattern: Int32(v)))
        default: bytes += [0x8A, 8]; bytes.appendLittleEndian64(v)
        }
    }

    mutating func tuple(_ values: [Int]) {
        bytes.append(0x28)
        for v in values { int(v) }
        bytes.append(0x74)
    }
}
