import Foundation

/// The file formats a model can be exported to.
public enum ExportFormat: String, Sendable, CaseIterable, Codable {
    /// `model.safetensors` (`save_pretrained`'s default).
    case safetensors
    /// `pytorch_model.bin`: a `torch.save` zip archive (`save_pretrained(safe_serialization=False)`).
    case pytorch
    /// `tf_model.h5`: Keras HDF5 as transformers' `TFGPT2LMHeadModel.save_pretrained` writes it.
    case h5

    /// The weights file name inside an exported folder.
    public var weightsFileName: String {
        switch self {
        case .safetensors: return "model.safetensors"
        case .pytorch: return "pytorch_model.bin"
        case .h5: return "tf_model.h5"
        }
    }

    /// Guesses the format from an output file name (`.bin`/`.pt` → pytorch, `.h5` → h5, else safetensors).
    public static func guess(fromFileName name: String) -> ExportFormat? {
        if name.hasSuffix(".safetensors") { return .safetensors }
        if name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") { return .pytorch }
        if name.hasSuffix(".h5") || name.hasSuffix(".hdf5") { return .h5 }
        return nil
    }
}

/// Reading and writing whole models: connects the format readers/writers (`Checkpoints`) with the
/// GPT-2 parameter table (`GPT2`) through `StateDict`.
public enum ModelIO {
    /// Reads the weights named by `location` (a single file, or every shard of an index) with their stored names.
    public static func readStateDict(_ location: ModelLocation) throws -> StateDict {
        switch location.weightsKind {
        case .safetensorsIndex, .pytorchIndex: return try ShardedCheckpoint.read(indexPath: location.weightsPath)
        case .gguf: return try GGUFModel.read(path: location.weightsPath).stateDict
        case .llmc: return try LLMCCheckpoint.read(path: location.weightsPath).stateDict
        default: return try CheckpointReader.read(path: location.weightsPath)
        }
    }

    /// Reads the config of `location`.
    public static func readConfig(_ location: ModelLocation) throws -> GPT2Config {
        if location.configPath == nil {
            // Formats that carry their own config.
            if location.weightsKind == .gguf { return try GGUFModel.read(path: location.weightsPath).config }
            if location.weightsKind == .llmc { return try LLMCCheckpoint.read(path: location.weightsPath).config }
        }
        guard let path = location.configPath else { throw ModelLocationError.noConfig(weights: location.weightsPath) }
        let data: Data
        do { data = Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
            throw ConfigError.invalidJSON(path: path, reason: error.reason)
        }
        return try GPT2Config(jsonData: data, path: path)
    }

    /// Throws `InsufficientMemory` unless `floatCopies` float32 copies of the config's parameters fit in what the
    /// machine can give (2 for a model: weights and gradients; 4 to train: also AdamW's two moments).
    public static func checkMemory(for config: GPT2Config, floatCopies: Int, purpose: String) throws {
        let count = config.checkedParameterCount
        let bytes = count.flatMap { MemoryBudget.total([[$0, 4, floatCopies]]) }
        try MemoryBudget.check(bytes: bytes, for: "\(purpose) of a \(count.map(String.init) ?? "too large a")-parameter model")
    }

    /// Loads config and weights (any format, any naming) into model parameters; shapes are checked against the config.
    public static func loadParameters(_ location: ModelLocation) throws -> GPT2Parameters {
        let config = try readConfig(location)
        try config.validate(path: location.configPath)
        return try parameters(config: config, stateDict: try readStateDict(location), location: location)
    }

    /// Model parameters from the weights `dict` read from `location` with its `config`: the memory they need is
    /// checked, then names and shapes are matched against the config.
    public static func parameters(config: GPT2Config, stateDict dict: StateDict, location: ModelLocation) throws -> GPT2Parameters {
        // Weights smaller than the config fail the name/shape check before anything is allocated; otherwise the
        // model's buffers are about to be allocated, so check that they fit.
        if dict.totalElementCount >= config.checkedParameterCount ?? Int.max {
            try checkMemory(for: config, floatCopies: 2, purpose: "the weights and gradients")
        }
        do {
            return try GPT2Parameters(config: config, stateDict: dict)
        } catch {
            throw ModelLoadError.weightsDoNotMatch(weights: location.weightsPath, config: location.configPath ?? "", problem: error)
        }
    }

