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
        // Writing back and reading again keeps every interpreted value. Unknown keys are not compared: the
        // write adds `model_type`, and a number of an unknown key that JSONEncoder writes in exponent form
        // (2.900719925474099e+17) reads back as an Int: the same Double, other text (Fuzz/findings/).
        if let written = try? config.jsonData() {
            guard var again = try? GPT2Config(jsonData: written, path: "written") else {
                fatalError("config.json does not read back what it wrote")
            }
            again.extraKeys = config.extraKeys
            precondition(again == config, "config round trip changed values")
        }
    }
    _ = try? GenerationConfigFile(jsonData: json, path: "generation_config.json")
    return 0
}
