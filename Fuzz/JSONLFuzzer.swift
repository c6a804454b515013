// libFuzzer harness: the training JSONL reader (TrainingRecord, compiled into this module from Sources/Training),
// then turning each record into an example with a byte-level stand-in tokenizer and both truncation sides.
import Foundation

private let scratch = FuzzSupport.scratchPath("jsonl", suffix: ".jsonl")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzSupport.write(UnsafeRawBufferPointer(start: data, count: size), to: scratch)
    guard let records = try? TrainingRecord.readJSONL(path: scratch) else { return 0 }
    let encode: (String) -> [Int] = { $0.utf8.map(Int.init) }
    var examples: [TrainingExample] = []
    for (i, record) in records.enumerated() {
        for truncation in [nil, TruncationSide.left, .right] {
            if let example = try? record.example(encode: encode, maximumLength: 16, truncation: truncation, source: "fuzz", line: i + 1) {
                precondition(example.inputIDs.count <= 16 && example.inputIDs.count == example.labels.count)
                examples.append(example)
            }
        }
    }
    if !examples.isEmpty {
        let batch = TrainingBatch(examples: Array(examples.prefix(8)), padTokenID: 0)
        _ = batch.labelTokenCount
    }
    return 0
}
