@preconcurrency import CHDF5
import Foundation
import Tensors

extension KerasHDF5 {
    /// Writes a Keras HDF5 weight file in the layout tf-keras 2.18 writes (see `KerasHDF5`), so
    /// `TFGPT2LMHeadModel.from_pretrained` and Keras `load_weights` can load it.
    ///
    /// - root attribute `layer_names`: variable-length ASCII (UTF-8 if needed) strings, in `layers` order;
    ///   split into fixed-length `layer_names0`, `layer_names1`, … past 64 KiB, as Keras does;
    /// - root attributes from `attributes` as scalar variable-length strings;
    /// - one group per layer with attribute `weight_names` (an empty float64 array for a layer without
    ///   weights, as h5py stores an empty list) and one contiguous, uncompressed little-endian dataset per
    ///   weight at `/<layer>/<weight name>`, intermediate groups created;
    /// - group `top_level_model_weights` holding `topLevelWeights` (usually none).
    ///
    /// Tensors must be F16, F32 or F64. BF16 is refused, not converted: HDF5 has no bfloat16 type, and a
    /// silent widening would double the file; convert first with `converted(to: .f32)` if that is wanted.
    ///
    /// The write is atomic: the file is written to a temporary file in the same directory, flushed with
    /// `fsync`, then renamed over `path`; if anything fails the temporary file is removed and an existing
    /// file at `path` is left untouched.
    ///
    /// libhdf5 runs in the helper process `gpt2kit-hdf5` (see `IsolationOptions`): the names are checked here,
    /// the tensors travel to it through an anonymous file, and a crash of libhdf5 (as on a full disk) or a
    /// hang becomes an error with the old file intact.
    ///
    /// - Throws: `HDF5Error` (`invalidName`, `duplicateWeight`, `unsupportedDType`, `writeFailed`, `crashed`,
    ///   `timedOut`, `helperUnavailable`).
    public static func write(_ file: WeightFile, to path: String, options: IsolationOptions = IsolationOptions()) throws {
        try validate(file, path: path)
        try writeAtomically(to: path) { temporary throws(HDF5Error) in
            try HDF5Helper.write(file, temporary: temporary, path: path, options: options)
        }
    }

    /// Writes `file` atomically as `write(_:to:options:)` does, with libhdf5 in this process: the baseline the
    /// benchmark compares the helper with.
    package static func writeInProcess(_ file: WeightFile, to path: String) throws(HDF5Error) {
        try validate(file, path: path)
        try writeAtomically(to: path) { temporary throws(HDF5Error) in
            try writeInProcess(file, temporary: temporary, path: path)
        }
    }

    /// Writes `file` with libhdf5 in this process to `temporary`, which must not exist; errors name `path`.
    /// What the helper process runs.
    package static func writeInProcess(_ file: WeightFile, temporary: String, path: String) throws(HDF5Error) {
        try validate(file, path: path)
        do {
            // (An untyped closure: a `() throws(HDF5Error) -> ()` closure here crashes the 6.3.1 compiler.)
            try withLibraryLock { try Writer(path: path, temporary: temporary).write(file) }
        } catch let error as HDF5Error {
            throw error
        } catch {
            throw .writeFailed(path: path, object: "/", detail: "\(error)")
        }
    }