    /// Loads a model from a folder or weights file (`configPath` overrides the folder's `config.json`), with the
    /// PEFT/gpt2kit adapter of `adapter` applied unmerged when given. The model keeps no base gradients (inference:
    /// half the memory; an adapter still trains); `trainsBase` true allocates them to train every weight.
    public static func loadModel(path: String, configPath: String? = nil, adapter: String? = nil,
                                 trainsBase: Bool = false) throws -> (model: GPT2Model, location: ModelLocation) {
        let location = try ModelLocation(path: path, configPath: configPath)
        let parameters = try loadParameters(location)
        let lora = try adapter.map { try AdapterFiles.read(folder: $0, modelConfig: parameters.config) }
        let trainable: TrainableParameters? = trainsBase ? nil : .none(parameters.layout)
        return (try GPT2Model(parameters: parameters, trainable: trainable, adapter: lora), location)
    }

    /// The base model of `path` with the adapter of `adapter` merged into its weights (PEFT's `merge_and_unload`).
    public static func loadMerged(path: String, configPath: String? = nil, adapter: String) throws -> (parameters: GPT2Parameters, location: ModelLocation) {
        let location = try ModelLocation(path: path, configPath: configPath)
        let parameters = try loadParameters(location)
        let lora = try AdapterFiles.read(folder: adapter, modelConfig: parameters.config)
        lora.merge(into: parameters)
        return (parameters, location)
    }

    /// The tokenizer of a model: the folder `override` when given, the vocabulary embedded in a GGUF file, else the
    /// model's folder.
    public static func loadTokenizer(for location: ModelLocation, override: String? = nil) throws -> GPT2Tokenizer {
        if let override { return try loadTokenizer(folder: override) }
        if location.weightsKind == .gguf { return try GGUFModel.tokenizer(path: location.weightsPath) }
        return try loadTokenizer(folder: location.folder)
    }

    /// The tokenizer files of `folder` to copy into a model folder for a model of `config` (those of
    /// `ModelLocation.tokenizerFileNames` present as regular files). The folder must hold a tokenizer that loads and
    /// whose vocabulary fits the model's `vocab_size`; otherwise this throws (`ModelLocationError`, `TokenizerError`).
    public static func tokenizerFiles(folder: String, for config: GPT2Config) throws -> [String] {
        let tokenizer = try loadTokenizer(folder: folder)
        guard tokenizer.vocabularySize <= config.vocabularySize else {
            throw ModelLocationError.tokenizerDoesNotFit(folder: folder, tokens: tokenizer.vocabularySize, vocabularySize: config.vocabularySize)
        }
        return ModelLocation.tokenizerFileNames.map { folder + "/" + $0 }.filter(InputFile.isRegularFile)
    }

