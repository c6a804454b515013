import ArgumentParser
import Foundation
import GPT2Kit

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a model to safetensors, PyTorch, TF/Keras HDF5, GGUF (llama.cpp) or llm.c's checkpoint.",
        discussion: """
        When OUT is a folder (an existing folder, or a name without a weights extension) it receives the weights, \
        config.json, generation_config.json and the tokenizer files of IN. When OUT names a file \
        (.safetensors, .bin/.pt, .h5, .gguf, or any name with --format llmc) just that file is written. GGUF embeds \
        the tokenizer (IN's, or --tokenizer); a GGUF or llm.c input carries its own config.
        """)

    @Argument(help: "A model folder or a weights file.") var input: String
    @Argument(help: "Output folder or weights file.") var output: String
    @OptionGroup var model: ModelOptions
    @Option(help: "safetensors | pytorch | h5 | gguf | llmc (default: from OUT's extension, else safetensors).") var format: String?
    @Option(help: "f32 | f16 | bf16 (gguf: f32 | f16 | q8_0; llmc: f32 | bf16).") var dtype: String = "f32"
    @Option(help: "Copy the tokenizer files of this folder into a folder OUT (default: IN's own); gguf embeds it.") var tokenizer: String?
    @Flag(help: "Print one JSON object describing what was written.") var json = false

    func run() throws {
        try reportingErrors {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory)
            let location = try ModelLocation(path: input, configPath: model.configPath)
            let formatName = format ?? (output.hasSuffix(".gguf") ? "gguf" : nil)
            if formatName == "gguf" || formatName == "llmc" {
                if exists && isDirectory.boolValue { throw ValidationError("--format: \(formatName ?? "") writes a single file; name one, not a folder") }
                let parameters = try ModelIO.loadParameters(location)
                let written: String
                if formatName == "gguf" {
                    guard let type = GGUFModel.WeightType(rawValue: dtype.lowercased()) else { throw ValidationError("--dtype: must be f32, f16 or q8_0 for gguf") }
                    let vocabulary = try ModelIO.loadTokenizer(for: location, override: tokenizer)
                    var name = ((location.weightsKind == .gguf ? location.weightsPath : location.folder) as NSString).lastPathComponent
                    if case let .string(recorded)? = parameters.config.extraKeys["_name_or_path"] { name = recorded }
                    let result = try GGUFModel.write(parameters, tokenizer: vocabulary, name: name, to: output, weightType: type)
                    if result.fallbacks > 0 && !json {
                        Console.err("note: \(result.fallbacks) weight\(result.fallbacks == 1 ? "" : "s") with rows not a multiple of 32 written as F16 (llama.cpp's converter does the same)")
                    }
                    written = result.written
                } else {
                    guard let precision = LLMCCheckpoint.Precision(rawValue: dtype.lowercased()) else { throw ValidationError("--dtype: must be f32 or bf16 for llmc") }
                    try LLMCCheckpoint.write(parameters, to: output, precision: precision)
                    written = output
                }
                report(location: location, format: formatName ?? "", dtype: dtype.lowercased(), written: [written])
                return
            }
            guard let dtype = DType(userName: dtype), [.f32, .f16, .bf16].contains(dtype) else {
                throw ValidationError("--dtype: must be f32, f16 or bf16")
            }
            if dtype == .bf16, format == "h5" || output.hasSuffix(".h5") {
                throw ValidationError("--dtype: HDF5 has no bfloat16 type; use --dtype f32 or f16 with --format h5")
            }
            let guessed = ExportFormat.guess(fromFileName: output)
            let toFolder = (exists && isDirectory.boolValue) || (!exists && guessed == nil)
            let exportFormat: ExportFormat
            if let format {
                guard let f = ExportFormat(rawValue: format) else { throw ValidationError("--format: must be safetensors, pytorch, h5, gguf or llmc") }
                exportFormat = f
            } else {
                exportFormat = toFolder ? .safetensors : (guessed ?? .safetensors)
            }
            let parameters = try ModelIO.loadParameters(location)
            let written: [String]
            if toFolder {
                let lock = try RunFolderLock(folder: output)
                defer { withExtendedLifetime(lock) {} }
                // A GGUF input carries its tokenizer: write it as vocab.json + merges.txt.
                let embedded = location.weightsKind == .gguf && tokenizer == nil ? try GGUFModel.tokenizerFiles(path: location.weightsPath) : []
                written = try ModelIO.writeFolder(parameters, to: output, format: exportFormat, dtype: dtype,
                                                  tokenizerFiles: try tokenizerFiles(default: location.weightsKind == .gguf ? [] : location.tokenizerPaths),
                                                  generationConfigPath: location.generationConfigPath, tokenizerData: embedded)
            } else {
                try ModelIO.writeWeights(parameters, to: output, format: exportFormat, dtype: dtype)
                written = [output]
            }
            report(location: location, format: exportFormat.rawValue, dtype: dtype.rawValue, written: written)
        }
    }

    private func report(location: ModelLocation, format: String, dtype: String, written: [String]) {
        if json {
            Console.out(Console.json(["input": location.weightsPath, "format": format, "dtype": dtype, "written": written]))
        } else {
            Console.out("read \(location.weightsPath)")
            for w in written { Console.out("wrote \(w)") }
        }
    }

    private func tokenizerFiles(default paths: [String]) throws -> [String] {
        guard let tokenizer else { return paths }
        let files = ModelLocation.tokenizerFileNames.map { tokenizer + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
        guard !files.isEmpty else { throw ModelLocationError.noTokenizer(folder: tokenizer) }
        return files
    }
}
