// libFuzzer harness: torch checkpoints. Zip archives (data.pkl + storages) and legacy (pre-1.6) pickle streams
// go through the reader as `TorchCheckpointReader.read` dispatches them; any other input is unpickled as a raw
// pickle stream (the unpickler on its own, with and without collecting persistent ids).
@testable import Checkpoints
import Tensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let storage = ByteStorage(copying: bytes)
    let result: StateDict?
    if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
        result = try? TorchCheckpointReader.readZip(storage, path: "<fuzz>")
    } else if bytes.starts(with: TorchCheckpointReader.legacyMagic) {
        result = try? TorchCheckpointReader.readLegacy(storage, path: "<fuzz>")
    } else {
        var pids: [PickleValue] = []
        _ = try? Unpickler.load(storage.bytes, path: "<fuzz>", persistentIDs: &pids)
        result = nil
    }
    if let dict = result {
        for (_, tensor) in dict { FuzzSupport.sink ^= tensor.withUnsafeBytes { FuzzSupport.touch($0) } }
    }
    return 0
}
