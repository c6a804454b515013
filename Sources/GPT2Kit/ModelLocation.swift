import Foundation

/// Where a model's files are: a Hugging Face style folder or a single weights file, resolved the way
/// transformers resolves them (safetensors over `.bin` over `.h5`, sharded index files included).
public struct ModelLocation: Sendable, Equatable {
    /// Kinds of weight files, in the order transformers prefers them.
    public enum WeightsKind: String, Sendable, CaseIterable, Codable {
        /// `model.safetensors`.
        case safetensors
        /// `model.safetensors.index.json` and the shards it lists.
        case safetensorsIndex = "safetensors-index"
        /// `pytorch_model.bin` (a `torch.save` zip or legacy pickle), or any other single file not recognised
        /// otherwise.
        case pytorch
        /// `pytorch_model.bin.index.json` and the shards it lists.
        case pytorchIndex = "pytorch-index"
        /// `tf_model.h5` (Keras HDF5, transformers' TensorFlow weights).
        case kerasHDF5 = "h5"
        /// llama.cpp's GGUF file (single files only; it carries its config and tokenizer).
        case gguf
        /// llm.c's checkpoint, recognised by its magic (single files only; it carries its config).
        case llmc

        /// The kinds a Hugging Face folder holds, in the order transformers prefers them.
        public static let folderKinds: [WeightsKind] = [.safetensors, .safetensorsIndex, .pytorch, .pytorchIndex, .kerasHDF5]

        /// The conventional file name inside a model folder.
        public var fileName: String {
            switch self {
            case .safetensors: return "model.safetensors"
            case .safetensorsIndex: return "model.safetensors.index.json"
            case .pytorch: return "pytorch_model.bin"
            case .pytorchIndex: return "pytorch_model.bin.index.json"
            case .kerasHDF5: return "tf_model.h5"
            case .gguf: return "model.gguf"
            case .llmc: return "gpt2_124M.bin"
            }
        }
    }

    /// Tokenizer file names copied along with a model.
    public static let tokenizerFileNames = [
        "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    ]

    /// The folder the model lives in (the file's folder for a single file).
    public var folder: String
    /// The weights file that will be read.
    public var weightsPath: String
    /// The format of `weightsPath`.
    public var weightsKind: WeightsKind
    /// Every weights file found in the folder, preferred first (only the given file for a single file).
    public var availableWeights: [String]
    /// `config.json` (or the `--config` path), when present.
    public var configPath: String?
    /// `generation_config.json`, when present.
    public var generationConfigPath: String?
    /// Tokenizer files present in the folder.
    public var tokenizerPaths: [String]

    /// Resolves `path` (a folder or a weights file); `configPath` overrides the folder's `config.json`.
    public init(path: String, configPath: String? = nil) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ModelLocationError.notFound(path: path) }
        if isDirectory.boolValue {
            folder = path
            let present = WeightsKind.folderKinds.filter { fm.fileExists(atPath: (path as NSString).appendingPathComponent($0.fileName)) }
            guard let first = present.first else { throw ModelLocationError.noWeights(folder: path) }
            weightsKind = first
            weightsPath = (path as NSString).appendingPathComponent(first.fileName)
            availableWeights = present.map { (path as NSString).appendingPathComponent($0.fileName) }
        } else {
            folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
            weightsPath = path
            availableWeights = [path]
            if path.hasSuffix(".index.json") {
                weightsKind = path.contains("safetensors") ? .safetensorsIndex : .pytorchIndex
            } else if path.hasSuffix(".safetensors") {
                weightsKind = .safetensors
            } else if path.hasSuffix(".h5") || path.hasSuffix(".hdf5") {
                weightsKind = .kerasHDF5
            } else if path.hasSuffix(".gguf") || (try? CheckpointFormat.detect(path: path)) == .gguf {
                weightsKind = .gguf
            } else if LLMCCheckpoint.hasMagic(path: path) {
                weightsKind = .llmc
            } else {
                weightsKind = .pytorch
            }
        }
        let base = folder
        func inFolder(_ name: String) -> String? {
            let p = (base as NSString).appendingPathComponent(name)
            return fm.fileExists(atPath: p) ? p : nil
        }
        if let configPath {
            guard fm.fileExists(atPath: configPath) else { throw ModelLocationError.notFound(path: configPath) }
            self.configPath = configPath
        } else {
            self.configPath = inFolder("config.json")
        }
        generationConfigPath = inFolder("generation_config.json")
        tokenizerPaths = Self.tokenizerFileNames.compactMap(inFolder)
    }

    /// Whether the folder holds a usable tokenizer (`vocab.json` + `merges.txt`, or `tokenizer.json`).
    public var hasTokenizer: Bool {
        let names = Set(tokenizerPaths.map { ($0 as NSString).lastPathComponent })
        return names.contains("tokenizer.json") || (names.contains("vocab.json") && names.contains("merges.txt"))
    }
}

/// Why a model path could not be resolved.
public enum ModelLocationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The path (or the `--config` path) does not exist.
    case notFound(path: String)
    /// A folder without any of the weights files transformers looks for.
    case noWeights(folder: String)
    /// A weights file without `config.json` beside it (and none named).
    case noConfig(weights: String)
    /// A folder without `vocab.json` + `merges.txt` or `tokenizer.json` (and no tokenizer folder named).
    case noTokenizer(folder: String)
    /// The tokenizer of `folder` has more tokens than the model's embedding has rows.
    case tokenizerDoesNotFit(folder: String, tokens: Int, vocabularySize: Int)

    /// The message `gpt2kit` prints, naming the path and the option that fixes it.
    public var description: String {
        switch self {
        case let .notFound(p): return "\(p): no such file or folder"
        case let .noWeights(f):
            return "\(f): no weights file (looked for \(ModelLocation.WeightsKind.folderKinds.map(\.fileName).joined(separator: ", ")))"
        case let .noConfig(w): return "\(w): no config.json beside the weights; name one with --config"
        case let .noTokenizer(f): return "\(f): no tokenizer files (vocab.json + merges.txt, or tokenizer.json); name a folder with --tokenizer"
        case let .tokenizerDoesNotFit(f, tokens, size):
            return "\(f): the tokenizer has \(tokens) tokens, more than the model's vocab_size \(size)"
        }
    }
}
