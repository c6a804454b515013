// Generation benchmark: ms per generated token for a GPT-2 124M-sized model with random weights.
// Usage: swift run -c release generation-benchmark [--repeats N] [--new-tokens N] [--prompt-length N]
// Compare with Benchmarks/generate_reference.py (transformers' generate on PyTorch CPU).
import Foundation
import GPT2
import Generation

func argument(_ name: String, default value: Int) -> Int {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return value
}

let repeats = argument("--repeats", default: 5)
let newTokens = argument("--new-tokens", default: 64)
let promptLength = argument("--prompt-length", default: 8)
let config = GPT2Config(vocabularySize: 50257, maxPositions: 1024, embeddingSize: 768, layerCount: 12, headCount: 12)

// Random weights like transformers' init: N(0, 0.02) matrices and embeddings, LayerNorm weight 1, biases 0.
let parameters = GPT2Parameters(config: config)
var rng = Xoshiro256StarStar(seed: 2024)
func normal(_ rng: inout Xoshiro256StarStar) -> Float {
    let u1 = max(rng.nextUnitDouble(), 1e-300), u2 = rng.nextUnitDouble()
    return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
}
for entry in parameters.layout.entries {
    let view = parameters.storage[entry.range]
    if entry.name.hasSuffix("ln_1.weight") || entry.name.hasSuffix("ln_2.weight") || entry.name.hasSuffix("ln_f.weight") {
        view.update(repeating: 1)
    } else if entry.name.hasSuffix(".bias") {
        view.update(repeating: 0)
    } else {
        for i in view.indices { view[i] = 0.02 * normal(&rng) }
    }
}
func fail(_ error: Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
let model: GPT2Model
do { model = try GPT2Model(parameters: parameters) } catch { fail(error) }
let prompt = (0..<promptLength).map { _ in Int(rng.next() % 50257) }

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }

print("GPT-2 124M shape, random weights; prompt \(promptLength) tokens, \(newTokens) new tokens, median of \(repeats) runs")
print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")")
for (label, strategy) in [("greedy", DecodingStrategy.greedy), ("sample top-k 50", .sampling(SamplingOptions()))] {
    for batch in [1, 3] {
        let options = GenerationOptions(maxNewTokens: newTokens, strategy: strategy, eosTokenIDs: [], numReturnSequences: batch, seed: 1)
        var times: [Double] = []
        for run in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let generator: Generator
            do { generator = try Generator(model: model, promptIDs: prompt, options: options) } catch { fail(error) }
            let out = generator.run()
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            precondition(out[0].count == promptLength + newTokens)
            if run > 0 { times.append(ms / Double(newTokens)) } // run 0 warms up
        }
        print(String(format: "%@  batch %d: %.2f ms/token (median; min %.2f, max %.2f)", label, batch, median(times), times.min() ?? 0, times.max() ?? 0))
    }
}
