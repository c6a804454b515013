// Generation benchmark: ms per generated token for a GPT-2 124M-sized model with random weights.
// Usage: swift run -c release generation-benchmark [--repeats N] [--new-tokens N] [--prompt-length N]
// Compare with Benchmarks/generate_reference.py (transformers' generate on PyTorch CPU).
import Foundation
import GPT2
import Generation
import Kernels

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

if CommandLine.arguments.contains("--matmul") {
    // decode-step matmuls alone: sgemm vs one sgemv per row
    for (C, OC, layout) in [(768, 3072, MatMul.WeightLayout.inputMajor), (3072, 768, .inputMajor), (768, 50257, .outputMajor)] {
        let w = FloatBuffer(count: C * OC), x = FloatBuffer(count: 3 * C), o = FloatBuffer(count: 3 * OC)
        for i in 0..<(C * OC) { w.buffer[i] = Float(i % 7) * 0.01 }
        for n in [1, 3] {
            for (name, fewRows) in [("sgemm", false), ("sgemv", true)] {
                var ts: [Double] = []
                for _ in 0..<20 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    if fewRows {
                        MatMul.forwardFewRows(out: o.slice(0, n * OC), inp: x.slice(0, n * C).readOnly, weight: w.buffer.readOnly, bias: nil, N: n, C: C, OC: OC, layout: layout)
                    } else {
                        MatMul.forward(out: o.slice(0, n * OC), inp: x.slice(0, n * C).readOnly, weight: w.buffer.readOnly, bias: nil, N: n, C: C, OC: OC, layout: layout)
                    }
                    ts.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                print(String(format: "%5d x %5d %@ N=%d %@: %.3f ms", C, OC, "\(layout)", n, name, median(ts)))
            }
        }
    }
    exit(0)
}
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
