import ArgumentParser
import Foundation
import GPT2Kit

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a model to safetensors, PyTorch or TF/Keras HDF5.",
        discussion: """
        When OUT is a folder (an existing folder, or a name without a weights extension) it receives the weights, \
        config.json, generation_config.json and the tokenizer files of IN. When OUT names a file \
        (.safetensors, .bin/.pt, .h5) just that file is written.
        """)

    @Argument(help: "A model folder or a weights file.") var input: String
    @Argument(help: "Output folder or weights file.") var output: String
    @OptionGroup var model: ModelOptions
    @Option(help: "safetensors | pytorch | h5 (default: from OUT's extension, else safetensors).") var format: String?
    @Option(help: "f32 | f16 | bf16.") var dtype: String = "f32"
    @Option(help: "Copy the tokenizer files of this folder into a folder OUT (default: IN's own).") var tokenizer: String?
    @Flag(help: "Print one JSON object describing what was written.") var json = false

    func run() throws {
        try reportingErrors {
            guard let dtype = DType(userName: dtype), [.f32, .f16, .bf16].contains(dtype) else {
                throw ValidationError("--dtype must be f32, f16 or bf16")
            }
            if dtype == .bf16, format == "h5" || output.hasSuffix(".h5") {
                throw ValidationError("HDF5 has no bfloat16 type; use --dtype f32 or f16 with --format h5")
            }
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory)
            let guessed = ExportFormat.guess(fromFileName: output)
            let toFolder = (exists && isDirectory.boolValue) || (!exists && guessed == nil)
            let exportFormat: ExportFormat
            if let format {
                guard let f = ExportFormat(rawValue: format) else { throw ValidationError("--format must be safetensors, pytorch or h5") }
                exportFormat = f
            } else {
                exportFormat = toFolder ? .safetensors : (guessed ?? .safetensors)
            }
            let location = try ModelLocation(path: input, configPath: model.configPath)
            let parameters = try ModelIO.loadParameters(location)
            let written: [String]
            if toFolder {
                let lock = try RunFolderLock(folder: output)
                defer { withExtendedLifetime(lock) {} }
                written = try ModelIO.writeFolder(parameters, to: output, format: exportFormat, dtype: dtype,
                                                  tokenizerFiles: try tokenizerFiles(default: location.tokenizerPaths),
                                                  generationConfigPath: location.generationConfigPath)
            } else {
                try ModelIO.writeWeights(parameters, to: output, format: exportFormat, dtype: dtype)
                written = [output]
            }
            if json {
                Console.out(Console.json(["input": location.weightsPath, "format": exportFormat.rawValue, "dtype": dtype.rawValue, "written": written]))
            } else {
                Console.out("read \(location.weightsPath)")
                for w in written { Console.out("wrote \(w)") }
            }
        }
    }

    private func tokenizerFiles(default paths: [String]) throws -> [String] {
        guard let tokenizer else { return paths }
        let files = ModelLocation.tokenizerFileNames.map { tokenizer + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
        guard !files.isEmpty else { throw ModelLocationError.noTokenizer(folder: tokenizer) }
        return files
    }
}
