@preconcurrency import CHDF5
import Checkpoints
import Foundation
import Tensors
import Testing
import TestSupport

@Suite("TF/Keras HDF5")
struct HDF5Tests {
    static let fixture = Fixtures.path("micro-gpt2/tf_model.h5")

    /// Maps a TF GPT-2 weight name to its Hugging Face name (test-only; `Checkpoints` knows no model names):
    /// `tfgpt2lm_head_model/transformer/h_._0/ln_1/gamma:0` → `transformer.h.0.ln_1.weight`.
    static func huggingFaceName(_ tfName: String) -> String {
        var parts = tfName.split(separator: "/").dropFirst().map(String.init) // drop the model scope
        if var last = parts.last, last.hasSuffix(":0") {
            last.removeLast(2)
            parts[parts.count - 1] = ["gamma": "weight", "beta": "bias", "embeddings": "weight"][last] ?? last
        }
        return parts.map { $0.hasPrefix("h_._") ? "h." + $0.dropFirst(4) : $0 }.joined(separator: ".")
    }

    @Test func readsFixtureMatchingGoldens() throws {
        let file = try KerasHDF5.readWeightFile(path: Self.fixture)
        #expect(file.layers.map(\.name) == ["transformer"])
        #expect(file.topLevelWeights.isEmpty)
        #expect(file.attributes == ["backend": "tensorflow", "keras_version": "2.18.0"])

        let dict = try KerasHDF5.read(path: Self.fixture)
        #expect(dict.metadata["backend"] == "tensorflow")
        #expect(dict.names.first == "tfgpt2lm_head_model/transformer/wte/embeddings:0")
        #expect(dict["tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/weight:0"]?.shape == [24, 72])
        #expect(dict["tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/bias:0"]?.shape == [1, 72])

        let goldens = try #require(try Fixtures.json("micro-gpt2/goldens.json") as? [String: Any])
        let params = try #require(goldens["params"] as? [String: [String: Any]])
        var matched = Set<String>()
        for (name, tensor) in dict {
            #expect(tensor.dtype == .f32, "\(name)")
            let hfName = Self.huggingFaceName(name)
            let golden = try #require(params[hfName], "no golden for \(name) → \(hfName)")
            matched.insert(hfName)
            let stats = TensorStatistics(tensor)
            #expect(stats.elementCount == golden["numel"] as? Int, "\(hfName) numel")
            // Same float32 values; only the summation order differs (numpy pairwise vs sequential), ~1e-15.
            expectClose(stats.sum, try #require(golden["sum"] as? Double), rtol: 1e-9, atol: 1e-9, "\(hfName) sum")
            expectClose(stats.l2, try #require(golden["l2"] as? Double), rtol: 1e-9, "\(hfName) l2")
            let first = try #require(golden["first"] as? [Double])
            // The goldens' first values are float32 weights printed through float64 arithmetic and differ from the
            // exact float32 values in the 17th digit (e.g. -0.0748551934957504 vs -0.07485519349575043), so
            // compare them exactly as Float.
            #expect(stats.first.prefix(first.count).map(Float.init) == first.map(Float.init), "\(hfName) first values")
        }
        #expect(matched == Set(params.keys))
        #expect(dict.count == 28)
    }

    @Test func roundTripIsBitIdentical() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = try KerasHDF5.readWeightFile(path: Self.fixture)
        let path = directory + "/tf_model.h5"
        try KerasHDF5.write(original, to: path)
        let copy = try KerasHDF5.readWeightFile(path: path)
        expectSameContents(copy, original)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["tf_model.h5"])
    }