    /// Lets `body` write a temporary sibling of `path`, then syncs it and renames it over `path`; removes it
    /// when anything fails.
    private static func writeAtomically(to path: String, _ body: (String) throws(HDF5Error) -> Void) throws(HDF5Error) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt64.random(in: 0 ... .max))"
        do throws(HDF5Error) {
            try body(temporary)
            try sync(temporary, target: path, isDirectory: false)
            guard rename(temporary, path) == 0 else {
                throw HDF5Error.writeFailed(path: path, object: "/", detail: "rename: " + String(cString: strerror(errno)).lowercased())
            }
        } catch {
            unlink(temporary)
            throw error
        }
        // Persist the rename; some file systems cannot fsync a directory, and the data is already safe.
        _ = try? sync(directory, target: path, isDirectory: true)
    }

    /// Writes layers given as tuples; see `write(_:to:)` for the layout, atomicity and dtypes.
    ///
    /// - Parameters:
    ///   - layers: layer names with their weights, in `layer_names` order; weight names are dataset paths
    ///     relative to the layer group.
    ///   - attributes: scalar string attributes for the root group (`backend`, `keras_version`).
    ///   - path: the file to write (replaced atomically).
    ///   - options: where the libhdf5 helper process is and how it is limited.
    public static func write(_ layers: [(layerName: String, weights: [(name: String, tensor: Tensor)])],
                             attributes: [String: String] = defaultAttributes, to path: String,
                             options: IsolationOptions = IsolationOptions()) throws {
        let file = WeightFile(
            layers: layers.map { layer in
                Layer(name: layer.layerName, weights: layer.weights.map { Weight(name: $0.name, tensor: $0.tensor) })
            },
            attributes: attributes)
        try write(file, to: path, options: options)
    }

    /// Writes every tensor of `stateDict`, keys used as weight names, into one layer named `layerName`, with
    /// `defaultAttributes` overridden by the dict's metadata; see `write(_:to:)`.
    public static func write(_ stateDict: StateDict, layerName: String, to path: String,
                             options: IsolationOptions = IsolationOptions()) throws {
        let weights = stateDict.map { Weight(name: $0.name, tensor: $0.tensor) }
        let attributes = defaultAttributes.merging(stateDict.metadata) { _, new in new }
        try write(WeightFile(layers: [Layer(name: layerName, weights: weights)], attributes: attributes), to: path, options: options)
    }

    private static func validate(_ file: WeightFile, path: String) throws(HDF5Error) {
        var layerNames: Set<String> = []
        var weightNames: Set<String> = []
        func checkWeights(_ weights: [Weight]) throws(HDF5Error) {
            for weight in weights {
                let components = weight.name.split(separator: "/", omittingEmptySubsequences: false)
                guard !weight.name.isEmpty, !weight.name.utf8.contains(0),
                      components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
                    throw .invalidName(path: path, name: weight.name, reason: "not a relative dataset path")
                }
                guard weightNames.insert(weight.name).inserted else { throw .duplicateWeight(path: path, name: weight.name) }
                guard [.f16, .f32, .f64].contains(weight.tensor.dtype) else {
                    throw .unsupportedDType(path: path, weight: weight.name, dtype: weight.tensor.dtype)
                }
            }
        }
        for layer in file.layers {
            guard !layer.name.isEmpty, !layer.name.contains("/"), !layer.name.utf8.contains(0),
                  layer.name != ".", layer.name != ".." else {
                throw .invalidName(path: path, name: layer.name, reason: "not a layer group name")
            }
            guard layer.name != topLevelGroupName else {
                throw .invalidName(path: path, name: layer.name, reason: "reserved for top-level weights")
            }
            guard layer.name.utf8.count <= objectHeaderLimit else {
                throw .invalidName(path: path, name: layer.name, reason: "longer than \(objectHeaderLimit) bytes")
            }
            guard layerNames.insert(layer.name).inserted else {
                throw .invalidName(path: path, name: layer.name, reason: "layer appears twice")
            }
            try checkWeights(layer.weights)
        }
        try checkWeights(file.topLevelWeights)
        for (key, value) in file.attributes {
            guard !key.isEmpty, !key.utf8.contains(0), !value.utf8.contains(0), !key.hasPrefix("layer_names") else {
                throw .invalidName(path: path, name: key, reason: "not a root attribute name for a string value")
            }
        }
    }

    /// `fsync`s a file or directory.
    private static func sync(_ syncPath: String, target: String, isDirectory: Bool) throws(HDF5Error) {
        let descriptor = open(syncPath, isDirectory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
        guard descriptor >= 0 else {
            throw .writeFailed(path: target, object: "/", detail: "open for fsync: " + String(cString: strerror(errno)).lowercased())
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw .writeFailed(path: target, object: "/", detail: "fsync: " + String(cString: strerror(errno)).lowercased())
        }
    }
}

/// Writes one file; runs holding the library lock. Errors name the target path, not the temporary file.
private struct Writer {
    let path: String
    let temporary: String

