import Foundation
import Tensors

/// Reads PyTorch checkpoints written by `torch.save`: the zip format (1.6 and later) and the legacy
/// pickle-stream format. The format is detected from the first bytes, not the file name.
///
/// Only the state-dict subset is accepted: a dict (or `OrderedDict`) of tensors rebuilt through
/// `torch._utils._rebuild_tensor_v2`, with globals resolved against `Unpickler.torchAllowList`. Contiguous
/// tensors in stored zip entries view the memory-mapped file; tensors that share a storage share bytes.
public enum TorchCheckpointReader {
    /// First bytes of the legacy format: `PROTO 2`, `LONG1` of 10 bytes holding the magic number 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Reads the checkpoint at `path` into a state dict with the names stored in the file.
    public static func read(path: String) throws(TorchArchiveError) -> StateDict {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch { throw .cannotOpen(path: path, reason: error.reason) }
        let bytes = storage.bytes
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try readZip(storage, path: path) }
        if bytes.starts(with: legacyMagic) { return try readLegacy(storage, path: path) }
        if bytes.count < legacyMagic.count { throw .truncated(path: path, what: "file header", offset: 0) }
        throw .unrecognizedFormat(path: path)
    }

    // MARK: Storages and tensors

    /// A typed storage: `elementCount` elements of `dtype` at `byteOffset` of `bytes`.
    struct Storage {
        var key: String
        var dtype: DType
        var elementCount: Int
        var bytes: ByteStorage
        var byteOffset: Int
    }

    /// `storage` itself when its first byte is aligned for its dtype, else an aligned owned copy (kernels may
    /// bind the bytes to `Float`; legacy files and foreign zips place data at arbitrary offsets).
    static func aligned(_ storage: Storage) -> Storage {
        guard let base = storage.bytes.baseAddress,
              Int(bitPattern: base + storage.byteOffset) % storage.dtype.byteSize != 0 else { return storage }
        return unalignedCopy(storage)
    }

    @inline(never)
    static func unalignedCopy(_ storage: Storage) -> Storage {
        let count = storage.elementCount * storage.dtype.byteSize
        let copy = ByteStorage(copying: UnsafeRawBufferPointer(rebasing: storage.bytes.bytes[storage.byteOffset ..< storage.byteOffset + count]))
        return Storage(key: storage.key, dtype: storage.dtype, elementCount: storage.elementCount, bytes: copy, byteOffset: 0)
    }

    /// Most dimensions a tensor may have (torch itself allows 64).
    static let maximumRank = 64

    /// Bytes that materialised (non-contiguous) copies may take across one file: at most `copyFactor` times the
    /// distinct storage bytes the file holds, so a few legitimate strided views load but thousands of views of
    /// one storage cannot multiply it.
    final class CopyBudget {
        static let copyFactor = 4
        /// Distinct storage bytes of the file.
        var limit = 0
        var used = 0
        var allowance: Int { limit > Int.max / Self.copyFactor ? Int.max : limit * Self.copyFactor }
    }

    static func dtype(ofStorageType value: PickleValue, path: String) throws(TorchArchiveError) -> DType {
        guard case let .global(module, name) = value else {
            throw .unexpectedObject(path: path, reason: "storage type is not a global")
        }
        let table: [String: DType] = [
            "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
            "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
            "ByteStorage": .u8, "BoolStorage": .bool,
            "float32": .f32, "float16": .f16, "bfloat16": .bf16, "float64": .f64, "int64": .i64,
            "int32": .i32, "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
        ]
        guard module == "torch", let d = table[name] else {
            throw .unsupportedDType(path: path, storageType: module + "." + name)
        }
        return d
    }

    /// Parses a persistent id `('storage', type, key, location, numel[, view_metadata])`.
    static func storageID(_ pid: PickleValue, path: String) throws(TorchArchiveError)
        -> (dtype: DType, key: String, elementCount: Int, view: (key: String, offset: Int, count: Int)?) {
        guard case let .tuple(t) = pid, t.count == 5 || t.count == 6, t[0].string == "storage" else {
            throw .unexpectedObject(path: path, reason: "persistent id is not a ('storage', type, key, location, numel) tuple")
        }
        let dtype = try dtype(ofStorageType: t[1], path: path)
        guard let key = t[2].string, let count = t[4].int, count >= 0 else {
            throw .unexpectedObject(path: path, reason: "persistent id has no string key or element count")
        }
        guard t[3].string.map({ $0.hasPrefix("cpu") || $0.hasPrefix("cuda") || $0 == "mps" || $0 == "meta" }) ?? false else {
            throw .unexpectedObject(path: path, reason: "storage '\(key)' has no location")
        }
        var view: (String, Int, Int)?
        if t.count == 6, case let .tuple(v) = t[5] {
            guard v.count == 3, let vk = v[0].string, let vo = v[1].int, let vc = v[2].int, vo >= 0, vc >= 0 else {
                throw .unexpectedObject(path: path, reason: "storage '\(key)' has invalid view metadata")
            }
            view = (vk, vo, vc)
        }
        return (dtype, key, count, view)
    }

    /// Turns the unpickled top-level object into a state dict, resolving persistent ids through `storage`.
    static func stateDict(from top: PickleValue, path: String, budget: CopyBudget,
                          storage: (PickleValue) throws(TorchArchiveError) -> Storage) throws(TorchArchiveError) -> StateDict {
        guard case var .dict(dict) = top else { throw .unexpectedObject(path: path, reason: "top-level object is not a dict") }
        // A {'state_dict': {...}} or {'model': {...}} wrapper around the tensors is unwrapped.
        if dict.entries.count == 1, case let .dict(inner) = dict.entries[0].value { dict = inner }
        var out = StateDict()
        for (key, value) in dict.entries {
            guard let name = key.string else { throw .unexpectedObject(path: path, reason: "state dict key is not a string") }
            guard name.utf8.count <= InputLimits.maximumTensorNameBytes else {
                throw .unexpectedObject(path: path, reason: "a state dict key of \(name.utf8.count) bytes (at most \(InputLimits.maximumTensorNameBytes) are accepted)")
            }
            guard !out.contains(name) else { throw .unexpectedObject(path: path, reason: "tensor '\(name)' appears twice") }
            out[name] = try tensor(value, name: name, path: path, budget: budget, storage: storage)
        }
        return out
    }

    static func tensor(_ value: PickleValue, name: String, path: String, budget: CopyBudget,
                       storage: (PickleValue) throws(TorchArchiveError) -> Storage) throws(TorchArchiveError) -> Tensor {
        guard case let .object(o) = value, o.module == "torch._utils" else {
            throw .unexpectedObject(path: path, reason: "value of '\(name)' is not a tensor")
        }
        switch o.name {
        case "_rebuild_parameter", "_rebuild_parameter_with_state":
            guard let data = o.arguments.first else { throw .unexpectedObject(path: path, reason: "parameter '\(name)' has no data") }
            return try tensor(data, name: name, path: path, budget: budget, storage: storage)
        case "_rebuild_tensor_v2":
            let a = o.arguments
            guard a.count >= 4, case let .persistent(pid) = a[0], let offset = a[1].int,
                  let size = a[2].elements, let stride = a[3].elements else {
                throw .unexpectedObject(path: path, reason: "tensor '\(name)': malformed _rebuild_tensor_v2 arguments")
            }
            // A memoised size list can be shared by every entry, so its length is bounded before it is walked.
            guard size.count <= maximumRank, stride.count <= maximumRank else {
                throw .invalidTensorGeometry(path: path, tensor: name, reason: "\(max(size.count, stride.count)) dimensions, more than \(maximumRank)")
            }
            var dims: [Int] = [], strides: [Int] = []
            for d in size { guard let v = d.int, v >= 0 else { throw .invalidTensorGeometry(path: path, tensor: name, reason: "invalid size \(size)") }; dims.append(v) }
            for s in stride { guard let v = s.int, v >= 0 else { throw .invalidTensorGeometry(path: path, tensor: name, reason: "invalid stride") }; strides.append(v) }
            guard dims.count == strides.count, offset >= 0 else {
                throw .invalidTensorGeometry(path: path, tensor: name, reason: "size has \(dims.count) dimensions, stride \(strides.count)")
            }
            return try view(of: try storage(pid), name: name, shape: Shape(dims), strides: strides, offset: offset,
                            path: path, budget: budget)
        default:
            throw .unexpectedObject(path: path, reason: "value of '\(name)' is torch._utils.\(o.name), not a tensor")
        }
    }

    /// A tensor over `storage`: a view when the layout is contiguous, else a materialised row-major copy.
    static func view(of storage: Storage, name: String, shape: Shape, strides: [Int], offset: Int,
                     path: String, budget: CopyBudget) throws(TorchArchiveError) -> Tensor {
        guard let count = shape.checkedElementCount else {
            throw .invalidTensorGeometry(path: path, tensor: name, reason: "size \(shape) overflows")
        }
        // Last element index reachable: offset + Σ (size−1)·stride, checked for overflow.
        var last = offset
        if count > 0 {
            for (d, s) in zip(shape.dims, strides) {
                let (m, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else { throw .invalidTensorGeometry(path: path, tensor: name, reason: "stride overflows") }
                last = sum
            }
        }
        guard last < Int.max else { throw .invalidTensorGeometry(path: path, tensor: name, reason: "stride overflows") }
        let needed = count == 0 ? offset : last + 1
        guard needed <= storage.elementCount else {
            throw .tensorOutOfStorage(path: path, tensor: name, neededElements: needed, storageElements: storage.elementCount)
        }
        let size = storage.dtype.byteSize
        let contiguous = zip(zip(shape.dims, strides), shape.contiguousStrides).allSatisfy { pair, c in pair.0 <= 1 || pair.1 == c }
        if contiguous {
            return Tensor(dtype: storage.dtype, shape: shape, storage: storage.bytes, byteOffset: storage.byteOffset + offset * size)
        }
        // Overlapping strides (such as stride 0 from `expand`) could ask for far more elements than the file
        // holds; a materialised copy may be no larger than its storage.
        guard count <= storage.elementCount else {
            throw .invalidTensorGeometry(path: path, tensor: name,
                                         reason: "strides \(strides) expand \(storage.elementCount) stored elements to \(count)")
        }
        // count ≤ elementCount, whose byte size was checked against the file.
        let bytes = count * size
        guard bytes <= budget.allowance - budget.used else {
            throw .invalidTensorGeometry(path: path, tensor: name,
                                         reason: "non-contiguous copies would take \(budget.used + bytes) bytes, more than \(CopyBudget.copyFactor)× the \(budget.limit) bytes of distinct storages in the file")
        }
        budget.used += bytes
        return materialised(storage, shape: shape, strides: strides, offset: offset)
    }

    @inline(never)
    static func materialised(_ storage: Storage, shape: Shape, strides: [Int], offset: Int) -> Tensor {
        var result = Tensor(zeros: storage.dtype, shape: shape)
        let size = storage.dtype.byteSize
        let dims = shape.dims
        let count = shape.elementCount
        let src = UnsafeRawBufferPointer(rebasing: storage.bytes.bytes[storage.byteOffset...])
        result.withUnsafeMutableBytes { dst in
            var index = [Int](repeating: 0, count: dims.count)
            var element = offset
            for i in 0 ..< count {
                (dst.baseAddress! + i * size).copyMemory(from: src.baseAddress! + element * size, byteCount: size)
                var k = dims.count - 1
                while k >= 0 {
                    index[k] += 1
                    element += strides[k]
                    if index[k] < dims[k] { break }
                    element -= strides[k] * dims[k]
                    index[k] = 0
                    k -= 1
                }
            }
        }
        return result
    }

    // MARK: Zip format

    static func readZip(_ file: ByteStorage, path: String) throws(TorchArchiveError) -> StateDict {
        let archive = try ZipArchive(storage: file, path: path)
        let pickles = archive.entries.filter {
            $0.name == "data.pkl" || ($0.name.hasSuffix("/data.pkl") && $0.name.dropLast(9).firstIndex(of: "/") == nil)
        }
        guard let pkl = pickles.first else { throw .missingEntry(path: path, entry: "<archive>/data.pkl") }
        guard pickles.count == 1 else { throw .duplicateEntry(path: path, entry: pickles[1].name) }
        let prefix = String(pkl.name.dropLast(8))
        if let order = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: try archive.contents(of: order).array, as: UTF8.self)
            guard text == "little" else { throw .unsupportedByteOrder(path: path, byteOrder: text) }
        }
        let data = try archive.contents(of: pkl)
        let top = try data.withUnsafeBytes { raw in
            Result { () throws(TorchArchiveError) in try Unpickler.load(raw, path: path).value }
        }.get()
        var cache: [String: Storage] = [:]
        let budget = CopyBudget()
        return try stateDict(from: top, path: path, budget: budget) { (pid) throws(TorchArchiveError) -> Storage in
            let id = try storageID(pid, path: path)
            if let s = cache[id.key] {
                guard s.dtype == id.dtype, s.elementCount == id.elementCount else {
                    throw .unexpectedObject(path: path, reason: "storage '\(id.key)' is referenced with different types")
                }
                return s
            }
            let entryName = prefix + "data/" + id.key
            let contents = try archive.contents(named: entryName)
            let (expected, overflow) = id.elementCount.multipliedReportingOverflow(by: id.dtype.byteSize)
            guard !overflow, contents.byteCount == expected else {
                throw .storageSizeMismatch(path: path, storage: entryName, expected: overflow ? Int.max : expected, found: contents.byteCount)
            }
            let s = aligned(Storage(key: id.key, dtype: id.dtype, elementCount: id.elementCount, bytes: contents.storage, byteOffset: contents.byteOffset))
            cache[id.key] = s
            budget.limit += expected
            return s
        }
    }

    // MARK: Legacy format

    static func readLegacy(_ file: ByteStorage, path: String) throws(TorchArchiveError) -> StateDict {
        let bytes = file.bytes
        var (_, offset) = try Unpickler.load(bytes, at: 0, path: path)                 // magic number
        let (version, afterVersion) = try Unpickler.load(bytes, at: offset, path: path)
        guard version.int == 1001 else { throw .unexpectedObject(path: path, reason: "legacy protocol version is not 1001") }
        let (sysInfo, afterInfo) = try Unpickler.load(bytes, at: afterVersion, path: path)
        if case let .dict(info) = sysInfo {
            for (k, v) in info.entries where k.string == "little_endian" {
                if case .bool(false) = v { throw .unsupportedByteOrder(path: path, byteOrder: "big") }
            }
        }
        // Every storage the main pickle references (its dtype and element count), collected as the unpickler
        // executes BINPERSID, never by walking the value graph (memo sharing makes that exponential).
        var pids: [PickleValue] = []
        let (top, afterMain) = try Unpickler.load(bytes, at: afterInfo, path: path, persistentIDs: &pids)
        var declared: [String: (dtype: DType, count: Int)] = [:]
        for pid in pids {
            let id = try storageID(pid, path: path)
            if let d = declared[id.key], d.dtype != id.dtype || d.count != id.elementCount {
                throw .unexpectedObject(path: path, reason: "storage '\(id.key)' is referenced with different types")
            }
            declared[id.key] = (id.dtype, id.elementCount)
        }
        let (keyList, afterKeys) = try Unpickler.load(bytes, at: afterMain, path: path)
        guard let keys = keyList.elements else { throw .unexpectedObject(path: path, reason: "storage key list is not a list") }
        offset = afterKeys
        var storages: [String: Storage] = [:]
        for k in keys {
            guard let key = k.string else { throw .unexpectedObject(path: path, reason: "storage key is not a string") }
            guard let d = declared[key] else { throw .unexpectedObject(path: path, reason: "storage '\(key)' is not referenced by any tensor") }
            guard storages[key] == nil else { throw .unexpectedObject(path: path, reason: "storage '\(key)' is listed twice") }
            guard bytes.count - offset >= 8 else { throw .truncated(path: path, what: "size of storage '\(key)'", offset: offset) }
            let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
            let available = (bytes.count - offset) / d.dtype.byteSize
            guard n <= UInt64(available) else {
                throw .truncated(path: path, what: "storage '\(key)' of \(n) elements", offset: offset - 8)
            }
            guard Int(n) == d.count else {
                throw .storageSizeMismatch(path: path, storage: key, expected: d.count &* d.dtype.byteSize, found: Int(n) * d.dtype.byteSize)
            }
            storages[key] = aligned(Storage(key: key, dtype: d.dtype, elementCount: d.count, bytes: file, byteOffset: offset))
            offset += Int(n) * d.dtype.byteSize
        }
        for (key, _) in declared where storages[key] == nil {
            throw .missingEntry(path: path, entry: "storage '\(key)'")
        }
        let budget = CopyBudget()
        budget.limit = storages.values.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize }
        return try stateDict(from: top, path: path, budget: budget) { (pid) throws(TorchArchiveError) -> Storage in
            let id = try storageID(pid, path: path)
            guard var s = storages[id.key] else { throw .missingEntry(path: path, entry: "storage '\(id.key)'") }
            if let v = id.view {
                // An old-style storage view: `count` elements of the root storage from `offset`.
                guard v.offset <= s.elementCount, v.count <= s.elementCount - v.offset else {
                    throw .tensorOutOfStorage(path: path, tensor: v.key, neededElements: v.offset + v.count, storageElements: s.elementCount)
                }
                s.byteOffset += v.offset * s.dtype.byteSize
                s.elementCount = v.count
            }
            return s
        }
    }
}
