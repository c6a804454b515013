extension ModelIO {
    /// Writes TF-named GPT-2 weights as a Keras HDF5 file.
    static func writeKerasHDF5(_ dict: StateDict, to path: String) throws {
        throw ModelLoadError.cannotWrite(path: path, reason: "hdf5 export lands with the HDF5 writer")
    }
}