    func write(_ file: KerasHDF5.WeightFile) throws(HDF5Error) {
        let fileID = H5Fcreate(temporary, H5.accessExclusive, H5.defaultPropertyList, H5.defaultPropertyList)
        guard fileID >= 0 else { throw failure("/") }
        do {
            try writeContents(file, into: fileID)
        } catch {
            _ = H5Fclose(fileID)
            throw error
        }
        guard H5Fflush(fileID, H5F_SCOPE_GLOBAL) >= 0 else {
            let error = failure("/")
            _ = H5Fclose(fileID)
            throw error
        }
        guard H5Fclose(fileID) >= 0 else { throw failure("/") }
    }

    private func failure(_ object: String) -> HDF5Error {
        .writeFailed(path: path, object: object, detail: H5.errorDetail())
    }

    private func writeContents(_ file: KerasHDF5.WeightFile, into fileID: hid_t) throws(HDF5Error) {
        let root = H5Gopen2(fileID, "/", H5.defaultPropertyList)
        guard root >= 0 else { throw failure("/") }
        defer { _ = H5Gclose(root) }
        try writeStringList(root, object: "/", name: "layer_names", values: file.layers.map(\.name))
        for (key, value) in file.attributes.sorted(by: { $0.key < $1.key }) {
            try writeStrings(root, object: "/", name: key, values: [value], scalar: true)
        }

        let linkProperties = H5Pcreate(H5P_CLS_LINK_CREATE_ID_g)
        guard linkProperties >= 0 else { throw failure("/") }
        defer { _ = H5Pclose(linkProperties) }
        guard H5Pset_create_intermediate_group(linkProperties, 1) >= 0 else { throw failure("/") }

        // Keras creates the layer groups in name order.
        var groups = file.layers.sorted { $0.name < $1.name }.map { ($0.name, $0.weights) }
        groups.append((KerasHDF5.topLevelGroupName, file.topLevelWeights))
        for (name, weights) in groups {
            let object = "/" + name
            let group = H5Gcreate2(root, name, H5.defaultPropertyList, H5.defaultPropertyList, H5.defaultPropertyList)
            guard group >= 0 else { throw failure(object) }
            defer { _ = H5Gclose(group) }
            try writeStringList(group, object: object, name: "weight_names", values: weights.map(\.name))
            for weight in weights {
                try writeDataset(group, weight, object: object + "/" + weight.name, linkProperties: linkProperties)
            }
        }
    }

    private func writeDataset(_ group: hid_t, _ weight: KerasHDF5.Weight, object: String, linkProperties: hid_t) throws(HDF5Error) {
        let tensor = weight.tensor
        let fileType = KerasHDF5.makeFloatType(for: tensor.dtype, inFile: true)
        guard fileType >= 0 else { throw failure(object) }
        defer { _ = H5Tclose(fileType) }
        let memoryType = KerasHDF5.makeFloatType(for: tensor.dtype, inFile: false)
        guard memoryType >= 0 else { throw failure(object) }
        defer { _ = H5Tclose(memoryType) }
        let dims = tensor.shape.dims.map { hsize_t($0) }
        let space = dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
        guard space >= 0 else { throw failure(object) }
        defer { _ = H5Sclose(space) }
        let dataset = H5Dcreate2(group, weight.name, fileType, space, linkProperties, H5.defaultPropertyList, H5.defaultPropertyList)
        guard dataset >= 0 else { throw failure(object) }
        defer { _ = H5Dclose(dataset) }
        guard tensor.byteCount > 0 else { return }
        let status = tensor.withUnsafeBytes { bytes in
            H5Dwrite(dataset, memoryType, H5.all, H5.all, H5.defaultPropertyList, bytes.baseAddress)
        }
        guard status >= 0 else { throw failure(object) }
    }

