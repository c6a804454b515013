extension ModelIO {
    /// The Keras layer that holds every GPT-2 weight in files `TFGPT2LMHeadModel.save_pretrained` writes.
    static let kerasLayerName = "transformer"

    /// Writes TF-named GPT-2 weights as a Keras HDF5 file with the layout transformers' TF models save.
    static func writeKerasHDF5(_ dict: StateDict, to path: String) throws {
        try KerasHDF5.write(dict, layerName: kerasLayerName, to: path)
    }
}
