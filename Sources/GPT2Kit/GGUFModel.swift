import Foundation

/// GPT-2 in GGUF, as llama.cpp's `convert_hf_to_gguf.py` (`GPT2Model`) writes it and llama.cpp's gpt2 loader
/// reads it: architecture `gpt2`, hyper-parameters under `gpt2.*`, tensors `token_embd`, `position_embd`,
/// `blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down}`, `output_norm` (`.weight`/`.bias`),
/// the Conv1D weights transposed to `nn.Linear`'s (out, in), and the tokenizer embedded (`tokenizer.ggml.*`).
public enum GGUFModel {
    /// The element type of the 2-D weights (1-D tensors and `position_embd` stay F32, as the converter keeps them).
    public enum WeightType: String, Sendable, CaseIterable {
        /// 32-bit floats (`GGML_TYPE_F32`, llama.cpp's `--outtype f32`).
        case f32
        /// IEEE half floats (`GGML_TYPE_F16`, `--outtype f16`).
        case f16
        /// 8-bit blocks of 32 weights with one f16 scale (`GGML_TYPE_Q8_0`, `--outtype q8_0`); rows not a multiple of
        /// 32 fall back to F16.
        case q8_0

        var tensorType: GGUF.TensorType {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .q8_0: return .q8_0
            }
        }

