import Foundation

/// PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors` (or `adapter_model.bin`), as
/// `PeftModel.save_pretrained` writes and `PeftModel.from_pretrained` reads them.
public enum AdapterFiles {
    /// The adapter's configuration file (PEFT's `CONFIG_NAME`): rank, alpha, target modules, base model.
    public static let configFileName = "adapter_config.json"
    /// The adapter's weights as safetensors (PEFT's `SAFETENSORS_WEIGHTS_NAME`): what GPT2Kit writes, and reads
    /// first.
    public static let weightsFileName = "adapter_model.safetensors"
    /// The adapter's weights as a PyTorch pickle (PEFT's `WEIGHTS_NAME`), read when there is no safetensors file.
    public static let legacyWeightsFileName = "adapter_model.bin"

    /// Whether `folder` holds an adapter (its config file).
    public static func isAdapterFolder(_ folder: String) -> Bool { InputFile.isRegularFile(folder + "/" + configFileName) }

    /// Reads `adapter_config.json`, refusing what GPT2Kit cannot honour (each refusal names the field). A string
    /// `target_modules` is a regular expression over module names (PEFT's rule), expanded for `layerCount` blocks.
    public static func readConfiguration(folder: String, layerCount: Int) throws -> (configuration: LoRAConfiguration, baseModel: String?) {
        let path = folder + "/" + configFileName
        let data: Data
        do { data = Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
            throw AdapterError(path: path, problem: .unsupported(field: "file", reason: error.reason))
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AdapterError(path: path, problem: .invalidValue(field: "(top level)", value: "not a JSON object", expected: "a JSON object"))
        }
        func fail(_ e: LoRAError) -> AdapterError { AdapterError(path: path, problem: e) }
        func isUnset(_ key: String) -> Bool {
            guard let v = object[key] else { return true }
            if v is NSNull { return true }
            if let d = v as? [String: Any] { return d.isEmpty }
            if let a = v as? [Any] { return a.isEmpty }
            if let b = v as? Bool { return !b }
            return false
        }
        func number(_ key: String) -> Double? {
            guard let n = object[key] as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
            return n.doubleValue
        }
        let peftType = object["peft_type"] as? String
        guard peftType == "LORA" else {
            throw fail(.unsupported(field: "peft_type", reason: "\(peftType.map { "'\($0)'" } ?? "missing"); only LORA adapters are supported"))
        }
        if let task = object["task_type"] as? String, task != "CAUSAL_LM" {
            throw fail(.unsupported(field: "task_type", reason: "'\(task)'; GPT2Kit runs causal language models (CAUSAL_LM)"))
        }
        // Features that change what the adapter computes: refused rather than silently ignored.
        let refused: [(String, String)] = [
            ("use_dora", "DoRA is not supported"), ("rank_pattern", "per-module ranks are not supported"),
            ("alpha_pattern", "per-module alphas are not supported"), ("modules_to_save", "fully trained extra modules are not supported"),
            ("layers_to_transform", "layer selection is not supported (name the modules in target_modules)"),
            ("layers_pattern", "layer selection is not supported"), ("exclude_modules", "excluded modules are not supported"),
            ("target_parameters", "parameter targets are not supported"), ("lora_bias", "LoRA biases are not supported"),
            ("layer_replication", "layer replication is not supported"), ("use_qalora", "QA-LoRA is not supported"),
            ("trainable_token_indices", "trainable tokens are not supported"), ("use_bdlora", "BD-LoRA is not supported"),
            ("alora_invocation_tokens", "aLoRA is not supported"),
        ]
        for (key, reason) in refused where !isUnset(key) { throw fail(.unsupported(field: key, reason: reason)) }
        if let bias = object["bias"] as? String, bias != "none" {
            throw fail(.unsupported(field: "bias", reason: "'\(bias)'; only 'none' is supported"))
        }
        guard let r = number("r"), r == r.rounded(), r >= 1, r <= 65536 else {
            throw fail(.invalidValue(field: "r", value: "\(object["r"] ?? "missing")", expected: "an integer in 1...65536"))
        }
        let alpha = number("lora_alpha") ?? 8
        let dropout = number("lora_dropout") ?? 0
        let targets: [String]
        if let list = object["target_modules"] as? [Any] {
            targets = try list.map { item in
                guard let s = item as? String else { throw fail(.invalidValue(field: "target_modules", value: "\(item)", expected: "a module name")) }
                return s
            }
        } else if let pattern = object["target_modules"] as? String {
            targets = try Self.modulesMatching(pattern: pattern, layerCount: layerCount, path: path)
        } else {
            throw fail(.invalidValue(field: "target_modules", value: "\(object["target_modules"] ?? "missing")", expected: "a list of module names or a pattern"))
        }
        let rslora = object["use_rslora"] as? Bool ?? false
        let configuration = LoRAConfiguration(rank: Int(r), alpha: alpha, dropout: dropout, targetModules: targets, useRSLoRA: rslora)
        do { try configuration.validate() } catch { throw fail(error) }
        return (configuration, object["base_model_name_or_path"] as? String)
    }

