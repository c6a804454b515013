// libFuzzer harness: the zip central directory (ZipArchive) and every entry's contents (stored and deflated).
import Checkpoints
import Tensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let storage = ByteStorage(copying: UnsafeRawBufferPointer(start: data, count: size))
    guard let archive = try? ZipArchive(storage: storage, path: "<fuzz>") else { return 0 }
    for entry in archive.entries {
        _ = archive.entry(named: entry.name)
        if let contents = try? archive.contents(of: entry) {
            FuzzSupport.sink ^= contents.withUnsafeBytes { FuzzSupport.touch($0) }
        }
    }
    return 0
}