        /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
        var fileType: UInt32 {
            switch self {
            case .f32: return 0
            case .f16: return 1
            case .q8_0: return 7
            }
        }
    }

    /// llama.cpp's token types.
    enum TokenType: Int32 { case normal = 1, control = 3, userDefined = 4 }

    /// GGUF name and whether the HF Conv1D weight is transposed, for every parameter of the layout.
    static func ggufName(_ role: GPT2ParameterLayout.Role) -> (name: String, transposed: Bool) {
        switch role {
        case .global(.wte): return ("token_embd.weight", false)
        case .global(.wpe): return ("position_embd.weight", false)
        case .global(.lnfWeight): return ("output_norm.weight", false)
        case .global(.lnfBias): return ("output_norm.bias", false)
        case let .layer(l, t):
            let p = "blk.\(l)."
            switch t {
            case .ln1Weight: return (p + "attn_norm.weight", false)
            case .ln1Bias: return (p + "attn_norm.bias", false)
            case .attnWeight: return (p + "attn_qkv.weight", true)
            case .attnBias: return (p + "attn_qkv.bias", false)
            case .attnProjWeight: return (p + "attn_output.weight", true)
            case .attnProjBias: return (p + "attn_output.bias", false)
            case .ln2Weight: return (p + "ffn_norm.weight", false)
            case .ln2Bias: return (p + "ffn_norm.bias", false)
            case .fcWeight: return (p + "ffn_up.weight", true)
            case .fcBias: return (p + "ffn_up.bias", false)
            case .fcProjWeight: return (p + "ffn_down.weight", true)
            case .fcProjBias: return (p + "ffn_down.bias", false)
            }
        }
    }

    /// Writes `parameters` and `tokenizer` as a GGUF file llama.cpp runs. Q8_0 needs rows that are whole blocks of
    /// 32; a weight whose rows are not falls back to F16, as llama.cpp's converter does (the count is returned).
    @discardableResult
    public static func write(_ parameters: GPT2Parameters, tokenizer: GPT2Tokenizer, name: String, to path: String,
                             weightType: WeightType) throws -> (fallbacks: Int, written: String) {
        let c = parameters.config
        guard tokenizer.vocabularySize == c.vocabularySize else {
            throw GGUFModelError(path: path, problem: "the tokenizer has \(tokenizer.vocabularySize) tokens, the model \(c.vocabularySize)")
        }
        let (tokens, special) = tokenizer.vocabularyTokens
        // <|endoftext|> is a control token; other added tokens are user-defined (llama.cpp's converter does the same).
        let types: [GGUF.Value] = tokens.indices.map { id in
            let type: TokenType = id == tokenizer.eosTokenID ? .control : special.contains(id) ? .userDefined : .normal
            return .int32(type.rawValue)
        }
        var metadata: [(key: String, value: GGUF.Value)] = [
            ("general.architecture", .string("gpt2")),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("gpt2.context_length", .uint32(UInt32(c.maxPositions))),
            ("gpt2.embedding_length", .uint32(UInt32(c.embeddingSize))),
            ("gpt2.feed_forward_length", .uint32(UInt32(c.feedForwardSize))),
            ("gpt2.block_count", .uint32(UInt32(c.layerCount))),
            ("gpt2.attention.head_count", .uint32(UInt32(c.headCount))),
            ("gpt2.attention.layer_norm_epsilon", .float32(Float(c.layerNormEpsilon))),
            ("general.file_type", .uint32(weightType.fileType)),
        ]
        if weightType == .q8_0 { metadata.append(("general.quantization_version", .uint32(2))) }
        metadata += [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("gpt-2")),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, types)),
            ("tokenizer.ggml.merges", .array(.string, tokenizer.mergeRules.map { .string($0) })),
        ]
        if let bos = c.bosTokenID { metadata.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = c.eosTokenID { metadata.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }

        var tensors: [(name: String, tensor: Tensor, type: GGUF.TensorType)] = []
        var fallbacks = 0
        for e in parameters.layout.entries {
            let (ggufName, transposed) = ggufName(e.role)
            var tensor = Tensor(floats: UnsafeBufferPointer(parameters.storage[e.range]), shape: e.shape)
            if transposed { tensor = tensor.transposed() }
            var type: GGUF.TensorType = .f32
            if tensor.shape.rank == 2, e.role != .global(.wpe) {
                type = weightType.tensorType
                if type == .q8_0, (tensor.shape.dims.last ?? 0) % 32 != 0 { type = .f16; fallbacks += 1 }
            }
            tensors.append((ggufName, tensor, type))
        }
        do { try GGUF.write(metadata: metadata, tensors: tensors, to: path) } catch { throw error }
        return (fallbacks, path)
    }

    /// What a GPT-2 GGUF file holds, in GPT2Kit's terms.
    public struct Contents {
        /// The hyper-parameters from `gpt2.*` (context length, width, layers, heads, LayerNorm epsilon); the
        /// vocabulary size is the number of `tokenizer.ggml.tokens`.
        public var config: GPT2Config
        /// Tensors under Hugging Face names (Conv1D weights transposed back to (in, out)).
        public var stateDict: StateDict
        /// The GGUF element type each tensor of `stateDict` is stored as (`F32`, `F16`, `BF16`, `Q8_0`), by Hugging
        /// Face name: Q8_0 tensors are dequantized to F32 in `stateDict`.
        public var storedTypes: [String: String]
        /// The embedded vocabulary and merges, as `vocab.json`, `merges.txt` and (for tokens outside the byte-level
        /// alphabet) `added_tokens.json` bytes.
        public var tokenizerFiles: [(name: String, data: Data)]
    }

    /// Reads a GPT-2 GGUF file: config from `gpt2.*`, tensors mapped to Hugging Face names, tokenizer files.
    public static func read(path: String) throws -> Contents {
        let file = try GGUF.read(path: path)
        func fail(_ problem: String) -> GGUFModelError { GGUFModelError(path: path, problem: problem) }
        guard file["general.architecture"]?.string == "gpt2" else {
            throw fail("general.architecture is \(file["general.architecture"].map { "\($0)" } ?? "missing"), not gpt2")
        }
        func int(_ key: String) throws -> Int {
            guard let v = file[key]?.integer, v > 0 else { throw fail("\(key) is missing or not a positive integer") }
            return v
        }
        var config = GPT2Config()
        config.maxPositions = try int("gpt2.context_length")
        config.embeddingSize = try int("gpt2.embedding_length")
        config.layerCount = try int("gpt2.block_count")
        config.headCount = try int("gpt2.attention.head_count")
        let feedForward = try int("gpt2.feed_forward_length")
        config.innerSize = feedForward == 4 * config.embeddingSize ? nil : feedForward
        if let eps = file["gpt2.attention.layer_norm_epsilon"]?.number {
            guard eps > 0, eps.isFinite else { throw fail("gpt2.attention.layer_norm_epsilon \(eps) is not a positive number") }
            config.layerNormEpsilon = eps
        }
        guard case let .array(.string, tokenValues)? = file["tokenizer.ggml.tokens"] else {
            throw fail("tokenizer.ggml.tokens is missing (llama.cpp needs the vocabulary)")
        }
        config.vocabularySize = tokenValues.count
        config.bosTokenID = file["tokenizer.ggml.bos_token_id"]?.integer
        config.eosTokenID = file["tokenizer.ggml.eos_token_id"]?.integer
        config.residualDropout = 0.1; config.embeddingDropout = 0.1; config.attentionDropout = 0.1
        // Kept so that GGUF → Hugging Face → GGUF gives the same file.
        if let name = file["general.name"]?.string { config.extraKeys["_name_or_path"] = .string(name) }
        do { try config.validate(path: path) } catch { throw error }

        // Tensors back to Hugging Face names and layouts; the vocabulary must match token_embd.
        let layout = GPT2ParameterLayout(config: config)
        var byGGUFName: [String: GPT2ParameterLayout.Entry] = [:]
        for e in layout.entries { byGGUFName[ggufName(e.role).name] = e }
        var dict = StateDict()
        // The file's metadata as text (arrays by their length), for `inspect`.
        for (key, value) in file.metadata {
            switch value {
            case let .array(_, items): dict.metadata[key] = "[\(items.count) items]"
            case let .string(s): dict.metadata[key] = s
            default: dict.metadata[key] = value.number.map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int($0)) : String($0) } ?? "\(value)"
            }
        }
        var outputWeight: Tensor?
        var storedTypes: [String: String] = [:]
        for info in file.tensors {
            if info.name == "output.weight" { outputWeight = file.tensor(info); continue }
            guard let e = byGGUFName[info.name] else { throw fail("tensor '\(info.name)' is not part of GPT-2") }
            var tensor = file.tensor(info)
            if ggufName(e.role).transposed {
                guard tensor.shape.rank == 2 else { throw fail("tensor '\(info.name)' is not 2-D") }
                tensor = tensor.transposed()
            }
            dict[e.name] = tensor
            storedTypes[e.name] = info.type.name
        }
        if let outputWeight, let wte = dict["transformer.wte.weight"] {
            guard outputWeight.shape == wte.shape, outputWeight.floats() == wte.floats() else {
                throw fail("output.weight differs from token_embd.weight; GPT2Kit's GPT-2 ties them")
            }
        }
        if let wte = dict["transformer.wte.weight"], wte.shape.dims.first != tokenValues.count {
            throw fail("the vocabulary has \(tokenValues.count) tokens, token_embd \(wte.shape.dims.first ?? 0) rows")
        }
        return Contents(config: config, stateDict: dict, storedTypes: storedTypes, tokenizerFiles: try tokenizerFiles(file, tokens: tokenValues, fail: fail))
    }

    /// `vocab.json`, `merges.txt` (and `added_tokens.json`) from the embedded vocabulary.
    static func tokenizerFiles(_ file: GGUF.File, tokens: [GGUF.Value], fail: (String) -> GGUFModelError) throws -> [(name: String, data: Data)] {
        guard file["tokenizer.ggml.model"]?.string == "gpt2" else { throw fail("tokenizer.ggml.model is not gpt2 (byte-level BPE)") }
        guard case let .array(.string, mergeValues)? = file["tokenizer.ggml.merges"] else {
            throw fail("tokenizer.ggml.merges is missing (llama.cpp refuses a gpt2 vocabulary without merges)")
        }
        var vocab: [String: Int] = [:]
        var added: [String: Int] = [:]
        for (id, value) in tokens.enumerated() {
            guard let token = value.string else { throw fail("tokenizer.ggml.tokens[\(id)] is not a string") }
            // Byte-level tokens go to vocab.json; text outside the 256 stand-ins is an added token.
            if ByteEncoder.decode(token) != nil, vocab[token] == nil { vocab[token] = id } else { added[token] = id }
        }
        let merges = try mergeValues.enumerated().map { i, v -> String in
            guard let m = v.string else { throw fail("tokenizer.ggml.merges[\(i)] is not a string") }
            return m
        }
        // In id order, as Hugging Face writes vocab.json (and fast: Foundation's sorted-keys JSON takes seconds here).
        func json(_ entries: [String: Int]) -> Data {
            let body = entries.sorted { $0.value < $1.value }.map { SafetensorsWriter.jsonString($0.key) + ": \($0.value)" }
            return Data(("{" + body.joined(separator: ", ") + "}\n").utf8)
        }
        var files: [(String, Data)] = [
            ("vocab.json", json(vocab)),
            ("merges.txt", Data(("#version: 0.2\n" + merges.joined(separator: "\n") + "\n").utf8)),
        ]
        if !added.isEmpty { files.append(("added_tokens.json", json(added))) }
        return files
    }

    /// The embedded vocabulary as tokenizer files (see `Contents.tokenizerFiles`), from the metadata alone: no
    /// tensor is read or dequantized.
    public static func tokenizerFiles(path: String) throws -> [(name: String, data: Data)] {
        let file = try GGUF.read(path: path)
        func fail(_ problem: String) -> GGUFModelError { GGUFModelError(path: path, problem: problem) }
        guard case let .array(.string, tokenValues)? = file["tokenizer.ggml.tokens"] else {
            throw fail("tokenizer.ggml.tokens is missing (llama.cpp needs the vocabulary)")
        }
        return try tokenizerFiles(file, tokens: tokenValues, fail: fail)
    }

    /// The tokenizer embedded in a GGUF file.
    public static func tokenizer(path: String) throws -> GPT2Tokenizer {
        let files = Dictionary(try tokenizerFiles(path: path), uniquingKeysWith: { a, _ in a })
        var tokenizer = try GPT2Tokenizer(vocabJSON: files["vocab.json"] ?? Data(), mergesText: files["merges.txt"] ?? Data(),
                                          vocabName: path + " (tokenizer.ggml.tokens)", mergesName: path + " (tokenizer.ggml.merges)")
        if let added = files["added_tokens.json"],
           let object = try JSONSerialization.jsonObject(with: added) as? [String: Int] {
            for (token, id) in object.sorted(by: { $0.value < $1.value }) {
                guard id == tokenizer.vocabularySize else {
                    throw GGUFModelError(path: path, problem: "added token '\(token)' has id \(id), not the next free id \(tokenizer.vocabularySize)")
                }
                _ = try tokenizer.addTokens([token])
            }
        }
        return tokenizer
    }
}

/// A GGUF file that is valid GGUF but not a GPT-2 GPT2Kit can use (or cannot be made into one).
public struct GGUFModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The GGUF file.
    public var path: String
    /// What is missing or does not fit GPT-2.
    public var problem: String
    /// "path: problem", as `gpt2kit` prints it.
    public var description: String { "\(path): \(problem)" }
}
