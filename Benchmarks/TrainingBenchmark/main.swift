// Times one GPT-2 124M training step (zero gradients → forward(training:) → backward → clip → AdamW),
// the way `Trainer.step` runs it, on random tokens.
//
//     swift build -c release --product training-benchmark
//     .build/release/training-benchmark --batch 4 --seq 64 --steps 5 --warmup 1 [--json]
//     .build/release/training-benchmark --batch 4 --seq 128 --lora 8 [--preset gpt2-xl]   # LoRA on c_attn, c_proj, c_fc
//     .build/release/training-benchmark --batch 4 --seq 128 --lora 8 --paired --steps 20 --json
//         # one process, a LoRA model and a full one, their steps alternating: each LoRA step's time ÷ the next full
//         # step's, so a drift in the machine's speed (a shared VM's drifts 10–15 % over minutes) reaches both alike
import Foundation
import GPT2
import Kernels
import Optimization
import Tensors
import Training

struct Arguments {
    var batch = 1, seq = 9, steps = 5, warmup = 1, seed: UInt64 = 0, lora = 0
    var json = false, kernels = false, paired = false
    var preset = GPT2Config.Preset.gpt2

    static func parse(_ args: [String]) -> Result<Arguments, BenchmarkError> {
        var a = Arguments()
        var i = 0
        while i < args.count {
            let flag = args[i]
            if flag == "--json" { a.json = true; i += 1; continue }
            if flag == "--kernels" { a.kernels = true; i += 1; continue }
            if flag == "--paired" { a.paired = true; i += 1; continue }
            if flag == "--preset", i + 1 < args.count, let p = GPT2Config.Preset(rawValue: args[i + 1]) { a.preset = p; i += 2; continue }
            guard i + 1 < args.count, let n = Int(args[i + 1]), n >= 0 else { return .failure(.usage("missing or bad value for \(flag)")) }
            switch flag {
            case "--batch": a.batch = n
            case "--seq": a.seq = n
            case "--steps": a.steps = n
            case "--warmup": a.warmup = n
            case "--seed": a.seed = UInt64(n)
            case "--lora": a.lora = n
            default: return .failure(.usage("unknown option \(flag)"))
            }
            i += 2
        }
        guard a.batch > 0, a.seq > 1, a.steps > 0 else { return .failure(.usage("batch ≥ 1, seq ≥ 2 and steps ≥ 1 required")) }
        if a.paired, a.lora == 0 { return .failure(.usage("--paired compares a LoRA step with a full one: give --lora R")) }
        return .success(a)
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self {
        case let .usage(m): return "\(m)\nusage: training-benchmark --batch B --seq T --steps N --warmup W [--seed S] [--lora R] [--preset gpt2|gpt2-medium|gpt2-large|gpt2-xl] [--paired] [--json] [--kernels]"
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

/// One model, its optimizer and a token stream: `step` runs one timed training step.
final class TrainingSession {
    let model: GPT2Model
    let optimizer: AdamW
    let arguments: Arguments
    let vocabularySize: Int
    private var state: UInt64
    private var stepIndex = 0
    var phases: [String: [Double]] = [:]
    var steps: [Double] = []
    var losses: [Double] = []

    /// A model with random weights; `lora` > 0 freezes it and trains a rank-`lora` adapter on c_attn, c_proj, c_fc.
    init(_ a: Arguments, lora: Int) throws {
        let config = GPT2Config(preset: a.preset)
        let parameters = GPT2Parameters(config: config, seed: 42)
        var adapter: LoRAAdapter?
        if lora > 0 {
            adapter = try LoRAAdapter(configuration: LoRAConfiguration(rank: lora, alpha: Double(2 * lora), targetModules: ["c_attn", "c_proj", "c_fc"]),
                                      modelConfig: config)
            adapter?.initialize(seed: 1)
        }
        model = try GPT2Model(parameters: parameters, trainable: adapter == nil ? nil : .none(parameters.layout), adapter: adapter)
        optimizer = AdamW(parameterCount: model.gradients.count, options: .init(learningRate: 1e-4, weightDecay: 0.01))
        arguments = a
        vocabularySize = config.vocabularySize
        state = a.seed &+ 1
    }

    private func nextToken() -> TokenID {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return TokenID(truncatingIfNeeded: (state >> 33) % UInt64(vocabularySize))
    }

    /// Runs one step; returns its milliseconds, or nil when the loss is not finite. Steps after the warm-up are recorded.
    func step() throws -> Double? {
        let a = arguments, N = a.batch * a.seq, step = stepIndex
        stepIndex += 1
        let ids = (0..<N).map { _ in nextToken() }
        let t0 = now()
        model.zeroGradients()
        let t1 = now()
        guard let loss = try model.forward(inputIDs: ids, batchSize: a.batch, sequenceLength: a.seq, labels: ids,
                                           training: true, dropoutSeed: UInt64(step), computeAllLogits: false, lossScale: 1) else { return nil }
        let t2 = now()
        model.backward()
        let t3 = now()
        let grads = model.gradients.buffer
        _ = clipGradientNorm(grads, maxNorm: 1.0)
        let t4 = now()
        optimizer.step(parameterSegments: model.trainableSegments, gradients: UnsafeBufferPointer(grads))
        let t5 = now()
        guard step >= a.warmup else { return t5 - t0 }
        steps.append(t5 - t0)
        losses.append(Double(loss))
        for (name, ms) in [("zero", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("clip", t4 - t3), ("adamw", t5 - t4)] {
            phases[name, default: []].append(ms)
        }
        return t5 - t0
    }
}

func run(_ a: Arguments) throws {
    let session = try TrainingSession(a, lora: a.lora)
    for _ in 0..<(a.warmup + a.steps) { guard try session.step() != nil else { return } }
    let model = session.model, steps = session.steps, losses = session.losses, phases = session.phases
    let rss = peakRSSMegabytes()
    let order = ["zero", "forward", "backward", "clip", "adamw"]
    if a.json {
        let phaseText = order.map { "\"\($0)\": \(String(format: "%.2f", median(phases[$0] ?? [0])))" }.joined(separator: ", ")
        print("{\"implementation\": \"gpt2kit\", \"model\": \"\(a.preset.rawValue)\", \"lora_rank\": \(a.lora), \"trained_parameters\": \(model.gradients.count), \"batch\": \(a.batch), \"seq\": \(a.seq), \"steps\": \(a.steps), \"warmup\": \(a.warmup), "
              + "\"median_ms\": \(String(format: "%.2f", median(steps))), \"min_ms\": \(String(format: "%.2f", steps.min() ?? 0)), "
              + "\"peak_rss_mb\": \(String(format: "%.0f", rss)), \"first_loss\": \(String(format: "%.4f", losses.first ?? .nan)), "
              + "\"phases_median_ms\": {\(phaseText)}, \"blas_core\": \"\(BLASThreads.coreName ?? "unknown")\", "
              + "\"kernel_path\": \"\(TrainingKernelPath.isVectorized ? "avx2" : "portable")\"}")
    } else {
        print("\(a.preset.rawValue)\(a.lora > 0 ? " LoRA r=\(a.lora)" : "") training step (\(model.gradients.count) trained floats), batch \(a.batch) × \(a.seq) tokens, \(a.steps) steps after \(a.warmup) warm-up")
        print(String(format: "median %.1f ms/step (min %.1f), peak RSS %.0f MB, first loss %.4f", median(steps), steps.min() ?? 0, rss, losses.first ?? .nan)
              + " (OpenBLAS kernels: \(BLASThreads.coreName ?? "unknown"))")
        for name in order { print(String(format: "  %-9@ %8.1f ms", name, median(phases[name] ?? [0]))) }
    }
}

/// `--paired`: a LoRA model and a full one in this process, their steps alternating (LoRA first in odd pairs, full
/// first in even ones); prints each model's median and the median of the per-pair ratios.
func runPaired(_ a: Arguments) throws {
    let lora = try TrainingSession(a, lora: a.lora), full = try TrainingSession(a, lora: 0)
    var ratios: [Double] = []
    for pair in 0..<(a.warmup + a.steps) {
        var l: Double?, f: Double?
        if pair % 2 == 0 { l = try lora.step(); f = try full.step() } else { f = try full.step(); l = try lora.step() }
        guard let l, let f else { return }
        if pair >= a.warmup { ratios.append(l / f) }
    }
    let lm = median(lora.steps), fm = median(full.steps), rm = median(ratios)
    let rss = peakRSSMegabytes()
    if a.json {
        print("{\"implementation\": \"gpt2kit\", \"model\": \"\(a.preset.rawValue)\", \"paired\": true, \"lora_rank\": \(a.lora), \"batch\": \(a.batch), \"seq\": \(a.seq), \"steps\": \(a.steps), \"warmup\": \(a.warmup), "
              + "\"lora_median_ms\": \(String(format: "%.2f", lm)), \"full_median_ms\": \(String(format: "%.2f", fm)), "
              + "\"lora_over_full_median\": \(String(format: "%.4f", rm)), \"lora_over_full_min\": \(String(format: "%.4f", ratios.min() ?? .nan)), "
              + "\"lora_over_full_max\": \(String(format: "%.4f", ratios.max() ?? .nan)), \"peak_rss_mb_both\": \(String(format: "%.0f", rss)), "
              + "\"blas_core\": \"\(BLASThreads.coreName ?? "unknown")\", \"kernel_path\": \"\(TrainingKernelPath.isVectorized ? "avx2" : "portable")\"}")
    } else {
        print("\(a.preset.rawValue) LoRA r=\(a.lora) and full training steps alternating, batch \(a.batch) × \(a.seq) tokens, \(a.steps) pairs after \(a.warmup) warm-up")
        print(String(format: "LoRA median %.1f ms, full median %.1f ms; LoRA ÷ full per pair: median %.3f (%.3f–%.3f)", lm, fm, rm,
                     ratios.min() ?? .nan, ratios.max() ?? .nan) + " (OpenBLAS kernels: \(BLASThreads.coreName ?? "unknown"))")
    }
}

/// Times each kernel of one block and the head at the benchmark's shape (`--kernels`).
func profileKernels(_ a: Arguments) {
    let B = a.batch, T = a.seq, N = B * T, C = 768, NH = 12, F = 3072, V = 50257
    func buffer(_ n: Int) -> FloatBuffer {
        let b = FloatBuffer(count: n)
        let p = b.buffer
        for i in p.indices { p[i] = Float((i * 7919) % 1000) / 1000 - 0.5 }
        return b
    }
    let x = buffer(N * F), y = buffer(N * max(F, V)), w = buffer(V * C), dw = buffer(V * C), bias = buffer(F), qkv = buffer(N * 3 * C)
    let att = buffer(Attention.statisticsCount(B: B, T: T, NH: NH)), scratch = buffer(Attention.scratchCount(T: T)), lse = buffer(N), losses = buffer(N)
    let targets = [Int32]((0..<N).map { Int32($0 % V) })
    func time(_ name: String, flops: Double, _ body: () -> Void) {
        body()
        var samples: [Double] = []
        for _ in 0..<a.steps { let t0 = now(); body(); samples.append(now() - t0) }
        let ms = median(samples), fastest = samples.min() ?? ms
        let rate = flops > 0 ? String(format: "%7.1f GFLOP/s", flops / ms / 1e6) : ""
        print("  " + name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%8.2f ms (min %6.2f)  ", ms, fastest) + rate)
    }
    print("kernels at N = \(N) (B \(B), T \(T)), median and fastest of \(a.steps)")
    withExtendedLifetime((x, y, w, dw, bias, qkv, att, scratch, lse, losses)) {
        let fN = Double(N)
        time("matmul fwd c_attn (C→3C)", flops: 2 * fN * Double(C * 3 * C)) {
            MatMul.forward(out: y.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: bias.buffer.readOnly, N: N, C: C, OC: 3 * C)
        }
        time("matmul bwd c_attn", flops: 4 * fN * Double(C * 3 * C)) {
            MatMul.backward(dinp: y.buffer, dweight: dw.buffer, dbias: bias.buffer, dout: x.buffer.readOnly, inp: x.buffer.readOnly,
                            weight: w.buffer.readOnly, N: N, C: C, OC: 3 * C)
        }
        time("matmul fwd c_fc (C→4C)", flops: 2 * fN * Double(C * F)) {
            MatMul.forward(out: y.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: bias.buffer.readOnly, N: N, C: C, OC: F)
        }
        time("matmul bwd c_fc", flops: 4 * fN * Double(C * F)) {
            MatMul.backward(dinp: y.buffer, dweight: dw.buffer, dbias: bias.buffer, dout: x.buffer.readOnly, inp: x.buffer.readOnly,
                            weight: w.buffer.readOnly, N: N, C: C, OC: F)
        }
        for (name, CI, CO) in [("c_attn", C, 3 * C), ("attn c_proj", C, C), ("c_fc", C, F), ("mlp c_proj", F, C)] {
            time("matmul bwd dinp only \(name)", flops: 2 * fN * Double(CI * CO)) {
                MatMul.backward(dinp: y.buffer, dweight: nil, dbias: nil, dout: x.buffer.readOnly, inp: x.buffer.readOnly,
                                weight: w.buffer.readOnly, N: N, C: CI, OC: CO)
            }
            time("matmul bwd dweight only \(name)", flops: 2 * fN * Double(CI * CO)) {
                MatMul.backward(dinp: nil, dweight: dw.buffer, dbias: nil, dout: x.buffer.readOnly, inp: x.buffer.readOnly,
                                weight: w.buffer.readOnly, N: N, C: CI, OC: CO)
            }
            time("matmul fwd \(name)", flops: 2 * fN * Double(CI * CO)) {
                MatMul.forward(out: y.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: bias.buffer.readOnly, N: N, C: CI, OC: CO)
            }
        }
        time("lm head fwd (C→V)", flops: 2 * fN * Double(C * V)) {
            MatMul.forward(out: y.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: nil, N: N, C: C, OC: V, layout: .outputMajor)
        }
        time("lm head bwd", flops: 4 * fN * Double(C * V)) {
            MatMul.backward(dinp: x.buffer, dweight: dw.buffer, dbias: nil, dout: y.buffer.readOnly, inp: x.buffer.readOnly,
                            weight: w.buffer.readOnly, N: N, C: C, OC: V, layout: .outputMajor)
        }
        // The LoRA update beside c_fc (C→4C) and the MLP's c_proj (4C→C), rank 8: passes over memory, not arithmetic.
        let r = 8, h = buffer(N * r), dh = buffer(N * r), la = buffer(r * F), lb = buffer(F * r), dla = buffer(r * F), dlb = buffer(F * r)
        withExtendedLifetime((h, dh, la, lb, dla, dlb)) {
            for (name, CI, CO) in [("c_fc", C, F), ("mlp c_proj", F, C)] {
                time("lora r8 fwd \(name)", flops: 0) {
                    LowRankAdapter.forward(out: y.buffer, h: h.buffer, inp: x.buffer.readOnly, a: la.buffer.readOnly, b: lb.buffer.readOnly,
                                           N: N, C: CI, OC: CO, r: r, scale: 2)
                }
                time("lora r8 bwd \(name)", flops: 0) {
                    LowRankAdapter.backward(dinp: dw.buffer, da: dla.buffer, db: dlb.buffer, dh: dh.buffer, dout: y.buffer.readOnly,
                                            inp: x.buffer.readOnly, h: h.buffer.readOnly, a: la.buffer.readOnly, b: lb.buffer.readOnly,
                                            N: N, C: CI, OC: CO, r: r, scale: 2)
                }
            }
        }
        time("attention fwd (dropout 0.1)", flops: 0) {
            Attention.forward(out: x.buffer, statistics: att.buffer, qkv: qkv.buffer.readOnly, keyMask: nil, scratch: scratch.buffer,
                              B: B, T: T, C: C, NH: NH, scale: 0.125, dropout: 0.1, dropoutSeed: 1)
        }
        time("attention bwd (dropout 0.1)", flops: 0) {
            Attention.backward(dqkv: y.buffer, dout: x.buffer.readOnly, qkv: qkv.buffer.readOnly, statistics: att.buffer.readOnly, keyMask: nil,
                               scratch: scratch.buffer, B: B, T: T, C: C, NH: NH, scale: 0.125, dropout: 0.1, dropoutSeed: 1)
        }
        time("gelu fwd+bwd (N·4C)", flops: 0) {
            Activation.geluNew.forward(out: y.buffer, inp: x.buffer.readOnly, N: N * F)
            Activation.geluNew.backward(dinp: y.buffer, inp: x.buffer.readOnly, dout: x.buffer.readOnly, N: N * F)
        }
        time("layernorm fwd+bwd (N·C)", flops: 0) {
            LayerNorm.forward(out: y.buffer, mean: lse.buffer, rstd: losses.buffer, inp: x.buffer.readOnly, weight: bias.buffer.readOnly,
                              bias: bias.buffer.readOnly, N: N, C: C, eps: 1e-5)
            LayerNorm.backward(dinp: y.buffer, dweight: dw.buffer, dbias: dw.buffer, dout: x.buffer.readOnly, inp: x.buffer.readOnly,
                               weight: bias.buffer.readOnly, mean: lse.buffer.readOnly, rstd: losses.buffer.readOnly, N: N, C: C)
        }
        time("dropout fwd+bwd (N·C)", flops: 0) {
            Dropout.forward(out: y.buffer, inp: x.buffer.readOnly, N: N * C, p: 0.1, seed: 3)
            Dropout.backward(dinp: y.buffer, dout: x.buffer.readOnly, N: N * C, p: 0.1, seed: 3)
        }
        targets.withUnsafeBufferPointer { tg in
            time("cross-entropy fwd+bwd (N·V)", flops: 0) {
                CrossEntropy.forward(losses: losses.buffer, logsumexp: lse.buffer, logits: w.buffer.readOnly, targets: tg, N: N, V: V)
                _ = dw.buffer[0 ..< N * V].update(fromContentsOf: w.buffer[0 ..< N * V])
                CrossEntropy.gradientInPlace(logits: dw.buffer, logsumexp: lse.buffer.readOnly, targets: tg, dlossScale: 1 / Float(N), N: N, V: V)
            }
        }
    }
}

switch Arguments.parse(Array(CommandLine.arguments.dropFirst())) {
case let .failure(e):
    FileHandle.standardError.write(Data("\(e)\n".utf8))
    exit(2)
case let .success(a):
    if a.kernels { profileKernels(a); exit(0) }
    do { try a.paired ? runPaired(a) : run(a) } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
