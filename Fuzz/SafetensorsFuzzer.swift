// libFuzzer harness: the safetensors header parser on the exact input bytes, then the whole reader on a
// scratch file (mapping, tensor views), touching every tensor's bytes.
import Checkpoints
import Tensors

private let scratch = FuzzSupport.scratchPath("safetensors", suffix: ".safetensors")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let header = try? SafetensorsReader.parseHeader(bytes, path: "<fuzz>") {
        for entry in header.entries {
            precondition(entry.dataRange.lowerBound >= 0 && header.dataOffset + entry.dataRange.upperBound <= size,
                         "entry '\(entry.name)' outside the file")
            FuzzSupport.sink ^= FuzzSupport.touch(UnsafeRawBufferPointer(
                rebasing: bytes[header.dataOffset + entry.dataRange.lowerBound ..< header.dataOffset + entry.dataRange.upperBound]))
        }
    }
    FuzzSupport.write(bytes, to: scratch)
    if let dict = try? SafetensorsReader.read(path: scratch) {
        for (_, tensor) in dict { FuzzSupport.sink ^= tensor.withUnsafeBytes { FuzzSupport.touch($0) } }
        _ = dict.converted(to: .f32)
    }
    return 0
}
