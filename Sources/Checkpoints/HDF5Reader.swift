@preconcurrency import CHDF5
import Foundation
import Tensors

extension KerasHDF5 {
    /// Reads a Keras HDF5 weight file with libhdf5 in this process: what the helper process runs (see
    /// `readWeightFile(path:options:)`, which callers use), and the baseline the benchmark compares it with.
    ///
    /// - Throws: `HDF5Error` when the file is missing, is not HDF5, is truncated, lacks `layer_names` or a
    ///   layer's `weight_names`, names a missing group or dataset, reaches an object through a link other
    ///   than a hard link, holds an element type other than IEEE float16/32/64, repeats a weight name, keeps
    ///   data in external files, or claims more data than the file holds.
    ///
    /// - Parameter byteBudget: the most bytes of weights to hold (the helper passes what its memory limit
    ///   leaves), refused with `memoryLimitExceeded` before a dataset would pass it; nil for no budget.
    /// - Parameter allocate: where each dataset's bytes go: given the byte count and the dataset's HDF5 path,
    ///   a writable storage and the offset in it (the helper places them in the file it hands back); nil for
    ///   zeroed heap storage of its own per dataset.
    package static func readWeightFileInProcess(
        path: String, byteBudget: Int? = nil,
        allocate: ((Int, String) throws(HDF5Error) -> (storage: ByteStorage, offset: Int))? = nil
    ) throws(HDF5Error) -> WeightFile {
        let fileSize = try regularFileSize(path)
        let result = withLibraryLock {
            Result { () throws(HDF5Error) -> WeightFile in
                var reader = Reader(path: path, fileSize: fileSize, byteBudget: byteBudget, allocate: allocate)
                return try reader.read()
            }
        }
        return try result.get()
    }

    /// The size of the regular file at `path`.
    static func regularFileSize(_ path: String) throws(HDF5Error) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw HDF5Error.cannotOpen(path: path, reason: String(cString: strerror(errno)).lowercased())
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw HDF5Error.cannotOpen(path: path, reason: "not a regular file")
        }
        return Int(info.st_size)
    }
}

/// Reads one file; every method runs holding the library lock.
private struct Reader {
    let path: String
    let fileSize: Int
    var seenNames: Set<String> = []
    /// Bytes of the unfiltered and filtered datasets read so far: datasets may be hard-linked under many
    /// names (or share file space), so the bound on what the file can back holds for the total, not each one.
    var unfilteredBytes = 0
    var filteredBytes = 0
    let byteBudget: Int?
    let allocate: ((Int, String) throws(HDF5Error) -> (storage: ByteStorage, offset: Int))?

    init(path: String, fileSize: Int, byteBudget: Int?,
         allocate: ((Int, String) throws(HDF5Error) -> (storage: ByteStorage, offset: Int))?) {
        self.path = path
        self.fileSize = fileSize
        self.byteBudget = byteBudget
        self.allocate = allocate
    }

    mutating func read() throws(HDF5Error) -> KerasHDF5.WeightFile {
        guard H5Fis_hdf5(path) > 0 else {
            _ = H5Eclear2(hid_t(H5E_DEFAULT))
            throw .notHDF5(path: path)
        }
        let file = H5Fopen(path, H5.accessReadOnly, H5.defaultPropertyList)
        guard file >= 0 else { throw .cannotOpen(path: path, reason: H5.errorDetail()) }
        defer { _ = H5Fclose(file) }
        let root = H5Gopen2(file, "/", H5.defaultPropertyList)
        guard root >= 0 else { throw .readFailed(path: path, object: "/", detail: H5.errorDetail()) }
        defer { _ = H5Gclose(root) }

        let layerNames = try stringList(root, object: "/", name: "layer_names")
        var layers: [KerasHDF5.Layer] = []
        for layerName in layerNames {
            guard !layerName.isEmpty, try linkExists(root, layerName, below: "/") else {
                throw .missingGroup(path: path, group: "/" + layerName)
            }
            layers.append(KerasHDF5.Layer(name: layerName, weights: try weights(inGroup: layerName, of: root)))
        }

        var topLevel: [KerasHDF5.Weight] = []
        let topName = KerasHDF5.topLevelGroupName
        if !layerNames.contains(topName), try linkExists(root, topName, below: "/") {
            topLevel = try weights(inGroup: topName, of: root)
        }

        var attributes: [String: String] = [:]
        for name in try attributeNames(root, object: "/") where !isLayerNamesAttribute(name) {
            if let value = try scalarString(root, object: "/", name: name) { attributes[name] = value }
        }
        return KerasHDF5.WeightFile(layers: layers, topLevelWeights: topLevel, attributes: attributes)
    }

