import Foundation
import Tensors

extension KerasHDF5 {
    /// How the helper process that runs libhdf5 is found and limited (see `HDF5Helper` for the protocol).
    ///
    /// Reading and writing HDF5 run libhdf5 in the separate executable `gpt2kit-hdf5`, built with the package,
    /// so that a hostile file that crashes or hangs libhdf5 gives an `HDF5Error` instead of taking the
    /// process down. Limits left nil scale with the bytes involved: the file's size when reading, the
    /// tensors' total when writing.
    public struct IsolationOptions: Sendable {
        /// The helper executable. Nil searches `$GPT2KIT_HDF5_HELPER`, then `gpt2kit-hdf5` next to the
        /// running executable, then PATH.
        public var helperPath: String?
        /// Wall-clock limit, after which the helper is killed (`HDF5Error.timedOut`). Nil: 30 s plus 60 s per
        /// GiB.
        public var timeout: Duration?
        /// The helper's address-space limit (RLIMIT_AS) in bytes. Weights that would not fit in it less a 256 MiB
        /// reserve are refused before they are allocated (`HDF5Error.memoryLimitExceeded`); any other allocation
        /// past it crashes the helper (`HDF5Error.crashed`). Nil: 1 GiB plus 3 bytes per byte.
        public var memoryLimit: Int?
        /// The helper's file-size limit (RLIMIT_FSIZE) in bytes, with SIGXFSZ ignored so that writes past it fail
        /// as on a full disk; tests use it.
        package var fileSizeLimit: Int?

        /// Options with the given limits; nil ones are found or scaled as described above.
        public init(helperPath: String? = nil, timeout: Duration? = nil, memoryLimit: Int? = nil) {
            self.helperPath = helperPath
            self.timeout = timeout
            self.memoryLimit = memoryLimit
        }

        /// Seconds the helper may run for `byteCount` bytes.
        public func timeoutSeconds(forByteCount byteCount: Int) -> Double {
            if let timeout {
                let (seconds, attoseconds) = timeout.components
                return Double(seconds) + Double(attoseconds) / 1e18
            }
            return 30 + 60 * Double(byteCount) / Double(1 << 30)
        }

        /// The helper's address-space limit for `byteCount` bytes.
        public func memoryLimit(forByteCount byteCount: Int) -> Int {
            if let memoryLimit { return memoryLimit }
            let (scaled, overflow) = max(byteCount, 0).multipliedReportingOverflow(by: 3)
            let (total, sumOverflow) = scaled.addingReportingOverflow(1 << 30)
            return overflow || sumOverflow ? Int.max : total
        }
    }

    /// Reads every weight of a Keras HDF5 file into a `StateDict`.
    ///
    /// Keys are the weight names as stored (`tfgpt2lm_head_model/transformer/wte/embeddings:0`), in file order:
    /// layers in `layer_names` order, each layer's weights in `weight_names` order, then any weights of
    /// `top_level_model_weights`. Datasets keep their dtype (F16, F32 or F64). The root string attributes
    /// (`backend`, `keras_version`) become `metadata`. libhdf5 runs in the helper process; see
    /// `readWeightFile(path:options:)`.
    ///
    /// - Throws: `HDF5Error` naming the file and the object at fault.
    public static func read(path: String, options: IsolationOptions = IsolationOptions()) throws -> StateDict {
        try readWeightFile(path: path, options: options).stateDict
    }

    /// Reads a Keras HDF5 weight file, keeping its layer structure and root attributes.
    ///
    /// libhdf5 runs in the helper process `gpt2kit-hdf5` under the limits of `options`; what it returns is
    /// checked again here (`SafetensorsReader` and the layer structure) before anything is built from it.
    ///
    /// - Throws: `HDF5Error` when the file is missing, is not HDF5, is truncated, lacks `layer_names` or a
    ///   layer's `weight_names`, names a missing group or dataset, reaches an object through a link other than
    ///   a hard link (external links would open other files), holds an element type other than IEEE
    ///   float16/32/64, repeats a weight name, keeps data in external files, or claims more data than the file
    ///   holds; `crashed` or `timedOut` when libhdf5 crashes or hangs on it; `helperUnavailable` when the
    ///   helper cannot be found or started.
    public static func readWeightFile(path: String, options: IsolationOptions = IsolationOptions()) throws -> WeightFile {
        try HDF5Helper.read(path: path, options: options)
    }
}
