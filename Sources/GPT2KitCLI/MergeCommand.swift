import ArgumentParser
import Foundation
import GPT2Kit

/// `gpt2kit merge`: a base model with a LoRA adapter folded into its weights, written as a model folder.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge a LoRA adapter into its base model (PEFT's merge_and_unload) and write a model folder.")

    @Option(help: "Base model folder or weights file.") var model: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Adapter folder (adapter_config.json + adapter_model.safetensors).") var adapter: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "safetensors | pytorch | h5.") var format: ExportFormat = .safetensors
    @Option(help: "f32 | f16 | bf16.") var dtype: String = "f32"
    @Option(help: "Tokenizer folder to copy (default: the base model's).") var tokenizer: String?

    func run() throws {
        try reportingErrors {
            guard let dtype = DType(userName: dtype), [.f32, .f16, .bf16].contains(dtype) else {
                throw ValidationError("--dtype: must be f32, f16 or bf16")
            }
            if dtype == .bf16, format == .h5 { throw ValidationError("--dtype: HDF5 has no bfloat16 type; use --dtype f32 or f16 with --format h5") }
            let (parameters, location) = try ModelIO.loadMerged(path: model, configPath: modelOptions.configPath, adapter: adapter)
            let files = tokenizer.map { t in ModelLocation.tokenizerFileNames.map { t + "/" + $0 }.filter(InputFile.isRegularFile) }
                ?? location.tokenizerPaths
            let lock = try RunFolderLock(folder: out)
            defer { withExtendedLifetime(lock) {} }
            let written = try ModelIO.writeFolder(parameters, to: out, format: format, dtype: dtype, tokenizerFiles: files,
                                                  generationConfigPath: location.generationConfigPath)
            for w in written { Console.out("wrote \(w)") }
        }
    }
}
