// libFuzzer harness: the Keras HDF5 reader (our Swift code around libhdf5) on a scratch file.
// libhdf5 itself is known to crash on some hostile files; such crashes are recorded, not fixed here.
//
// With GPT2KIT_FUZZ_WRITE_SEEDS=<dir> the binary writes a few tiny Keras weight files (made by our own writer)
// into <dir> and exits: `Fuzz/make_seeds.py` has no HDF5 library to make them with.
import Checkpoints
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
    exit(0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    if let file = try? KerasHDF5.readWeightFile(path: scratch) {
        for (_, tensor) in file.stateDict { FuzzSupport.sink ^= tensor.withUnsafeBytes { FuzzSupport.touch($0) } }
    }
    return 0
}
