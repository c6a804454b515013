// Generation benchmark: ms per generated token for a GPT-2 124M-sized model with random weights.
// Usage: swift run -c release generation-benchmark [--repeats N] [--new-tokens N] [--prompt-length N]
//            [--weights f32|f16|q8_0] [--batches 1,3] [--greedy-only]
//        generation-benchmark --prompts 8 [--weights …]   # 8 different prompts (lengths 4…32) in one batch: tokens/s
//        generation-benchmark --write-gguf DIR           # the same weights as GGUF f32/f16/q8_0 + prompt.json
// Compare with Benchmarks/generate_reference.py (transformers) and Benchmarks/generate_llamacpp.py (llama.cpp).
import Foundation
import GPT2
import GPT2Kit
import Generation
import Kernels

func textArgument(_ name: String) -> String? {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return nil
}

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
            for format in QuantizedMatrix.Format.allCases {
                let q = QuantizedMatrix(format: format, weight: w.buffer.readOnly, C: C, OC: OC, layout: layout)
                var ts: [Double] = []
                for _ in 0..<20 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    q.forward(out: o.slice(0, n * OC), inp: x.slice(0, n * C).readOnly, bias: nil, N: n)
                    ts.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                let gbps = Double(q.bytesPerRow * OC) / median(ts) / 1e6
                print(String(format: "%5d x %5d %@ N=%d %@: %.3f ms (%.1f GB/s of weights)", C, OC, "\(layout)", n, format.rawValue, median(ts), gbps))
            }
        }
    }
    exit(0)
}
guard let weights = WeightPrecision(rawValue: textArgument("--weights") ?? "f32") else { fail(CocoaError(.featureUnsupported)) }
if let dir = textArgument("--write-gguf") {
    // The same random weights for llama.cpp, in every precision it is compared in, and the prompt ids.
    do {
        let tokenizer = try ModelIO.loadTokenizer(folder: textArgument("--tokenizer") ?? "fixtures/gpt2-tokenizer")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for dtype in GGUFModel.WeightType.allCases {
            try GGUFModel.write(parameters, tokenizer: tokenizer, name: "gpt2-124m-random", to: "\(dir)/gpt2-124m-random-\(dtype.rawValue).gguf", weightType: dtype)
        }
        let prompts = (0..<8).map { i in (0..<(4 + 4 * i)).map { _ in Int(rng.next() % 50257) } }
        let json = try JSONSerialization.data(withJSONObject: ["prompt": prompt, "prompts": prompts, "new_tokens": newTokens])
        try json.write(to: URL(fileURLWithPath: "\(dir)/prompt.json"))
        print("wrote \(dir)/gpt2-124m-random-{f32,f16,q8_0}.gguf and prompt.json")
    } catch { fail(error) }
    exit(0)
}
print("GPT-2 124M shape, random weights in \(weights.rawValue) (kernels \(QuantizedMatrix.isVectorized ? "AVX2/FMA/F16C" : "portable")); prompt \(promptLength) tokens, \(newTokens) new tokens, median of \(repeats) runs")
print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")")
if let count = textArgument("--prompts").flatMap(Int.init) {
    // Different prompt lengths in one left-padded batch (lengths 4, 8, …), the same ids `--write-gguf` saves.
    let prompts = (0..<count).map { i in (0..<(4 + 4 * i)).map { _ in Int(rng.next() % 50257) } }
    var options = GenerationOptions(maxNewTokens: newTokens, eosTokenIDs: [])
    options.weights = weights
    var rates: [Double] = []
    for run in 0...repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        let out: [[Int]]
        do { out = try Generator(model: model, prompts: prompts, options: options).run() } catch { fail(error) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if run > 0 { rates.append(Double(out.count * newTokens) / seconds) }
    }
    print(String(format: "greedy, %d prompts of lengths 4…%d: %.1f new tokens/s (median; min %.1f, max %.1f)",
                 count, 4 * count, median(rates), rates.min() ?? 0, rates.max() ?? 0))
    exit(0)
}
let batches = (textArgument("--batches") ?? "1,3").split(separator: ",").compactMap { Int($0) }
let strategies: [(String, DecodingStrategy)] = CommandLine.arguments.contains("--greedy-only")
    ? [("greedy", .greedy)] : [("greedy", .greedy), ("sample top-k 50", .sampling(SamplingOptions()))]
for (label, strategy) in strategies {
    for batch in batches {
        var options = GenerationOptions(maxNewTokens: newTokens, strategy: strategy, eosTokenIDs: [], numReturnSequences: batch, seed: 1)
        options.weights = weights
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
