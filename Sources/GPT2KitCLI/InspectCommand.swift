import ArgumentParser
import Foundation
import GPT2Kit

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a weights file or model folder: format, tensors, totals, config.")

    @Argument(help: "A model folder or a weights file.") var path: String
    @OptionGroup var model: ModelOptions
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try reportingErrors {
            let location = try ModelLocation(path: path, configPath: model.configPath)
            let format = [.safetensorsIndex, .pytorchIndex, .gguf, .llmc].contains(location.weightsKind)
                ? location.weightsKind.rawValue : try CheckpointFormat.detect(path: location.weightsPath).rawValue
            let dict = try ModelIO.readStateDict(location)
            var configObject: Any? = nil
            var configCheck: String? = nil
            var parameterCount: Int? = nil
            var embeddedConfig: GPT2Config? = nil
            if let configPath = location.configPath {
                let data = try readConfigBytes(path: configPath)
                configObject = try? JSONSerialization.jsonObject(with: data)
                do {
                    let config = try GPT2Config(jsonData: data, path: configPath)
                    let parameters = try GPT2Parameters(config: config, stateDict: dict)
                    parameterCount = parameters.layout.totalCount
                    configCheck = "ok"
                } catch {
                    configCheck = "\(error)"
                }
            } else if location.weightsKind == .gguf || location.weightsKind == .llmc {
                // These formats carry their config.
                do {
                    let config = try ModelIO.readConfig(location)
                    parameterCount = try GPT2Parameters(config: config, stateDict: dict).layout.totalCount
                    configCheck = "ok"
                    embeddedConfig = config
                } catch {
                    configCheck = "\(error)"
                }
            }
            if json {
                var object: [String: Any] = [
                    "path": path,
                    "folder": location.folder,
                    "weights": location.weightsPath,
                    "available_weights": location.availableWeights,
                    "format": format,
                    "tensors": dict.map { ["name": $0.name, "dtype": $0.tensor.dtype.rawValue,
                                            "shape": $0.tensor.shape.dims, "bytes": $0.tensor.byteCount] as [String: Any] },
                    "tensor_count": dict.count,
                    "total_elements": dict.totalElementCount,
                    "total_bytes": dict.totalByteCount,
                    "metadata": dict.metadata,
                    "tokenizer_files": location.tokenizerPaths,
                ]
                if let configPath = location.configPath { object["config_path"] = configPath }
                if let configObject { object["config"] = configObject }
                if let configCheck { object["config_check"] = configCheck }
                if let parameterCount { object["parameter_count"] = parameterCount }
                Console.out(Console.prettyJSON(object))
                return
            }
            Console.out("weights:  \(location.weightsPath) (\(format))")
            if location.availableWeights.count > 1 {
                Console.out("also:     \(location.availableWeights.dropFirst().joined(separator: ", ")) (not used)")
            }
            if !dict.metadata.isEmpty {
                Console.out("metadata: " + dict.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            }
            let nameWidth = min(72, dict.names.map(\.count).max() ?? 4)
            for (name, t) in dict {
                let padded = name.count < nameWidth ? name + String(repeating: " ", count: nameWidth - name.count) : name
                Console.out("  \(padded)  \(t.dtype.rawValue.padding(4))  \(t.shape.description.padding(16))  \(Self.bytes(t.byteCount))")
            }
            Console.out("total:    \(dict.count) tensors, \(dict.totalElementCount) elements, \(Self.bytes(dict.totalByteCount))")
            if let configPath = location.configPath {
                if let c = try? GPT2Config(jsonData: readConfigBytes(path: configPath), path: configPath) {
                    Console.out("config:   \(configPath): vocab \(c.vocabularySize), positions \(c.maxPositions), n_embd \(c.embeddingSize), "
                                + "layers \(c.layerCount), heads \(c.headCount), \(c.activationFunction)")
                }
                Console.out("check:    " + (configCheck == "ok" ? "weights match the config (\(parameterCount ?? 0) parameters)" : configCheck ?? ""))
            } else if let c = embeddedConfig {
                Console.out("config:   from the file: vocab \(c.vocabularySize), positions \(c.maxPositions), n_embd \(c.embeddingSize), "
                            + "layers \(c.layerCount), heads \(c.headCount)")
                Console.out("check:    " + (configCheck == "ok" ? "weights match the config (\(parameterCount ?? 0) parameters)" : configCheck ?? ""))
            } else {
                Console.out("config:   " + (configCheck.map { "from the file: \($0)" } ?? "none (pass --config to check the shapes)"))
            }
            Console.out("tokenizer: " + (location.tokenizerPaths.isEmpty ? "none" : location.tokenizerPaths.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")))
        }
    }

    static func bytes(_ n: Int) -> String {
        if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.2f MiB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / Double(1 << 10)) }
        return "\(n) B"
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
