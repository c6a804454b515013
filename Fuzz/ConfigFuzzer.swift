// libFuzzer harness: config.json (GPT2Config(jsonData:path:), then a write-back round trip) and
// generation_config.json (GenerationConfigFile, compiled into this module from Sources/GPT2Kit).
@_exported import GPT2
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let json = Data(bytes: data, count: size)
    if let config = try? GPT2Config(jsonData: json, path: "config.json") {
        _ = config.checkedParameterCount
        _ = config.headSize
        _ = config.feedForwardSize
        // Writing back and reading again keeps every interpreted value, and a second write is a fixed point
        // (the first write may add `model_type` and turn integral doubles of unknown keys into integers).
        if let written = try? config.jsonData() {
            guard var again = try? GPT2Config(jsonData: written, path: "written") else {
                fatalError("config.json does not read back what it wrote")
            }
            precondition(try! again.jsonData() == written, "config write-back is not a fixed point")
            again.extraKeys = config.extraKeys
            precondition(again == config, "config round trip changed values")
        }
    }
    _ = try? GenerationConfigFile(jsonData: json, path: "generation_config.json")
    return 0
}