    @Test func roundTripsDTypesScalarsEmptyLayersAndTopLevelWeights() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let values: [Float] = [1, -2.5, 0.333, 65504, 1e-7, -0.0]
        let file = KerasHDF5.WeightFile(
            layers: [
                .init(name: "dense", weights: [
                    .init(name: "model/dense/kernel:0", tensor: Tensor(floats: values, shape: [2, 3]).converted(to: .f16)),
                    .init(name: "model/dense/bias:0", tensor: Tensor(floats: values, shape: [6]).converted(to: .f64)),
                    .init(name: "model/dense/scale:0", tensor: Tensor(floats: [3.5], shape: [])),
                    .init(name: "model/dense/nothing:0", tensor: Tensor(zeros: .f32, shape: [0, 4])),
                ]),
                .init(name: "dropout", weights: []),
            ],
            topLevelWeights: [.init(name: "step:0", tensor: Tensor(floats: [7], shape: [1]))],
            attributes: ["backend": "tensorflow", "keras_version": "2.18.0", "note": "ünïcode"])
        let path = directory + "/weights.h5"
        try KerasHDF5.write(file, to: path)
        let copy = try KerasHDF5.readWeightFile(path: path)
        expectSameContents(copy, file)
        #expect(try KerasHDF5.read(path: path).names.last == "step:0")
    }

    @Test func longLayerNameListsAreChunkedAndReadBack() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // 300 names of 250 bytes exceed Keras' 64512-byte attribute limit: written as layer_names0, layer_names1.
        let layers = (0..<300).map { index in
            KerasHDF5.Layer(name: String(format: "layer%04d_", index) + String(repeating: "x", count: 240),
                            weights: [.init(name: "w\(index):0", tensor: Tensor(floats: [Float(index)], shape: [1]))])
        }
        let file = KerasHDF5.WeightFile(layers: layers)
        let path = directory + "/many.h5"
        try KerasHDF5.write(file, to: path)
        try KerasHDF5.withLibraryLock {
            let id = H5Fopen(path, 0, hid_t(H5P_DEFAULT))
            try #require(id >= 0)
            defer { _ = H5Fclose(id) }
            #expect(H5Aexists(id, "layer_names") == 0)
            #expect(H5Aexists(id, "layer_names0") > 0)
            #expect(H5Aexists(id, "layer_names1") > 0)
        }
        expectSameContents(try KerasHDF5.readWeightFile(path: path), file)
    }

    @Test func writeReplacesAtomicallyAndKeepsOldFileOnFailure() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/tf_model.h5"
        let first = KerasHDF5.WeightFile(layers: [.init(name: "a", weights: [.init(name: "a/w:0", tensor: Tensor(floats: [1], shape: [1]))])])
        try KerasHDF5.write(first, to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        // Fails inside libhdf5: "x" is a dataset, so "x/y" cannot be created below it.
        let clash = KerasHDF5.WeightFile(layers: [.init(name: "b", weights: [
            .init(name: "x", tensor: Tensor(floats: [1], shape: [1])),
            .init(name: "x/y", tensor: Tensor(floats: [2], shape: [1])),
        ])])
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.write(clash, to: path) }
        guard case .writeFailed(path, "/b/x/y", _) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(error.description.hasPrefix(path + ": cannot write '/b/x/y'"))

        // Refused before writing.
        let bf16 = KerasHDF5.WeightFile(layers: [.init(name: "c", weights: [
            .init(name: "c/w:0", tensor: Tensor(floats: [1], shape: [1]).converted(to: .bf16)),
        ])])
        #expect(throws: HDF5Error.unsupportedDType(path: path, weight: "c/w:0", dtype: .bf16)) {
            try KerasHDF5.write(bf16, to: path)
        }

        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["tf_model.h5"])
    }

    @Test func writerRefusesBadNamesBeforeWriting() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/bad.h5"
        let one = Tensor(floats: [1], shape: [1])
        let cases: [([KerasHDF5.Layer], HDF5Error)] = [
            ([.init(name: "a", weights: [.init(name: "w:0", tensor: one)]), .init(name: "b", weights: [.init(name: "w:0", tensor: one)])],
             .duplicateWeight(path: path, name: "w:0")),
            ([.init(name: "a/b", weights: [])], .invalidName(path: path, name: "a/b", reason: "not a layer group name")),
            ([.init(name: "a", weights: []), .init(name: "a", weights: [])], .invalidName(path: path, name: "a", reason: "layer appears twice")),
            ([.init(name: "top_level_model_weights", weights: [])],
             .invalidName(path: path, name: "top_level_model_weights", reason: "reserved for top-level weights")),
            ([.init(name: "a", weights: [.init(name: "x//w:0", tensor: one)])], .invalidName(path: path, name: "x//w:0", reason: "not a relative dataset path")),
            ([.init(name: "a", weights: [.init(name: "/w:0", tensor: one)])], .invalidName(path: path, name: "/w:0", reason: "not a relative dataset path")),
            ([.init(name: "a", weights: [.init(name: "i", tensor: Tensor(zeros: .i64, shape: [2]))])],
             .unsupportedDType(path: path, weight: "i", dtype: .i64)),
        ]
        for (layers, expected) in cases {
            #expect(throws: expected) { try KerasHDF5.write(KerasHDF5.WeightFile(layers: layers), to: path) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    // MARK: bad input

    @Test func refusesAFileThatIsNotHDF5() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/not.h5"
        try Data("PK\u{3}\u{4} this is not hdf5".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: HDF5Error.notHDF5(path: path)) { try KerasHDF5.read(path: path) }
        #expect(HDF5Error.notHDF5(path: path).description == "\(path): not an hdf5 file")

        let missing = directory + "/missing.h5"
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.read(path: missing) }
        #expect(error == .cannotOpen(path: missing, reason: "no such file or directory"))
    }

    @Test func refusesATruncatedFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.fixture))
        for fraction in [2, 10] {
            let path = directory + "/truncated\(fraction).h5"
            try bytes.prefix(bytes.count / fraction).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: HDF5Error.self) { try KerasHDF5.read(path: path) }
            #expect(error.path == path)
            #expect(error.description.hasPrefix(path + ": "), "\(error)")
        }
    }

    @Test func refusesAFileWithoutLayerNames() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/no-layer-names.h5"
        try KerasHDF5.withLibraryLock {
            let id = H5Fcreate(path, 0x0002 /* H5F_ACC_TRUNC */, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
            try #require(id >= 0)
            let group = H5Gcreate2(id, "transformer", hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
            try #require(group >= 0)
            #expect(H5Gclose(group) >= 0)
            #expect(H5Fclose(id) >= 0)
        }
        #expect(throws: HDF5Error.missingAttribute(path: path, object: "/", attribute: "layer_names")) {
            try KerasHDF5.read(path: path)
        }
        #expect(HDF5Error.missingAttribute(path: path, object: "/", attribute: "layer_names").description
            == "\(path): attribute 'layer_names' missing on '/'")
    }

    @Test func refusesAWeightNameWithoutDataset() throws {
        let path = try Self.editedFile("missing-dataset.h5") { id in
            #expect(H5Ldelete(id, "/layer/scope/b:0", hid_t(H5P_DEFAULT)) >= 0)
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: HDF5Error.missingDataset(path: path, dataset: "/layer/scope/b:0")) { try KerasHDF5.read(path: path) }
        #expect(HDF5Error.missingDataset(path: path, dataset: "/layer/scope/b:0").description
            == "\(path): dataset '/layer/scope/b:0' missing")
    }

    @Test func refusesANonFloatDataset() throws {
        let path = try Self.editedFile("int-dataset.h5") { id in
            #expect(H5Ldelete(id, "/layer/scope/b:0", hid_t(H5P_DEFAULT)) >= 0)
            try Self.createDataset(id, "/layer/scope/b:0", type: H5T_STD_I32LE_g, dims: [3])
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: HDF5Error.unsupportedElementType(path: path, dataset: "/layer/scope/b:0", type: "integer of 4 bytes")) {
            try KerasHDF5.read(path: path)
        }
    }

    @Test func refusesADatasetLargerThanTheFile() throws {
        // A never-written contiguous dataset of 4 TiB: libhdf5 would hand back fill values; we must not allocate.
        let path = try Self.editedFile("huge-dataset.h5") { id in
            #expect(H5Ldelete(id, "/layer/scope/b:0", hid_t(H5P_DEFAULT)) >= 0)
            try Self.createDataset(id, "/layer/scope/b:0", type: H5T_IEEE_F32LE_g, dims: [1 << 20, 1 << 20])
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.read(path: path) }
        guard case .sizeExceedsFile(path, "/layer/scope/b:0", 1 << 42, _) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
    }

    @Test func refusesADatasetStoredInAnExternalFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = directory + "/secret.bin"
        try Data(repeating: 0x41, count: 12).write(to: URL(fileURLWithPath: secret))
        let path = try Self.editedFile("external.h5") { id in
            #expect(H5Ldelete(id, "/layer/scope/b:0", hid_t(H5P_DEFAULT)) >= 0)
            let plist = H5Pcreate(H5P_CLS_DATASET_CREATE_ID_g)
            try #require(plist >= 0)
            defer { _ = H5Pclose(plist) }
            #expect(H5Pset_external(plist, secret, 0, 12) >= 0)
            let dims: [hsize_t] = [3]
            let space = H5Screate_simple(1, dims, nil)
            try #require(space >= 0)
            defer { _ = H5Sclose(space) }
            let dataset = H5Dcreate2(id, "/layer/scope/b:0", H5T_IEEE_F32LE_g, space, hid_t(H5P_DEFAULT), plist, hid_t(H5P_DEFAULT))
            try #require(dataset >= 0)
            #expect(H5Dclose(dataset) >= 0)
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: HDF5Error.unsupportedStorage(path: path, dataset: "/layer/scope/b:0", reason: "data stored in external files")) {
            try KerasHDF5.read(path: path)
        }
    }

    // MARK: helpers

    /// Writes a small valid file (layer `layer`, weights `scope/a:0`, `scope/b:0`) in a new temporary directory,
    /// then lets `edit` change it through libhdf5.
    static func editedFile(_ name: String, _ edit: (hid_t) throws -> Void) throws -> String {
        let path = try Fixtures.temporaryDirectory() + "/" + name
        let file = KerasHDF5.WeightFile(layers: [.init(name: "layer", weights: [
            .init(name: "scope/a:0", tensor: Tensor(floats: [1, 2], shape: [2])),
            .init(name: "scope/b:0", tensor: Tensor(floats: [3, 4, 5], shape: [3])),
        ])])
        try KerasHDF5.write(file, to: path)
        #expect(try KerasHDF5.read(path: path).count == 2)
        try KerasHDF5.withLibraryLock {
            let id = H5Fopen(path, 0x0001 /* H5F_ACC_RDWR */, hid_t(H5P_DEFAULT))
            try #require(id >= 0)
            defer { _ = H5Fclose(id) }
            try edit(id)
        }
        return path
    }

    static func createDataset(_ location: hid_t, _ name: String, type: hid_t, dims: [hsize_t]) throws {
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        try #require(space >= 0)
        defer { _ = H5Sclose(space) }
        let dataset = H5Dcreate2(location, name, type, space, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
        try #require(dataset >= 0)
        #expect(H5Dclose(dataset) >= 0)
    }
}

/// Expects the same layers, weight names, bit-identical tensors and attributes.
func expectSameContents(_ actual: KerasHDF5.WeightFile, _ expected: KerasHDF5.WeightFile,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.attributes == expected.attributes, sourceLocation: sourceLocation)
    #expect(actual.layers.map(\.name) == expected.layers.map(\.name), sourceLocation: sourceLocation)
    let pairs = zip(actual.layers.map(\.weights) + [actual.topLevelWeights],
                    expected.layers.map(\.weights) + [expected.topLevelWeights])
    for (actualWeights, expectedWeights) in pairs {
        #expect(actualWeights.map(\.name) == expectedWeights.map(\.name), sourceLocation: sourceLocation)
        for (a, e) in zip(actualWeights, expectedWeights) {
            #expect(a.tensor.isBitwiseEqual(to: e.tensor),
                    "\(a.name): \(a.tensor.dtype) \(a.tensor.shape) vs \(e.tensor.dtype) \(e.tensor.shape)",
                    sourceLocation: sourceLocation)
        }
    }
}
