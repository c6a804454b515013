// libFuzzer harness: GGUF (format reader, tensors and Q8_0 dequantisation), then the GPT-2 reading on top of
// it (config from metadata, names, transposes, the embedded tokenizer) and one forward pass when it loads.
import GPT2Kit

private let scratch = FuzzSupport.scratchPath("gguf", suffix: ".gguf")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    if let file = try? GGUF.read(path: scratch) {
        for info in file.tensors { FuzzSupport.sink ^= file.tensor(info).withUnsafeBytes { FuzzSupport.touch($0) } }
    }
    if let contents = try? GGUFModel.read(path: scratch) {
        if let parameters = try? GPT2Parameters(config: contents.config, stateDict: contents.stateDict),
           parameters.layout.totalCount < 1 << 22, let model = try? GPT2Model(parameters: parameters, trainable: .none(parameters.layout)) {
            _ = try? model.forward(inputIDs: [0, 1], batchSize: 1, sequenceLength: 2)
        }
        _ = try? GGUFModel.tokenizer(path: scratch).encode("Harry Potter <|endoftext|> is")
    }
    return 0
}
