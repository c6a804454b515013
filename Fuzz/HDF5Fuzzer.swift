// libFuzzer harness: the Keras HDF5 reader (our Swift code around libhdf5) on a scratch file.
// libhdf5 itself is known to crash on some hostile files; such crashes are recorded, not fixed here.
//
// With GPT2KIT_FUZZ_WRITE_SEEDS=<dir> the binary writes a few tiny Keras weight files (made by our own writer)
// into <dir> and exits: `Fuzz/make_seeds.py` has no HDF5 library to make them with.
@testable import Checkpoints
import CHDF5
import Tensors
#if canImport(Glibc)
import Glibc
#endif

private let scratch = FuzzSupport.scratchPath("hdf5", suffix: ".h5")

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>,
                       _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard let env = getenv("GPT2KIT_FUZZ_WRITE_SEEDS") else { return 0 }
    let directory = String(cString: env)
    func tensor(_ dtype: DType, _ dims: [Int]) -> Tensor {
        let shape = Shape(dims)
        let storage = ByteStorage(zeroedByteCount: shape.elementCount * dtype.byteSize)
        let bytes = storage.mutableBytes
        for i in 0 ..< bytes.count { bytes[i] = UInt8(truncatingIfNeeded: i &* 37 &+ 11) }
        return Tensor(dtype: dtype, shape: shape, storage: storage)
    }
    let files: [(String, KerasHDF5.WeightFile)] = [
        ("one-layer.h5", KerasHDF5.WeightFile(layers: [
            KerasHDF5.Layer(name: "dense", weights: [
                KerasHDF5.Weight(name: "dense/kernel:0", tensor: tensor(.f32, [2, 3])),
                KerasHDF5.Weight(name: "dense/bias:0", tensor: tensor(.f32, [3])),
            ]),
        ])),
        ("two-layers-f16.h5", KerasHDF5.WeightFile(layers: [
            KerasHDF5.Layer(name: "wte", weights: [KerasHDF5.Weight(name: "wte/embeddings:0", tensor: tensor(.f16, [4, 2]))]),
            KerasHDF5.Layer(name: "ln_f", weights: [KerasHDF5.Weight(name: "ln_f/gamma:0", tensor: tensor(.f64, [2]))]),
        ], topLevelWeights: [KerasHDF5.Weight(name: "top/scale:0", tensor: tensor(.f32, []))])),
        ("empty-layer.h5", KerasHDF5.WeightFile(layers: [KerasHDF5.Layer(name: "dropout", weights: [])])),
    ]
    for (name, file) in files {
        do { try KerasHDF5.write(file, to: directory + "/" + name) } catch { fatalError("\(name): \(error)") }
    }
    writeFixedStringSeed(directory + "/fixed-strings.h5")
    exit(0)
}

/// A file laid out as h5py writes Keras weights: fixed-length (numpy "S") name lists, one contiguous, one
/// chunked + deflated and one compact dataset. It lets the fuzzer reach dataset reading without going through
/// libhdf5's variable-length string (global heap) code, where it crashes on most mutations.
private func writeFixedStringSeed(_ path: String) {
    KerasHDF5.withLibraryLock {
        let P = hid_t(H5P_DEFAULT)
        let file = H5Fcreate(path, 0x0002 /* H5F_ACC_TRUNC */, P, P)
        precondition(file >= 0, "cannot create \(path)")
        defer { H5Fclose(file) }
        func names(_ location: hid_t, _ name: String, _ values: [String]) {
            let size = max(values.map(\.utf8.count).max() ?? 1, 1)
            let type = H5Tcopy(H5T_C_S1_g)
            H5Tset_size(type, size)
            H5Tset_strpad(type, H5T_STR_NULLPAD)
            var dims = [hsize_t(values.count)]
            let space = H5Screate_simple(1, &dims, nil)
            let attribute = H5Acreate2(location, name, type, space, P, P)
            var bytes = [UInt8](repeating: 0, count: size * values.count)
            for (i, v) in values.enumerated() { bytes.replaceSubrange(i * size ..< i * size + v.utf8.count, with: Array(v.utf8)) }
            precondition(H5Awrite(attribute, type, bytes) >= 0)
            H5Aclose(attribute); H5Sclose(space); H5Tclose(type)
        }
        func dataset(_ group: hid_t, _ name: String, _ dims: [hsize_t], layout: H5D_layout_t) {
            var dims = dims
            let space = H5Screate_simple(Int32(dims.count), &dims, nil)
            let plist = H5Pcreate(H5P_CLS_DATASET_CREATE_ID_g)
            if layout == H5D_CHUNKED {
                H5Pset_chunk(plist, Int32(dims.count), dims)
                H5Pset_deflate(plist, 6)
            } else {
                H5Pset_layout(plist, layout)
            }
            let lcpl = H5Pcreate(H5P_CLS_LINK_CREATE_ID_g)
            H5Pset_create_intermediate_group(lcpl, 1)
            let set = H5Dcreate2(group, name, H5T_IEEE_F32LE_g, space, lcpl, plist, P)
            precondition(set >= 0, "cannot create dataset \(name)")
            let count = dims.reduce(1) { $0 * Int($1) }
            let values = (0 ..< count).map { Float($0) * 0.25 - 1 }
            precondition(H5Dwrite(set, H5T_NATIVE_FLOAT_g, hid_t(0), hid_t(0), P, values) >= 0)
            H5Dclose(set); H5Pclose(lcpl); H5Pclose(plist); H5Sclose(space)
        }
        names(file, "layer_names", ["dense", "ln"])
        names(file, "backend", ["tensorflow"])
        names(file, "keras_version", ["2.18.0"])
        let dense = H5Gcreate2(file, "dense", P, P, P)
        names(dense, "weight_names", ["dense/kernel:0", "dense/bias:0"])
        dataset(dense, "dense/kernel:0", [3, 4], layout: H5D_CHUNKED)
        dataset(dense, "dense/bias:0", [4], layout: H5D_CONTIGUOUS)
        H5Gclose(dense)
        let ln = H5Gcreate2(file, "ln", P, P, P)
        names(ln, "weight_names", ["gamma:0"])
        dataset(ln, "gamma:0", [2], layout: H5D_COMPACT)
        H5Gclose(ln)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    if let file = try? KerasHDF5.readWeightFile(path: scratch) {
        for (_, tensor) in file.stateDict { FuzzSupport.sink ^= tensor.withUnsafeBytes { FuzzSupport.touch($0) } }
    }
    return 0
}