    /// A Keras name list: variable-length strings in one attribute, or fixed-length chunks `name0`, `name1`, …
    /// when one attribute would pass the object-header limit; an empty list is an empty float64 array.
    private func writeStringList(_ location: hid_t, object: String, name: String, values: [String]) throws(HDF5Error) {
        guard !values.isEmpty else {
            try writeEmptyArray(location, object: object, name: name)
            return
        }
        let longest = values.map(\.utf8.count).max() ?? 0
        // A variable-length element takes 16 bytes of the object header.
        let limit = KerasHDF5.objectHeaderLimit
        if values.count * max(longest, 16) <= limit {
            try writeStrings(location, object: object, name: name, values: values, scalar: false)
            return
        }
        // numpy.array_split into the fewest chunks whose fixed-length bytes fit, as Keras does.
        let itemSize = max(longest, 1)
        var chunkCount = 2
        while ((values.count + chunkCount - 1) / chunkCount) * itemSize > limit { chunkCount += 1 }
        var start = 0
        for chunk in 0..<chunkCount {
            let size = values.count / chunkCount + (chunk < values.count % chunkCount ? 1 : 0)
            try writeFixedStrings(location, object: object, name: "\(name)\(chunk)",
                                  values: Array(values[start ..< start + size]), itemSize: itemSize)
            start += size
        }
    }

    private func writeEmptyArray(_ location: hid_t, object: String, name: String) throws(HDF5Error) {
        var dims: [hsize_t] = [0]
        let space = H5Screate_simple(1, &dims, nil)
        guard space >= 0 else { throw failure(object + "@" + name) }
        defer { _ = H5Sclose(space) }
        let attribute = H5Acreate2(location, name, H5T_IEEE_F64LE_g, space, H5.defaultPropertyList, H5.defaultPropertyList)
        guard attribute >= 0 else { throw failure(object + "@" + name) }
        guard H5Aclose(attribute) >= 0 else { throw failure(object + "@" + name) }
    }

    private func writeStrings(_ location: hid_t, object: String, name: String, values: [String], scalar: Bool) throws(HDF5Error) {
        let where_ = object + "@" + name
        let type = H5Tcopy(H5T_C_S1_g)
        guard type >= 0 else { throw failure(where_) }
        defer { _ = H5Tclose(type) }
        let isASCII = values.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
        guard H5Tset_size(type, H5.variableSize) >= 0,
              H5Tset_cset(type, isASCII ? H5T_CSET_ASCII : H5T_CSET_UTF8) >= 0 else { throw failure(where_) }
        var dims = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        guard space >= 0 else { throw failure(where_) }
        defer { _ = H5Sclose(space) }
        let attribute = H5Acreate2(location, name, type, space, H5.defaultPropertyList, H5.defaultPropertyList)
        guard attribute >= 0 else { throw failure(where_) }
        defer { _ = H5Aclose(attribute) }
        let cStrings = values.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        guard cStrings.allSatisfy({ $0 != nil }) else {
            throw .writeFailed(path: path, object: where_, detail: "out of memory")
        }
        let status = cStrings.withUnsafeBytes { buffer in H5Awrite(attribute, type, buffer.baseAddress) }
        guard status >= 0 else { throw failure(where_) }
    }

    private func writeFixedStrings(_ location: hid_t, object: String, name: String, values: [String], itemSize: Int) throws(HDF5Error) {
        let where_ = object + "@" + name
        let type = H5Tcopy(H5T_C_S1_g)
        guard type >= 0 else { throw failure(where_) }
        defer { _ = H5Tclose(type) }
        let isASCII = values.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
        guard H5Tset_size(type, itemSize) >= 0, H5Tset_strpad(type, H5T_STR_NULLPAD) >= 0,
              H5Tset_cset(type, isASCII ? H5T_CSET_ASCII : H5T_CSET_UTF8) >= 0 else { throw failure(where_) }
        var dims = [hsize_t(values.count)]
        let space = H5Screate_simple(1, &dims, nil)
        guard space >= 0 else { throw failure(where_) }
        defer { _ = H5Sclose(space) }
        let attribute = H5Acreate2(location, name, type, space, H5.defaultPropertyList, H5.defaultPropertyList)
        guard attribute >= 0 else { throw failure(where_) }
        defer { _ = H5Aclose(attribute) }
        var bytes = [UInt8](repeating: 0, count: values.count * itemSize)
        for (index, value) in values.enumerated() {
            for (offset, byte) in value.utf8.enumerated() { bytes[index * itemSize + offset] = byte }
        }
        let status = bytes.withUnsafeBytes { buffer in H5Awrite(attribute, type, buffer.baseAddress) }
        guard status >= 0 else { throw failure(where_) }
    }
}
