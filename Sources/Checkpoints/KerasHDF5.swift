@preconcurrency import CHDF5
import Foundation
import Tensors

/// TF/Keras HDF5 weight files (`tf_model.h5`, `model.save_weights("….h5")`).
///
/// The layout, as tf-keras 2.x `save_weights_to_hdf5_group` writes it:
///
/// - root attribute `layer_names`: one string per layer (variable- or fixed-length strings; when the list is
///   larger than 64 KiB Keras splits it into `layer_names0`, `layer_names1`, …);
/// - root attributes `backend` and `keras_version`: scalar strings;
/// - one group per layer, named after the layer, with attribute `weight_names`: the layer's weight names
///   in order; each weight name is a dataset path relative to that group
///   (layer `transformer`, weight `tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/weight:0` →
///   dataset `/transformer/tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/weight:0`);
/// - group `top_level_model_weights` (not in `layer_names`), normally with an empty `weight_names`.
///
/// Nothing here knows model names: weights keep their names as stored.
public enum KerasHDF5 {
    /// One named weight of a layer.
    public struct Weight: Sendable {
        /// The name as stored in `weight_names`, a dataset path relative to the layer group.
        public var name: String
        /// The weight's values (F16, F32 or F64; shape as stored, e.g. (1, n) for TF's Conv1D biases).
        public var tensor: Tensor

        /// A weight named `name` (a dataset path relative to its layer group).
        public init(name: String, tensor: Tensor) {
            self.name = name
            self.tensor = tensor
        }
    }

    /// One Keras layer: a root group and its ordered weights.
    public struct Layer: Sendable {
        /// The layer (and group) name as listed in `layer_names`.
        public var name: String
        /// The layer's weights in `weight_names` order.
        public var weights: [Weight]

        /// A layer named `name` with `weights` in order.
        public init(name: String, weights: [Weight]) {
            self.name = name
            self.weights = weights
        }
    }

    /// The whole content of a Keras weight file, with its layer structure.
    public struct WeightFile: Sendable {
        /// Layers in `layer_names` order.
        public var layers: [Layer]
        /// Weights of the `top_level_model_weights` group (empty in files TF writes for models whose
        /// weights all belong to layers).
        public var topLevelWeights: [Weight]
        /// Scalar string attributes on the root group other than `layer_names` (`backend`, `keras_version`).
        public var attributes: [String: String]

        /// A file of `layers`, with tf-keras's root attributes unless given.
        public init(layers: [Layer], topLevelWeights: [Weight] = [], attributes: [String: String] = KerasHDF5.defaultAttributes) {
            self.layers = layers
            self.topLevelWeights = topLevelWeights
            self.attributes = attributes
        }

        /// All weights keyed by their stored names, layer by layer in file order, then the top-level weights;
        /// `attributes` become the metadata.
        ///
        /// Names are unique in files this module reads or writes (the reader refuses duplicates).
        public var stateDict: StateDict {
            var dict = StateDict()
            dict.metadata = attributes
            for layer in layers {
                for weight in layer.weights { dict[weight.name] = weight.tensor }
            }
            for weight in topLevelWeights { dict[weight.name] = weight.tensor }
            return dict
        }
    }

    /// The root attributes tf-keras 2.18 writes: `backend` = `tensorflow`, `keras_version` = `2.18.0`.
    public static let defaultAttributes: [String: String] = ["backend": "tensorflow", "keras_version": "2.18.0"]

    /// Name of the group Keras writes for weights that belong to no layer.
    public static let topLevelGroupName = "top_level_model_weights"

    /// Keras' limit on one attribute's size (`HDF5_OBJECT_HEADER_LIMIT`); longer name lists are split.
    static let objectHeaderLimit = 64512
}

// MARK: - libhdf5 access

/// libhdf5 (the serial build) is not thread-safe: every call into it holds this lock.
private let libraryLock = NSLock()

extension KerasHDF5 {
    /// Runs `body` holding the lock that serializes all libhdf5 calls in the process, with libhdf5 initialized,
    /// its automatic error printing turned off and its filter plugins disabled (a file must not make it load
    /// code). Code in this package that calls libhdf5 directly (tests building bad files) must go through here.
    package static func withLibraryLock<R>(_ body: () throws -> R) rethrows -> R {
        libraryLock.lock()
        defer { libraryLock.unlock() }
        _ = H5open()
        _ = H5Eset_auto2(hid_t(H5E_DEFAULT), nil, nil)
        _ = H5PLset_loading_state(0)
        return try body()
    }
}

/// Constants that libhdf5 defines as macros Swift cannot import.
enum H5 {
    static let defaultPropertyList = hid_t(H5P_DEFAULT)
    static let all = hid_t(0) // H5S_ALL
    static let accessReadOnly: UInt32 = 0x0000 // H5F_ACC_RDONLY
    static let accessExclusive: UInt32 = 0x0004 // H5F_ACC_EXCL
    static let variableSize = Int(bitPattern: UInt(bitPattern: -1)) // H5T_VARIABLE, (size_t)-1

    /// The innermost messages on libhdf5's error stack, then clears it. Call holding the library lock.
    static func errorDetail() -> String {
        final class Messages { var items: [String] = [] }
        let messages = Messages()
        let box = Unmanaged.passRetained(messages)
        defer { box.release() }
        _ = H5Ewalk2(hid_t(H5E_DEFAULT), H5E_WALK_DOWNWARD, { _, description, clientData in
            guard let description, let clientData else { return 0 }
            let messages = Unmanaged<Messages>.fromOpaque(clientData).takeUnretainedValue()
            if let text = description.pointee.desc, messages.items.count < 3 {
                messages.items.append(String(cString: text))
            }
            return 0
        }, box.toOpaque())
        _ = H5Eclear2(hid_t(H5E_DEFAULT))
        let text = messages.items.filter { !$0.isEmpty }.joined(separator: "; ")
        return text.isEmpty ? "libhdf5 call failed" : "libhdf5: " + text.lowercased()
    }
}