    /// PEFT treats a string `target_modules` as a regular expression that must match a whole module name.
    static func modulesMatching(pattern: String, layerCount: Int, path: String) throws -> [String] {
        guard let regex = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$") else {
            throw AdapterError(path: path, problem: .invalidValue(field: "target_modules", value: pattern, expected: "a valid regular expression"))
        }
        var names: [String] = []
        for layer in 0..<layerCount {
            for kind in LoRAModuleKind.allCases {
                let name = "transformer.h.\(layer).\(kind.path)"
                for candidate in [name, "base_model.model." + name] where regex.firstMatch(in: candidate, range: NSRange(candidate.startIndex..., in: candidate)) != nil {
                    names.append(name); break
                }
            }
        }
        guard !names.isEmpty else { throw AdapterError(path: path, problem: .unknownTarget(pattern)) }
        return names
    }

    /// Reads the adapter in `folder` for a model with `modelConfig` (its tensors must fit that model).
    public static func read(folder: String, modelConfig: GPT2Config) throws -> LoRAAdapter {
        let (configuration, _) = try readConfiguration(folder: folder, layerCount: modelConfig.layerCount)
        let configPath = folder + "/" + configFileName
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter(configuration: configuration, modelConfig: modelConfig) } catch {
            throw AdapterError(path: configPath, problem: error)
        }
        let weights = [weightsFileName, legacyWeightsFileName].map { folder + "/" + $0 }.first(where: InputFile.isRegularFile)
        guard let weights else {
            throw AdapterError(path: folder, problem: .missingTensor("\(weightsFileName) (no adapter weights file)"))
        }
        let dict = try CheckpointReader.read(path: weights)
        do { try adapter.load(dict) } catch { throw AdapterError(path: weights, problem: error) }
        return adapter
    }

    /// Writes `adapter` into `folder` as PEFT does (weights named `base_model.model.…lora_A.weight`, config with
    /// `fan_in_fan_out` true for GPT-2's Conv1D). Returns the paths written.
    @discardableResult
    public static func write(_ adapter: LoRAAdapter, to folder: String, baseModel: String) throws -> [String] {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw ModelLoadError.cannotWrite(path: folder, reason: error.localizedDescription)
        }
        let weights = folder + "/" + weightsFileName
        try SafetensorsWriter.write(adapter.stateDict(), to: weights, metadata: ["format": "pt"])
        let c = adapter.configuration
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": c.rank, "lora_alpha": c.alpha, "lora_dropout": c.dropout,
            "target_modules": c.targetModules, "fan_in_fan_out": true, "bias": "none", "use_rslora": c.useRSLoRA,
            "use_dora": false, "modules_to_save": NSNull(), "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](),
            "init_lora_weights": true, "inference_mode": true, "base_model_name_or_path": baseModel,
            "layers_to_transform": NSNull(), "layers_pattern": NSNull(), "revision": NSNull(), "auto_mapping": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        let configPath = folder + "/" + configFileName
        try ModelIO.writeAtomically(data, to: configPath)
        return [weights, configPath]
    }
}

/// An adapter file GPT2Kit cannot use, with the file it came from.
public struct AdapterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file or folder the problem is in.
    public var path: String
    /// What is wrong with it.
    public var problem: LoRAError
    /// "path: problem", as `gpt2kit` prints it.
    public var description: String { "\(path): \(problem)" }
}
