import Tensors

/// A TF/Keras HDF5 weight file could not be read or written.
///
/// Every case carries the file path and the HDF5 object (group, dataset or attribute) it is about.
/// `description` is the one place the message text is written.
public enum HDF5Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file does not exist or cannot be opened for reading.
    case cannotOpen(path: String, reason: String)
    /// The file is not an HDF5 file (no HDF5 superblock).
    case notHDF5(path: String)
    /// A required attribute is absent, e.g. `layer_names` on `/`.
    case missingAttribute(path: String, object: String, attribute: String)
    /// An attribute exists but is not what Keras writes (not a string array, wrong rank, …).
    case invalidAttribute(path: String, object: String, attribute: String, reason: String)
    /// A layer listed in `layer_names` has no group.
    case missingGroup(path: String, group: String)
    /// A weight listed in a layer's `weight_names` has no dataset.
    case missingDataset(path: String, dataset: String)
    /// A dataset's element type is not IEEE float16, float32 or float64.
    case unsupportedElementType(path: String, dataset: String, type: String)
    /// A dataset's dataspace is not a simple array of sane rank and size.
    case invalidShape(path: String, dataset: String, reason: String)
    /// A dataset is stored outside the file (external raw files, virtual datasets), which the reader refuses
    /// so that a weight file cannot make it read other files.
    case unsupportedStorage(path: String, dataset: String, reason: String)
    /// A dataset claims more bytes than the file can hold.
    case sizeExceedsFile(path: String, dataset: String, byteCount: Int, fileSize: Int)
    /// The weights read so far, up to and including `dataset`, total more bytes than the file can back (for
    /// example one dataset hard-linked under many weight names).
    case totalSizeExceedsFile(path: String, dataset: String, totalBytes: Int, limit: Int)
    /// The same weight name appears twice.
    case duplicateWeight(path: String, name: String)
    /// A libhdf5 call failed while reading `object`.
    case readFailed(path: String, object: String, detail: String)
    /// A libhdf5 or file-system call failed while writing `object`.
    case writeFailed(path: String, object: String, detail: String)
    /// The writer was given a tensor whose dtype it does not write (only F16, F32, F64).
    case unsupportedDType(path: String, weight: String, dtype: DType)
    /// The writer was given a layer or weight name that cannot be an HDF5 path.
    case invalidName(path: String, name: String, reason: String)
    /// A link on the way to `link` is external (it names another file) or user-defined; the reader follows
    /// only hard links, so that a weight file cannot make libhdf5 open other files.
    case unsupportedLink(path: String, link: String, kind: String)
    /// libhdf5, running in the helper process, was killed by `signal` (11 is a segmentation fault; a signal
    /// can also mean the helper hit its memory limit).
    case crashed(path: String, operation: Operation, signal: Int32)
    /// The weights read so far, up to and including `dataset`, need more than the `budget` bytes the helper's
    /// memory limit leaves for them (compressed datasets can expand up to 1100 times); raise
    /// `KerasHDF5.IsolationOptions.memoryLimit` to read the file.
    case memoryLimitExceeded(path: String, dataset: String, totalBytes: Int, budget: Int)
    /// libhdf5, running in the helper process, did not finish within the wall-clock limit and was killed.
    case timedOut(path: String, operation: Operation, seconds: Double)
    /// The helper process that runs libhdf5 could not be found or started.
    case helperUnavailable(path: String, reason: String)
    /// The helper process broke its protocol: an unexpected exit status, or output our own checks refuse.
    case helperFailed(path: String, operation: Operation, detail: String)

    /// What libhdf5 was doing with the file when it failed.
    public enum Operation: String, Sendable, Equatable {
        /// Reading the weights.
        case reading
        /// Writing the weights.
        case writing
    }

    /// The message `gpt2kit` prints, starting with the path and naming the HDF5 object.
    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open file: \(reason)"
        case let .notHDF5(path):
            return "\(path): not an hdf5 file"
        case let .missingAttribute(path, object, attribute):
            return "\(path): attribute '\(attribute)' missing on '\(object)'"
        case let .invalidAttribute(path, object, attribute, reason):
            return "\(path): attribute '\(attribute)' on '\(object)': \(reason)"
        case let .missingGroup(path, group):
            return "\(path): group '\(group)' missing"
        case let .missingDataset(path, dataset):
            return "\(path): dataset '\(dataset)' missing"
        case let .unsupportedElementType(path, dataset, type):
            return "\(path): dataset '\(dataset)': unsupported element type \(type) (expected ieee float16, float32 or float64)"
        case let .invalidShape(path, dataset, reason):
            return "\(path): dataset '\(dataset)': \(reason)"
        case let .unsupportedStorage(path, dataset, reason):
            return "\(path): dataset '\(dataset)': \(reason)"
        case let .sizeExceedsFile(path, dataset, byteCount, fileSize):
            return "\(path): dataset '\(dataset)': claims \(byteCount) bytes, more than the file's \(fileSize)"
        case let .totalSizeExceedsFile(path, dataset, total, limit):
            return "\(path): dataset '\(dataset)': weights total \(total) bytes with it, more than the \(limit) bytes the file can hold"
        case let .duplicateWeight(path, name):
            return "\(path): weight '\(name)' appears twice"
        case let .readFailed(path, object, detail):
            return "\(path): cannot read '\(object)': \(detail)"
        case let .writeFailed(path, object, detail):
            return "\(path): cannot write '\(object)': \(detail)"
        case let .unsupportedDType(path, weight, dtype):
            return "\(path): weight '\(weight)': dtype \(dtype.rawValue) not written to hdf5 (only F16, F32, F64)"
        case let .invalidName(path, name, reason):
            return "\(path): name '\(name)': \(reason)"
        case let .unsupportedLink(path, link, kind):
            return "\(path): link '\(link)': \(kind) links are refused (only hard links inside the file are followed)"
        case let .memoryLimitExceeded(path, dataset, total, budget):
            return "\(path): dataset '\(dataset)': weights total \(total) bytes with it, more than the \(budget) bytes the hdf5 helper's memory limit leaves"
        case let .crashed(path, operation, signal):
            return "\(path): libhdf5 crashed (signal \(signal)) \(operation.rawValue) the file"
        case let .timedOut(path, operation, seconds):
            return "\(path): libhdf5 did not finish \(operation.rawValue) the file within \(Self.formatted(seconds)) s and was stopped"
        case let .helperUnavailable(path, reason):
            return "\(path): cannot run the hdf5 helper: \(reason)"
        case let .helperFailed(path, operation, detail):
            return "\(path): the hdf5 helper failed \(operation.rawValue) the file: \(detail)"
        }
    }

    /// The file the error is about.
    public var path: String {
        switch self {
        case let .cannotOpen(path, _), let .notHDF5(path), let .missingAttribute(path, _, _),
             let .invalidAttribute(path, _, _, _), let .missingGroup(path, _), let .missingDataset(path, _),
             let .unsupportedElementType(path, _, _), let .invalidShape(path, _, _), let .unsupportedStorage(path, _, _),
             let .sizeExceedsFile(path, _, _, _), let .totalSizeExceedsFile(path, _, _, _), let .duplicateWeight(path, _), let .readFailed(path, _, _),
             let .writeFailed(path, _, _), let .unsupportedDType(path, _, _), let .invalidName(path, _, _),
             let .unsupportedLink(path, _, _), let .memoryLimitExceeded(path, _, _, _), let .crashed(path, _, _), let .timedOut(path, _, _),
             let .helperUnavailable(path, _), let .helperFailed(path, _, _):
            return path
        }
    }

    /// Seconds with at most one decimal, without a trailing `.0`.
    private static func formatted(_ seconds: Double) -> String {
        let tenths = (seconds * 10).rounded()
        guard tenths.isFinite, abs(tenths) < 1e15 else { return String(seconds) }
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? String(Int(tenths / 10)) : String(tenths / 10)
    }
}