    private func isLayerNamesAttribute(_ name: String) -> Bool {
        if name == "layer_names" { return true }
        guard name.hasPrefix("layer_names") else { return false }
        let suffix = name.dropFirst("layer_names".count)
        return !suffix.isEmpty && suffix.allSatisfy(\.isASCII) && suffix.allSatisfy(\.isNumber)
    }

    // MARK: groups and datasets

    private mutating func weights(inGroup groupName: String, of root: hid_t) throws(HDF5Error) -> [KerasHDF5.Weight] {
        let object = "/" + groupName
        let group = H5Gopen2(root, groupName, H5.defaultPropertyList)
        guard group >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Gclose(group) }
        var result: [KerasHDF5.Weight] = []
        for name in try stringList(group, object: object, name: "weight_names") {
            let datasetPath = object + "/" + name
            guard !name.isEmpty, !name.hasPrefix("/"), try linkExists(group, name, below: object + "/") else {
                throw .missingDataset(path: path, dataset: datasetPath)
            }
            guard seenNames.insert(name).inserted else { throw .duplicateWeight(path: path, name: name) }
            result.append(KerasHDF5.Weight(name: name, tensor: try dataset(group, name, object: datasetPath)))
        }
        return result
    }

    /// Whether every component of the relative link path `name` exists below `location`, each checked to be
    /// a hard link before libhdf5 traverses it: external links would make libhdf5 open other files, soft and
    /// user-defined links can lead to them.
    /// `base` is the HDF5 path of `location` with a trailing slash, for messages.
    private func linkExists(_ location: hid_t, _ name: String, below base: String) throws(HDF5Error) -> Bool {
        let object = base + name
        var prefix = ""
        for component in name.split(separator: "/", omittingEmptySubsequences: false) {
            guard !component.isEmpty else { return false }
            prefix += prefix.isEmpty ? String(component) : "/" + component
            let exists = H5Lexists(location, prefix, H5.defaultPropertyList)
            if exists < 0 { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
            if exists == 0 { return false }
            var info = H5L_info_t()
            guard H5Lget_info(location, prefix, &info, H5.defaultPropertyList) >= 0 else {
                throw .readFailed(path: path, object: object, detail: H5.errorDetail())
            }
            guard info.type == H5L_TYPE_HARD else {
                throw .unsupportedLink(path: path, link: base + prefix, kind: Self.linkKind(info.type))
            }
        }
        return true
    }

    private static func linkKind(_ type: H5L_type_t) -> String {
        switch type {
        case H5L_TYPE_SOFT: return "soft"
        case H5L_TYPE_EXTERNAL: return "external"
        default: return "user-defined"
        }
    }

    private mutating func dataset(_ group: hid_t, _ name: String, object: String) throws(HDF5Error) -> Tensor {
        let dataset = H5Dopen2(group, name, H5.defaultPropertyList)
        guard dataset >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Dclose(dataset) }

        let fileType = H5Dget_type(dataset)
        guard fileType >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Tclose(fileType) }
        let dtype = try elementType(fileType, object: object)

        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Sclose(space) }
        let shape = try datasetShape(space, object: object)
        guard let count = shape.checkedElementCount else {
            throw .invalidShape(path: path, dataset: object, reason: "shape \(shape) overflows")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw .invalidShape(path: path, dataset: object, reason: "shape \(shape) overflows") }
        try checkSize(dataset, byteCount: byteCount, object: object)

        let memoryType = KerasHDF5.makeFloatType(for: dtype, inFile: false)
        guard memoryType >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Tclose(memoryType) }
        let (storage, offset) = try allocate?(byteCount, object) ?? (ByteStorage(zeroedByteCount: byteCount), 0)
        precondition(offset >= 0 && byteCount <= storage.byteCount - offset, "allocator gave \(storage.byteCount - offset) bytes for \(byteCount)")
        if byteCount > 0 {
            guard let base = storage.mutableBytes.baseAddress,
                  H5Dread(dataset, memoryType, H5.all, H5.all, H5.defaultPropertyList, base + offset) >= 0 else {
                throw .readFailed(path: path, object: object, detail: H5.errorDetail())
            }
        }
        return Tensor(dtype: dtype, shape: shape, storage: storage, byteOffset: offset)
    }

    /// F16, F32 or F64 when `type` is an IEEE binary float of that width (either byte order).
    private func elementType(_ type: hid_t, object: String) throws(HDF5Error) -> DType {
        let typeClass = H5Tget_class(type)
        let size = H5Tget_size(type)
        guard typeClass == H5T_FLOAT else {
            throw .unsupportedElementType(path: path, dataset: object, type: "\(Self.className(typeClass)) of \(size) bytes")
        }
        var signPosition = 0, exponentPosition = 0, exponentSize = 0, mantissaPosition = 0, mantissaSize = 0
        guard H5Tget_fields(type, &signPosition, &exponentPosition, &exponentSize, &mantissaPosition, &mantissaSize) >= 0 else {
            throw .readFailed(path: path, object: object, detail: H5.errorDetail())
        }
        let bias = H5Tget_ebias(type)
        let precision = H5Tget_precision(type)
        let offset = H5Tget_offset(type)
        let layout: [Int] = [size, signPosition, exponentPosition, exponentSize, mantissaPosition, mantissaSize, bias, precision, Int(offset)]
        switch layout {
        case [2, 15, 10, 5, 0, 10, 15, 16, 0]: return .f16
        case [4, 31, 23, 8, 0, 23, 127, 32, 0]: return .f32
        case [8, 63, 52, 11, 0, 52, 1023, 64, 0]: return .f64
        default:
            throw .unsupportedElementType(
                path: path, dataset: object,
                type: "float of \(size) bytes with \(exponentSize) exponent and \(mantissaSize) mantissa bits")
        }
    }

    private static func className(_ typeClass: H5T_class_t) -> String {
        switch typeClass {
        case H5T_INTEGER: return "integer"
        case H5T_FLOAT: return "float"
        case H5T_STRING: return "string"
        case H5T_COMPOUND: return "compound"
        case H5T_ENUM: return "enum"
        case H5T_ARRAY: return "array"
        case H5T_VLEN: return "variable-length sequence"
        case H5T_OPAQUE: return "opaque"
        case H5T_BITFIELD: return "bitfield"
        case H5T_REFERENCE: return "reference"
        default: return "unknown type class"
        }
    }

    private func datasetShape(_ space: hid_t, object: String) throws(HDF5Error) -> Shape {
        let spaceClass = H5Sget_simple_extent_type(space)
        if spaceClass == H5S_SCALAR { return Shape([]) }
        guard spaceClass == H5S_SIMPLE else {
            throw .invalidShape(path: path, dataset: object, reason: "dataspace is neither simple nor scalar")
        }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else {
            throw .invalidShape(path: path, dataset: object, reason: "rank \(rank) outside 0...32")
        }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        guard H5Sget_simple_extent_dims(space, &dims, nil) == rank else {
            throw .readFailed(path: path, object: object, detail: H5.errorDetail())
        }
        var result: [Int] = []
        for dim in dims {
            guard let value = Int(exactly: dim) else {
                throw .invalidShape(path: path, dataset: object, reason: "dimension \(dim) too large")
            }
            result.append(value)
        }
        return Shape(result)
    }

    /// Refuses a dataset whose logical size the file cannot back, before anything is allocated.
    private mutating func checkSize(_ dataset: hid_t, byteCount: Int, object: String) throws(HDF5Error) {
        let plist = H5Dget_create_plist(dataset)
        guard plist >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Pclose(plist) }
        let layout = H5Pget_layout(plist)
        guard layout == H5D_CONTIGUOUS || layout == H5D_CHUNKED || layout == H5D_COMPACT else {
            throw .unsupportedStorage(path: path, dataset: object, reason: "virtual or unknown dataset layout")
        }
        let externalCount = H5Pget_external_count(plist)
        guard externalCount == 0 else {
            if externalCount < 0 { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
            throw .unsupportedStorage(path: path, dataset: object, reason: "data stored in external files")
        }
        let filterCount = H5Pget_nfilters(plist)
        guard filterCount >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        if filterCount == 0 {
            // Stored as is: the bytes must fit in the file.
            guard byteCount <= fileSize else {
                throw .sizeExceedsFile(path: path, dataset: object, byteCount: byteCount, fileSize: fileSize)
            }
            let (total, overflow) = unfilteredBytes.addingReportingOverflow(byteCount)
            guard !overflow, total <= fileSize else {
                throw .totalSizeExceedsFile(path: path, dataset: object, totalBytes: overflow ? Int.max : total, limit: fileSize)
            }
            unfilteredBytes = total
        } else {
            // Compressed: deflate expands at most ~1032:1, so bound the logical size by the stored size.
            let stored = Int(clamping: H5Dget_storage_size(dataset))
            let (limit, overflow) = max(stored, 1).multipliedReportingOverflow(by: 1100)
            guard stored <= fileSize, overflow || byteCount <= limit else {
                throw .sizeExceedsFile(path: path, dataset: object, byteCount: byteCount, fileSize: fileSize)
            }
            let (fileLimit, limitOverflow) = fileSize.multipliedReportingOverflow(by: 1100)
            let (total, totalOverflow) = filteredBytes.addingReportingOverflow(byteCount)
            guard !totalOverflow, limitOverflow || total <= fileLimit else {
                throw .totalSizeExceedsFile(path: path, dataset: object, totalBytes: totalOverflow ? Int.max : total, limit: fileLimit)
            }
            filteredBytes = total
        }
        if let byteBudget {
            let (total, overflow) = unfilteredBytes.addingReportingOverflow(filteredBytes)
            guard !overflow, total <= byteBudget else {
                throw .memoryLimitExceeded(path: path, dataset: object, totalBytes: overflow ? Int.max : total, budget: byteBudget)
            }
        }
    }

    // MARK: attributes

    /// The names of all attributes on `location`.
    private func attributeNames(_ location: hid_t, object: String) throws(HDF5Error) -> [String] {
        final class Names { var items: [String] = [] }
        let names = Names()
        let box = Unmanaged.passRetained(names)
        defer { box.release() }
        var index: hsize_t = 0
        let status = H5Aiterate2(location, H5_INDEX_NAME, H5_ITER_INC, &index, { _, name, _, clientData in
            guard let name, let clientData else { return -1 }
            Unmanaged<Names>.fromOpaque(clientData).takeUnretainedValue().items.append(String(cString: name))
            return 0
        }, box.toOpaque())
        guard status >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        return names.items
    }

    /// A Keras name list: attribute `name`, or when absent the chunks `name0`, `name1`, … Keras writes for
    /// lists over 64 KiB.
    private func stringList(_ location: hid_t, object: String, name: String) throws(HDF5Error) -> [String] {
        if try attributeExists(location, name, object: object) {
            return try strings(location, object: object, name: name)
        }
        var result: [String] = []
        var chunk = 0
        while try attributeExists(location, "\(name)\(chunk)", object: object) {
            result += try strings(location, object: object, name: "\(name)\(chunk)")
            chunk += 1
        }
        guard chunk > 0 else { throw .missingAttribute(path: path, object: object, attribute: name) }
        return result
    }

    private func attributeExists(_ location: hid_t, _ name: String, object: String) throws(HDF5Error) -> Bool {
        let exists = H5Aexists(location, name)
        guard exists >= 0 else { throw .readFailed(path: path, object: object + "@" + name, detail: H5.errorDetail()) }
        return exists > 0
    }

    /// The value of a scalar (or one-element) string attribute, nil when it is not a string.
    private func scalarString(_ location: hid_t, object: String, name: String) throws(HDF5Error) -> String? {
        let attribute = H5Aopen(location, name, H5.defaultPropertyList)
        guard attribute >= 0 else { throw .readFailed(path: path, object: object + "@" + name, detail: H5.errorDetail()) }
        defer { _ = H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        guard type >= 0 else { throw .readFailed(path: path, object: object + "@" + name, detail: H5.errorDetail()) }
        defer { _ = H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { return nil }
        let values = try strings(location, object: object, name: name)
        return values.count == 1 ? values[0] : nil
    }

    /// Every element of a string attribute (variable- or fixed-length). An empty non-string array — what
    /// Keras writes for a layer without weights — reads as no strings.
    private func strings(_ location: hid_t, object: String, name: String) throws(HDF5Error) -> [String] {
        let where_ = object + "@" + name
        let attribute = H5Aopen(location, name, H5.defaultPropertyList)
        guard attribute >= 0 else { throw .readFailed(path: path, object: where_, detail: H5.errorDetail()) }
        defer { _ = H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        guard type >= 0 else { throw .readFailed(path: path, object: where_, detail: H5.errorDetail()) }
        defer { _ = H5Tclose(type) }
        let space = H5Aget_space(attribute)
        guard space >= 0 else { throw .readFailed(path: path, object: where_, detail: H5.errorDetail()) }
        defer { _ = H5Sclose(space) }

        let spaceClass = H5Sget_simple_extent_type(space)
        guard spaceClass == H5S_SCALAR || (spaceClass == H5S_SIMPLE && H5Sget_simple_extent_ndims(space) <= 1) else {
            throw .invalidAttribute(path: path, object: object, attribute: name, reason: "not a scalar or one-dimensional array")
        }
        let points = H5Sget_simple_extent_npoints(space)
        guard points >= 0, let count = Int(exactly: points) else {
            throw .readFailed(path: path, object: where_, detail: H5.errorDetail())
        }
        let typeClass = H5Tget_class(type)
        guard typeClass == H5T_STRING else {
            if count == 0 { return [] }
            throw .invalidAttribute(path: path, object: object, attribute: name, reason: "not a string array")
        }
        // Each element takes at least 16 bytes of the file (a heap reference) or its fixed size.
        let variable = H5Tis_variable_str(type)
        guard variable >= 0 else { throw .readFailed(path: path, object: where_, detail: H5.errorDetail()) }
        let elementSize = variable > 0 ? 16 : max(H5Tget_size(type), 1)
        let (claimed, overflow) = count.multipliedReportingOverflow(by: elementSize)
        guard !overflow, claimed <= fileSize else {
            throw .invalidAttribute(path: path, object: object, attribute: name,
                                    reason: "claims \(count) strings, more than the file's \(fileSize) bytes hold")
        }
        if count == 0 { return [] }
        return variable > 0
            ? try variableStrings(attribute, type: type, space: space, count: count, object: where_)
            : try fixedStrings(attribute, type: type, count: count, object: where_)
    }

    private func variableStrings(_ attribute: hid_t, type: hid_t, space: hid_t, count: Int, object: String) throws(HDF5Error) -> [String] {
        let memoryType = H5Tcopy(H5T_C_S1_g)
        guard memoryType >= 0, H5Tset_size(memoryType, H5.variableSize) >= 0,
              H5Tset_cset(memoryType, H5Tget_cset(type)) >= 0 else {
            if memoryType >= 0 { _ = H5Tclose(memoryType) }
            throw .readFailed(path: path, object: object, detail: H5.errorDetail())
        }
        defer { _ = H5Tclose(memoryType) }
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        let status = pointers.withUnsafeMutableBytes { buffer in H5Aread(attribute, memoryType, buffer.baseAddress) }
        guard status >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        let values = pointers.map { pointer in pointer.map { String(cString: $0) } ?? "" }
        _ = pointers.withUnsafeMutableBytes { buffer in
            H5Dvlen_reclaim(memoryType, space, H5.defaultPropertyList, buffer.baseAddress)
        }
        return values
    }

    private func fixedStrings(_ attribute: hid_t, type: hid_t, count: Int, object: String) throws(HDF5Error) -> [String] {
        let size = H5Tget_size(type)
        guard size > 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        let padding = H5Tget_strpad(type)
        let memoryType = H5Tcopy(type)
        guard memoryType >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        defer { _ = H5Tclose(memoryType) }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, byteCount <= fileSize else {
            throw .readFailed(path: path, object: object, detail: "\(count) strings of \(size) bytes exceed the file's \(fileSize) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: byteCount)
        let status = bytes.withUnsafeMutableBytes { buffer in H5Aread(attribute, memoryType, buffer.baseAddress) }
        guard status >= 0 else { throw .readFailed(path: path, object: object, detail: H5.errorDetail()) }
        return (0..<count).map { index in
            var element = bytes[index * size ..< (index + 1) * size]
            if padding == H5T_STR_SPACEPAD {
                while element.last == UInt8(ascii: " ") { element = element.dropLast() }
            } else if let end = element.firstIndex(of: 0) {
                element = element[..<end]
            }
            return String(decoding: element, as: UTF8.self)
        }
    }
}

extension KerasHDF5 {
    /// A new float type for `dtype` (F16, F32, F64; -1 otherwise): in host byte order for memory, or IEEE
    /// little-endian as h5py/TF store it for files. F16 is built from F32 the way h5py builds it. Returns a
    /// negative id when libhdf5 fails; the caller closes the type. Call holding the library lock.
    static func makeFloatType(for dtype: DType, inFile: Bool) -> hid_t {
        switch dtype {
        case .f32: return H5Tcopy(inFile ? H5T_IEEE_F32LE_g : H5T_NATIVE_FLOAT_g)
        case .f64: return H5Tcopy(inFile ? H5T_IEEE_F64LE_g : H5T_NATIVE_DOUBLE_g)
        case .f16:
            let type = H5Tcopy(inFile ? H5T_IEEE_F32LE_g : H5T_NATIVE_FLOAT_g)
            guard type >= 0 else { return type }
            guard H5Tset_fields(type, 15, 10, 5, 0, 10) >= 0, H5Tset_size(type, 2) >= 0, H5Tset_ebias(type, 15) >= 0 else {
                _ = H5Tclose(type)
                return -1
            }
            return type
        default:
            return -1
        }
    }
}