    /// Loads the tokenizer in `folder` (`vocab.json` + `merges.txt`, or `tokenizer.json`).
    public static func loadTokenizer(folder: String) throws -> GPT2Tokenizer {
        let fm = FileManager.default
        let hasPair = fm.fileExists(atPath: folder + "/vocab.json") && fm.fileExists(atPath: folder + "/merges.txt")
        guard hasPair || fm.fileExists(atPath: folder + "/tokenizer.json") else { throw ModelLocationError.noTokenizer(folder: folder) }
        var tokenizer = try GPT2Tokenizer(folder: URL(fileURLWithPath: folder))
        // added_tokens.json (as the slow tokenizer's save_pretrained writes it): {"[PAD]": 50257, ...}
        let addedPath = folder + "/added_tokens.json"
        if !fm.fileExists(atPath: folder + "/tokenizer.json"), fm.fileExists(atPath: addedPath) {
            let data: Data
            do { data = Data(try InputFile.readBytes(addedPath, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
                throw TokenizerError.unreadableFile(path: addedPath, reason: error.reason)
            }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw TokenizerError.invalidJSON(file: addedPath, reason: "not a JSON object of token → id")
            }
            var pairs: [(token: String, id: Int)] = []
            for (token, value) in object {
                guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                      number.doubleValue.rounded() == number.doubleValue, number.doubleValue >= 0, number.doubleValue < 1e9 else {
                    throw TokenizerError.invalidKey(file: addedPath, key: token, expected: "a token id")
                }
                pairs.append((token, number.intValue))
            }
            for (token, id) in pairs.sorted(by: { $0.id < $1.id }) {
                if let existing = tokenizer.tokenID(for: token) {
                    guard existing == id else { throw TokenizerError.invalidKey(file: addedPath, key: token, expected: "id \(existing), as in the vocabulary") }
                    continue
                }
                // Added tokens take the next free ids; the file must agree, or the ids would silently shift.
                guard id == tokenizer.vocabularySize else {
                    throw TokenizerError.invalidKey(file: addedPath, key: token, expected: "the next free id \(tokenizer.vocabularySize)")
                }
                _ = try tokenizer.addTokens([token])
            }
        }
        return tokenizer
    }

    /// The state dict to export in `format`, converted to `dtype`.
    public static func exportStateDict(_ parameters: GPT2Parameters, format: ExportFormat, dtype: DType) -> StateDict {
        let dict: StateDict
        switch format {
        case .safetensors: dict = parameters.stateDict(format: .huggingFace, includeOutputWeight: false)
        case .pytorch: dict = parameters.stateDict(format: .huggingFace, includeOutputWeight: true)
        case .h5: dict = parameters.stateDict(format: .tensorFlow)
        }
        guard dtype != .f32 else { return dict }
        var out = StateDict()
        var converted: [String: Tensor] = [:]
        for (name, t) in dict {
            // Keep tied tensors tied after conversion.
            if name == GPT2Parameters.outputWeightName, let wte = converted["transformer.wte.weight"] { out[name] = wte; continue }
            let c = t.converted(to: dtype)
            converted[name] = c
            out[name] = c
        }
        return out
    }

    /// Writes just the weights file `path` in `format`.
    public static func writeWeights(_ parameters: GPT2Parameters, to path: String, format: ExportFormat, dtype: DType = .f32) throws {
        let dict = exportStateDict(parameters, format: format, dtype: dtype)
        switch format {
        case .safetensors: try SafetensorsWriter.write(dict, to: path, metadata: ["format": "pt"])
        case .pytorch: try TorchCheckpointWriter.write(dict, to: path)
        case .h5: try writeKerasHDF5(dict, to: path)
        }
    }

    /// Writes a complete Hugging Face folder: weights, `config.json`, `generation_config.json` (`generationConfigData`,
    /// else a copy of `generationConfigPath`, else one made from the config's token ids), and the tokenizer files
    /// (`tokenizerFiles` copied, `tokenizerData` written). Returns the paths written.
    @discardableResult
    public static func writeFolder(_ parameters: GPT2Parameters, to folder: String, format: ExportFormat, dtype: DType = .f32,
                                   config configOverride: GPT2Config? = nil,
                                   tokenizerFiles: [String] = [], generationConfigPath: String? = nil,
                                   tokenizerData: [(name: String, data: Data)] = [],
                                   generationConfigData: Data? = nil) throws -> [String] {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw ModelLoadError.cannotWrite(path: folder, reason: error.localizedDescription)
        }
        var written: [String] = []
        let weights = folder + "/" + format.weightsFileName
        try writeWeights(parameters, to: weights, format: format, dtype: dtype)
        written.append(weights)
        try removeOtherWeights(inFolder: folder, keeping: format.weightsFileName)
        var config = configOverride ?? parameters.config
        config.extraKeys["architectures"] = .array([.string(format == .h5 ? "TFGPT2LMHeadModel" : "GPT2LMHeadModel")])
        if dtype != .f32 || config.extraKeys["torch_dtype"] != nil || config.extraKeys["dtype"] != nil {
            let name = dtype == .f16 ? "float16" : dtype == .bf16 ? "bfloat16" : "float32"
            config.extraKeys["torch_dtype"] = .string(name)
            if config.extraKeys["dtype"] != nil { config.extraKeys["dtype"] = .string(name) }
        }
        let configPath = folder + "/config.json"
        try writeAtomically(try config.jsonData(), to: configPath)
        written.append(configPath)
        let generationPath = folder + "/generation_config.json"
        if let generationConfigData {
            try writeAtomically(generationConfigData, to: generationPath)
        } else if let generationConfigPath, let data = try? InputFile.readBytes(generationConfigPath, maximumBytes: InputLimits.maximumConfigBytes) {
            if URL(fileURLWithPath: generationConfigPath).standardized != URL(fileURLWithPath: generationPath).standardized {
                try writeAtomically(Data(data), to: generationPath)
            }
        } else {
            var g: [String: Any] = ["_from_model_config": true]
            if let b = config.bosTokenID { g["bos_token_id"] = b }
            if let e = config.eosTokenID { g["eos_token_id"] = e }
            let data = try JSONSerialization.data(withJSONObject: g, options: [.prettyPrinted, .sortedKeys])
            try writeAtomically(data, to: generationPath)
        }
        written.append(generationPath)
        for source in tokenizerFiles {
            let target = folder + "/" + (source as NSString).lastPathComponent
            if URL(fileURLWithPath: source).standardized == URL(fileURLWithPath: target).standardized { continue }
            let data: [UInt8]
            do { data = try InputFile.readBytes(source, maximumBytes: InputLimits.maximumTokenizerFileBytes) } catch {
                throw ModelLoadError.cannotWrite(path: target, reason: "cannot read \(error)")
            }
            try writeAtomically(Data(data), to: target)
            written.append(target)
        }
        for (name, data) in tokenizerData where ModelLocation.tokenizerFileNames.contains(name) {
            try writeAtomically(data, to: folder + "/" + name)
            written.append(folder + "/" + name)
        }
        return written
    }

