// libFuzzer harness: tokenizer loading, then encoding and decoding with what was loaded.
// Input: first byte even → the rest is a tokenizer.json; odd → the rest is vocab.json, a NUL byte, merges.txt.
import Foundation
import Tokenization

private let probes = ["Hello, world! It's 2024.\n\n  <|endoftext|> naïve café 🤖", " the", "aaaaaaaaaaaaaaaa", ""]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let body = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let tokenizer: GPT2Tokenizer?
    if data[0] & 1 == 0 {
        tokenizer = try? GPT2Tokenizer(tokenizerJSONData: Data(body))
    } else {
        let split = body.firstIndex(of: 0) ?? body.count
        let vocab = Data(body[..<split])
        let merges = split < body.count ? Data(body[(split + 1)...]) : Data()
        tokenizer = try? GPT2Tokenizer(vocabJSON: vocab, mergesText: merges)
    }
    guard let tokenizer else { return 0 }
    var texts = probes
    texts.append(String(decoding: body.prefix(256), as: UTF8.self))
    for text in texts {
        let ids = tokenizer.encode(text)
        for id in ids { precondition(id >= 0 && id < tokenizer.vocabularySize, "encode produced id \(id) outside the vocabulary") }
        let decoded = try? tokenizer.decodeBytes(ids)
        precondition(decoded != nil, "decode refused ids encode produced")
        _ = tokenizer.encode(text, allowSpecial: false)
    }
    _ = try? tokenizer.decode([0, tokenizer.eosTokenID, tokenizer.vocabularySize - 1, tokenizer.vocabularySize, -1])
    return 0
}
