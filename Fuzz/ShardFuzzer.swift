// libFuzzer harness: llm.c token shards (header, version, size checks at open), then packing into blocks and
// reading every block (ids checked lazily against a 50257-token vocabulary, mapped pages handed back).
import GPT2Kit

private let scratch = FuzzSupport.scratchPath("shards", suffix: ".bin")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    guard let segment = try? TokenShard.open(path: scratch) else { return 0 }
    // The block size comes from the input's last byte (2...17), so blocks span the file in many ways.
    let blockSize = 2 + Int(size > 0 ? data[size - 1] % 16 : 0)
    guard let blocks = try? PackedTokenBlocks(segments: [segment, segment], blockSize: blockSize, vocabularySize: 50257,
                                              source: scratch) else { return 0 }
    for i in 0 ..< blocks.count {
        if let example = try? blocks.example(at: i) {
            precondition(example.inputIDs.count == blockSize && example.inputIDs.allSatisfy { $0 >= 0 && $0 < 50257 })
            FuzzSupport.sink ^= UInt8(truncatingIfNeeded: example.inputIDs[0])
        }
    }
    return 0
}
