// libFuzzer harness: PEFT adapter_config.json (every refusal, target patterns), then building the adapter
// for a small GPT-2 and loading the committed adapter weights into it.
import Foundation
import GPT2Kit

private let folder: String = {
    let path = FuzzSupport.scratchPath("adapter", suffix: "")
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()
private let config = GPT2Config(vocabularySize: 64, maxPositions: 8, embeddingSize: 32, layerCount: 2, headCount: 4)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: folder + "/adapter_config.json")
    if let (configuration, _) = try? AdapterFiles.readConfiguration(folder: folder, layerCount: config.layerCount),
       configuration.rank <= 64, let adapter = try? LoRAAdapter(configuration: configuration, modelConfig: config) {
        adapter.initialize(seed: 1)
        _ = adapter.stateDict()
    }
    return 0
}
