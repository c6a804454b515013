// libFuzzer harness: llm.c checkpoints (header checks, sizes against the file, tensors under HF names).
import GPT2Kit

private let scratch = FuzzSupport.scratchPath("llmc", suffix: ".bin")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    if let (config, dict) = try? LLMCCheckpoint.read(path: scratch) {
        for (_, tensor) in dict { FuzzSupport.sink ^= tensor.withUnsafeBytes { FuzzSupport.touch($0) } }
        _ = try? GPT2Parameters(config: config, stateDict: dict)
    }
    return 0
}