    /// Removes weights files of other formats (and sharded indexes with their shards) from `folder`, so that a
    /// folder re-exported in another format is never loaded from its stale weights (loading prefers
    /// safetensors over `.bin` over `.h5`). Called after the new weights file is in place.
    ///
    /// Nothing outside `folder` is ever removed: shard names from an index pass the same check as when reading
    /// (`ShardedCheckpoint.shardPath`; a name that fails it is left alone), only the shard's own directory
    /// entry is unlinked (a symlink, not its target), and folders are never removed.
    static func removeOtherWeights(inFolder folder: String, keeping kept: String) throws {
        for kind in ModelLocation.WeightsKind.folderKinds where kind.fileName != kept {
            let path = folder + "/" + kind.fileName
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if kind == .safetensorsIndex || kind == .pytorchIndex, let map = try? ShardedCheckpoint.weightMap(indexPath: path) {
                for shard in Set(map.values) where shard != kept {
                    guard (try? ShardedCheckpoint.shardPath(indexPath: path, shard: shard)) != nil else { continue }
                    _ = try? removeFileEntry(folder + "/" + shard)
                }
            }
            try removeFileEntry(path)
        }
    }

    /// Unlinks one file or symlink; refuses a folder (never recursive).
    static func removeFileEntry(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) != S_IFDIR else {
            throw ModelLoadError.cannotWrite(path: path, reason: "cannot remove stale weights: it is a folder")
        }
        guard unlink(path) == 0 else {
            throw ModelLoadError.cannotWrite(path: path, reason: "cannot remove stale weights: " + String(cString: strerror(errno)))
        }
    }

    /// Writes `data` to `path` through a temporary file, fsync and a rename (`AtomicFileWriter`).
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let failure: FileWriteFailure? = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> FileWriteFailure? in
            do throws(FileWriteFailure) { try AtomicFileWriter.write(raw, to: path); return nil } catch { return error }
        }
        if let failure { throw ModelLoadError.cannotWrite(path: path, reason: failure.reason) }
    }
}

/// Why a model could not be loaded or saved.
public enum ModelLoadError: Error, CustomStringConvertible {
    /// The weights file does not hold the parameters `config` describes (a missing or extra tensor, a wrong shape,
    /// …): `problem`.
    case weightsDoNotMatch(weights: String, config: String, problem: Error)
    /// A file or folder could not be created, written or removed (the system's reason).
    case cannotWrite(path: String, reason: String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .weightsDoNotMatch(w, c, p): return "\(w): weights do not match \(c): \(p)"
        case let .cannotWrite(p, r): return "\(p): cannot write: \(r)"
        }
    }
}
