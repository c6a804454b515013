// Times one GPT-2 124M training step (zero gradients → forward(training:) → backward → clip → AdamW),
// the way `Trainer.step` runs it, on random tokens.
//
//     swift build -c release --product training-benchmark
//     .build/release/training-benchmark --batch 4 --seq 64 --steps 5 --warmup 1 [--json]
import Foundation
import GPT2
import Kernels
import Optimization
import Training

struct Arguments {
    var batch = 1, seq = 9, steps = 5, warmup = 1, seed: UInt64 = 0
    var json = false

    static func parse(_ args: [String]) -> Result<Arguments, BenchmarkError> {
        var a = Arguments()
        var i = 0
        while i < args.count {
            let flag = args[i]
            if flag == "--json" { a.json = true; i += 1; continue }
            guard i + 1 < args.count, let n = Int(args[i + 1]), n >= 0 else { return .failure(.usage("missing or bad value for \(flag)")) }
            switch flag {
            case "--batch": a.batch = n
            case "--seq": a.seq = n
            case "--steps": a.steps = n
            case "--warmup": a.warmup = n
            case "--seed": a.seed = UInt64(n)
            default: return .failure(.usage("unknown option \(flag)"))
            }
            i += 2
        }
        guard a.batch > 0, a.seq > 1, a.steps > 0 else { return .failure(.usage("batch ≥ 1, seq ≥ 2 and steps ≥ 1 required")) }
        return .success(a)
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self {
        case let .usage(m): return "\(m)\nusage: training-benchmark --batch B --seq T --steps N --warmup W [--seed S] [--json]"
        }
    }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024 // Linux: KiB
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func run(_ a: Arguments) throws {
    let config = GPT2Config()
    let model = try GPT2Model(parameters: GPT2Parameters(config: config, seed: 42))
    let optimizer = AdamW(parameterCount: model.layout.totalCount, options: .init(learningRate: 1e-4, weightDecay: 0.01))
    var state = a.seed &+ 1
    func nextToken() -> Int32 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int32(truncatingIfNeeded: (state >> 33) % UInt64(config.vocabularySize))
    }
    let N = a.batch * a.seq
    var phases: [String: [Double]] = [:]
    var steps: [Double] = []
    var losses: [Double] = []
    for step in 0..<(a.warmup + a.steps) {
        let ids = (0..<N).map { _ in nextToken() }
        let t0 = now()
        model.zeroGradients()
        let t1 = now()
        guard let loss = try model.forward(inputIDs: ids, batchSize: a.batch, sequenceLength: a.seq, labels: ids,
                                           training: true, dropoutSeed: UInt64(step), computeAllLogits: false) else { return }
        let t2 = now()
        model.backward()
        let t3 = now()
        let grads = model.gradients.buffer
        _ = clipGradientNorm(grads, maxNorm: 1.0)
        let t4 = now()
        optimizer.step(parameters: model.parameters.storage.buffer, gradients: UnsafeBufferPointer(grads))
        let t5 = now()
        guard step >= a.warmup else { continue }
        steps.append(t5 - t0)
        losses.append(Double(loss))
        for (name, ms) in [("zero", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("clip", t4 - t3), ("adamw", t5 - t4)] {
            phases[name, default: []].append(ms)
        }
    }
    let rss = peakRSSMegabytes()
    let order = ["zero", "forward", "backward", "clip", "adamw"]
    if a.json {
        let phaseText = order.map { "\"\($0)\": \(String(format: "%.2f", median(phases[$0] ?? [0])))" }.joined(separator: ", ")
        print("{\"implementation\": \"gpt2kit\", \"batch\": \(a.batch), \"seq\": \(a.seq), \"steps\": \(a.steps), \"warmup\": \(a.warmup), "
              + "\"median_ms\": \(String(format: "%.2f", median(steps))), \"min_ms\": \(String(format: "%.2f", steps.min() ?? 0)), "
              + "\"peak_rss_mb\": \(String(format: "%.0f", rss)), \"first_loss\": \(String(format: "%.4f", losses.first ?? .nan)), "
              + "\"phases_median_ms\": {\(phaseText)}}")
    } else {
        print("GPT-2 124M training step, batch \(a.batch) × \(a.seq) tokens, \(a.steps) steps after \(a.warmup) warm-up")
        print(String(format: "median %.1f ms/step (min %.1f), peak RSS %.0f MB, first loss %.4f", median(steps), steps.min() ?? 0, rss, losses.first ?? .nan))
        for name in order { print(String(format: "  %-9@ %8.1f ms", name, median(phases[name] ?? [0]))) }
    }
}

switch Arguments.parse(Array(CommandLine.arguments.dropFirst())) {
case let .failure(e):
    FileHandle.standardError.write(Data("\(e)\n".utf8))
    exit(2)
case let .success(a):
    do { try run(a) } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
