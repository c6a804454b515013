import Foundation
import Kernels
import Synchronization
import Testing
import TestSupport

/// The C kernels behind GELU, LayerNorm, dropout, cross-entropy and LoRA against double-precision formulas, at sizes
/// that are not multiples of the vector width and large enough to be split over the cores: the vector bodies,
/// their tails and the chunk boundaries all run. Each test runs the AVX2/FMA code (where the CPU has it) and the
/// portable code (what a CPU without them, or an arm64 Mac, runs).
@Suite(.serialized) struct VectorKernelTests {
    /// Runs `body` on the portable kernels when `portable`, restoring the CPU's choice after.
    func withPath(portable: Bool, _ body: () throws -> Void) rethrows {
        TrainingKernelPath.forcePortable(portable)
        defer { TrainingKernelPath.forcePortable(false) }
        try body()
    }

    /// The model end to end on the portable kernels (what an arm64 Mac or a CPU without AVX2/FMA runs; the other
    /// model-level tests run this CPU's path): PEFT's loss and gradients and its 10-step AdamW trajectory for each
    /// golden adapter, and a full fine-tuning trajectory against PyTorch's.
    @Test(arguments: LoRATests.adapters) func goldensOnThePortablePath(adapter: String) throws {
        try withPath(portable: true) {
            #expect(!TrainingKernelPath.isVectorized)
            try LoRATests().peftAdapterGivesPEFTsLossAndGradients(name: adapter)
            try LoRATests().tenAdamWStepsFollowPEFTsTrajectory(name: adapter)
            if adapter == LoRATests.adapters[0] { try FinetuneGoldenTests().trajectory(key: "finetune_wd_clip") }
        }
    }

    @Test(arguments: [false, true]) func geluAtOddSizesAndOffsets(portable: Bool) { withPath(portable: portable) {
        let n = 40_013 // split over the cores, with a tail
        let xs = (0..<n).map { Float($0) / Float(n) * 16 - 8 }
        let out = FloatBuffer(count: n), shifted = FloatBuffer(count: n - 3), xb = owned(xs)
        let dout = owned((0..<n).map { Float($0 % 7) - 3 }), dx = owned([Float](repeating: 0.5, count: n))
        withExtendedLifetime((xb, dout)) {
            GELU.forward(out: out.buffer.baseAddress!, inp: xb.buffer.baseAddress!, N: n)
            // The same inputs starting three elements later: every value is independent of its position.
            GELU.forward(out: shifted.buffer.baseAddress!, inp: xb.buffer.baseAddress! + 3, N: n - 3)
            GELU.backward(dinp: dx.buffer.baseAddress!, inp: xb.buffer.baseAddress!, dout: dout.buffer.baseAddress!, N: n)
        }
        let y = out.toArray(), ys = shifted.toArray(), g = dx.toArray(), d = dout.toArray()
        #expect(Array(y[3...]) == ys)
        for i in stride(from: 0, to: n, by: 97) + [n - 1, n - 2, n - 5] {
            let x = Double(xs[i]), c = (2 / Double.pi).squareRoot()
            let u = c * (x + 0.044715 * x * x * x), t = tanh(u)
            expectClose(Double(y[i]), 0.5 * x * (1 + t), rtol: 1e-5, atol: 1e-6, "gelu(\(x))")
            let derivative = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
            expectClose(Double(g[i]) - 0.5, derivative * Double(d[i]), rtol: 1e-4, atol: 2e-6, "gelu′(\(x))")
        }
    } }

    @Test(arguments: [(3, 13, false), (700, 77, false), (2, 768, false), (3, 13, true), (700, 77, true)])
    func layerNormAgainstDouble(N: Int, C: Int, portable: Bool) { withPath(portable: portable) {
        var rng = TestRNG(11)
        let x = rng.array(N * C, scale: 3).enumerated().map { $0.element + Float($0.offset % 5) }
        let w = rng.array(C).map { $0 + 1 }, b = rng.array(C), dout = rng.array(N * C)
        let out = FloatBuffer(count: N * C), again = FloatBuffer(count: N * C), mean = FloatBuffer(count: N), rstd = FloatBuffer(count: N)
        let dx = owned([Float](repeating: 0, count: N * C)), dw = owned([Float](repeating: 0, count: C)), db = owned([Float](repeating: 0, count: C))
        let xb = owned(x), wb = owned(w), bb = owned(b), db2 = owned(dout)
        withExtendedLifetime((xb, wb, bb, db2)) {
            LayerNorm.forward(out: out.buffer, mean: mean.buffer, rstd: rstd.buffer, inp: xb.buffer.readOnly,
                              weight: wb.buffer.readOnly, bias: bb.buffer.readOnly, N: N, C: C, eps: 1e-5)
            LayerNorm.recompute(out: again.buffer, inp: xb.buffer.readOnly, mean: mean.buffer.readOnly, rstd: rstd.buffer.readOnly,
                                weight: wb.buffer.readOnly, bias: bb.buffer.readOnly, N: N, C: C)
            LayerNorm.backward(dinp: dx.buffer, dweight: dw.buffer, dbias: db.buffer, dout: db2.buffer.readOnly, inp: xb.buffer.readOnly,
                               weight: wb.buffer.readOnly, mean: mean.buffer.readOnly, rstd: rstd.buffer.readOnly, N: N, C: C)
        }
        #expect(out.toArray() == again.toArray(), "recompute gives the forward's floats")
        let y = out.toArray(), gx = dx.toArray(), gw = dw.toArray(), gb = db.toArray()
        var refW = [Double](repeating: 0, count: C), refB = [Double](repeating: 0, count: C)
        for n in 0..<N {
            let row = (0..<C).map { Double(x[n * C + $0]) }
            let m = row.reduce(0, +) / Double(C)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C)
            let s = 1 / (v + 1e-5).squareRoot()
            let norm = row.map { ($0 - m) * s }
            let g = (0..<C).map { Double(w[$0]) * Double(dout[n * C + $0]) }
            let gMean = g.reduce(0, +) / Double(C), gnMean = zip(g, norm).map(*).reduce(0, +) / Double(C)
            for i in 0..<C {
                expectClose(Double(y[n * C + i]), norm[i] * Double(w[i]) + Double(b[i]), rtol: 1e-5, atol: 1e-5, "ln out[\(n),\(i)]")
                expectClose(Double(gx[n * C + i]), (g[i] - gMean - norm[i] * gnMean) * s, rtol: 1e-4, atol: 1e-5, "ln dinp[\(n),\(i)]")
                refW[i] += norm[i] * Double(dout[n * C + i])
                refB[i] += Double(dout[n * C + i])
            }
        }
        for i in 0..<C {
            expectClose(Double(gw[i]), refW[i], rtol: 1e-4, atol: 1e-4, "ln dweight[\(i)]")
            expectClose(Double(gb[i]), refB[i], rtol: 1e-4, atol: 1e-4, "ln dbias[\(i)]")
        }
    } }

    @Test(arguments: [false, true]) func dropoutEqualsTheCounterHashElementByElement(portable: Bool) { withPath(portable: portable) {
        let n = 70_007, p: Float = 0.3, seed: UInt64 = 0xDEAD_BEEF
        let x = owned((0..<n).map { Float($0 % 11) + 1 }), out = FloatBuffer(count: n), dx = owned([Float](repeating: 2, count: n))
        withExtendedLifetime(x) {
            Dropout.forward(out: out.buffer, inp: x.buffer.readOnly, N: n, p: p, seed: seed)
            Dropout.backward(dinp: dx.buffer, dout: x.buffer.readOnly, N: n, p: p, seed: seed)
        }
        let xs = x.toArray(), y = out.toArray(), g = dx.toArray(), scale = 1 / (1 - p)
        var mismatches = 0
        for i in 0..<n {
            let kept = Dropout.keeps(seed: seed, index: i, p: p)
            if y[i] != (kept ? xs[i] * scale : 0) || g[i] != 2 + (kept ? xs[i] * scale : 0) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    } }

    @Test(arguments: [false, true]) func crossEntropyRowsAgainstDouble(portable: Bool) { withPath(portable: portable) {
        let N = 3, V = 50_257
        var rng = TestRNG(3)
        let logits = rng.array(N * V, scale: 12)
        let targets = OwnedIDs([5, 50_256, 1000])
        let losses = FloatBuffer(count: N), lse = FloatBuffer(count: N), lb = owned(logits)
        withExtendedLifetime((lb, targets)) {
            CrossEntropy.forward(losses: losses.buffer, logsumexp: lse.buffer, logits: lb.buffer.readOnly, targets: targets.buffer, N: N, V: V)
            CrossEntropy.gradientInPlace(logits: lb.buffer, logsumexp: lse.buffer.readOnly, targets: targets.buffer, dlossScale: 0.5, N: N, V: V)
        }
        let grad = lb.toArray()
        for n in 0..<N {
            let row = logits[(n * V)..<((n + 1) * V)].map(Double.init)
            let m = row.max() ?? 0
            let ref = m + log(row.map { exp($0 - m) }.reduce(0, +))
            expectClose(Double(lse.buffer[n]), ref, rtol: 1e-6, "logsumexp[\(n)]")
            for i in stride(from: 0, to: V, by: 101) + [V - 1] {
                let target = Int(targets.buffer[n])
                let expected = 0.5 * (exp(row[i] - ref) - (i == target ? 1 : 0))
                expectClose(Double(grad[n * V + i]), expected, rtol: 1e-5, atol: 1e-9, "dlogits[\(n),\(i)]")
            }
        }
    } }

    /// LoRA's products (`LowRankAdapter`, the C kernels behind it) against double sums: forward adding to the output
    /// and writing it with and without a bias; backward adding to dinp and writing it. Ranks a multiple of the vector
    /// width and not (the vector code's fallback), row counts split over the cores with a four-row tail, widths
    /// with vector tails.
    @Test(arguments: [(70, 40, 45, 8, false), (70, 37, 45, 5, false), (9, 24, 70, 16, false), (130, 13, 8, 8, false),
                      (70, 40, 45, 8, true), (70, 37, 45, 5, true)])
    func lowRankAdapterAgainstDouble(N: Int, C: Int, OC: Int, r: Int, portable: Bool) { withPath(portable: portable) {
        var rng = TestRNG(UInt64(N * 1000 + C + r))
        let x = rng.array(N * C), a = rng.array(r * C), b = rng.array(OC * r), dout = rng.array(N * OC), bias = rng.array(OC)
        let out0 = rng.array(N * OC), dinp0 = rng.array(N * C), da0 = rng.array(r * C), db0 = rng.array(OC * r)
        let scale: Float = 1.75
        func double(_ v: [Float]) -> [Double] { v.map(Double.init) }
        // Reference: h = x·Aᵀ, u = s·h·Bᵀ, dh = s·dout·B, dA = dhᵀ·x, dB = s·doutᵀ·h, dinp = dh·A.
        var h = [Double](repeating: 0, count: N * r), dh = h
        for n in 0..<N { for k in 0..<r { for c in 0..<C { h[n * r + k] += Double(x[n * C + c]) * Double(a[k * C + c]) } } }
        for n in 0..<N { for k in 0..<r { for o in 0..<OC { dh[n * r + k] += Double(scale) * Double(dout[n * OC + o]) * Double(b[o * r + k]) } } }
        var u = [Double](repeating: 0, count: N * OC), dB = double(db0), dA = double(da0), dX = [Double](repeating: 0, count: N * C)
        for n in 0..<N { for o in 0..<OC { for k in 0..<r { u[n * OC + o] += Double(scale) * h[n * r + k] * Double(b[o * r + k]) } } }
        for o in 0..<OC { for k in 0..<r { for n in 0..<N { dB[o * r + k] += Double(scale) * Double(dout[n * OC + o]) * h[n * r + k] } } }
        for k in 0..<r { for c in 0..<C { for n in 0..<N { dA[k * C + c] += dh[n * r + k] * Double(x[n * C + c]) } } }
        for n in 0..<N { for c in 0..<C { for k in 0..<r { dX[n * C + c] += dh[n * r + k] * Double(a[k * C + c]) } } }
        func check(_ got: [Float], _ want: [Double], _ what: String) {
            #expect(got.count == want.count)
            for i in got.indices { expectClose(Double(got[i]), want[i], rtol: 1e-5, atol: 2e-5, "\(what)[\(i)]") }
        }
        let xb = owned(x), ab = owned(a), bb = owned(b), doutb = owned(dout), biasb = owned(bias), hb = FloatBuffer(count: N * r)
        withExtendedLifetime((xb, ab, bb, doutb, biasb)) {
            for output in ["accumulate", "bias", "zero"] {
                let out = owned(out0)
                let mode: LowRankAdapter.Output = output == "accumulate" ? .accumulate
                    : .initialize(bias: output == "bias" ? biasb.buffer.readOnly : nil)
                LowRankAdapter.forward(out: out.buffer, h: hb.buffer, inp: xb.buffer.readOnly, a: ab.buffer.readOnly, b: bb.buffer.readOnly,
                                       N: N, C: C, OC: OC, r: r, scale: scale, output: mode)
                let start: [Double] = output == "accumulate" ? double(out0)
                    : (0..<(N * OC)).map { output == "bias" ? Double(bias[$0 % OC]) : 0 }
                check(out.toArray(), zip(start, u).map { $0 + $1 }, "out (\(output))")
                check(hb.toArray(), h, "h")
            }
            for initialize in [false, true] {
                let dinp = owned(dinp0), da = owned(da0), db = owned(db0), dhb = FloatBuffer(count: N * r)
                LowRankAdapter.backward(dinp: dinp.buffer, initializeDinp: initialize, da: da.buffer, db: db.buffer, dh: dhb.buffer,
                                        dout: doutb.buffer.readOnly, inp: xb.buffer.readOnly, h: hb.buffer.readOnly,
                                        a: ab.buffer.readOnly, b: bb.buffer.readOnly, N: N, C: C, OC: OC, r: r, scale: scale)
                check(dhb.toArray(), dh, "dh")
                check(db.toArray(), dB, "dB")
                check(da.toArray(), dA, "dA")
                check(dinp.toArray(), initialize ? dX : zip(double(dinp0), dX).map { $0 + $1 }, "dinp (initialize \(initialize))")
            }
        }
    } }

    @Test func dropoutMaskIsTheSplitMix64Hash() {
        // The mask of seed 7 at p 0.5, computed independently (Python, splitmix64's finalizer, top 24 bits ≥ 2²³):
        // a changed hash would change every saved run's dropout and break resuming it bit for bit.
        let mask = (0..<32).map { Dropout.keeps(seed: 7, index: $0, p: 0.5) ? "1" : "0" }.joined()
        #expect(mask == "00011000000011111101110001100101")
    }

    /// OpenBLAS's idle workers sleep at once unless the user chose otherwise (where the OpenBLAS linked reports the
    /// setting), and the variable GPT2Kit sets for that is not left in the environment children inherit.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] == nil, "the user's setting applies"),
          .enabled(if: BLASThreads.idleSpinLog2 >= 0, "this OpenBLAS does not report the setting"))
    func openBLASWorkersDoNotSpin() {
        #expect(BLASThreads.idleSpinLog2 == 4)
        #expect(ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] == nil)
    }

    /// Attention narrows OpenBLAS to one thread per call while its heads run side by side. OpenBLAS's count is
    /// process-wide, so with two callers at once (two models on two threads) the first one out must not restore it
    /// while the other is still inside, and the last one out restores what was there before.
    @Test(.enabled(if: BLASThreads.count > 1, "OpenBLAS runs one thread here"))
    func narrowingOpenBLASThreadsHoldsUntilTheLastCallerLeaves() {
        let before = BLASThreads.count
        let firstInside = DispatchSemaphore(value: 0), secondInside = DispatchSemaphore(value: 0)
        let firstLeft = DispatchSemaphore(value: 0)
        let seenBySecond = Mutex(-1)
        let done = DispatchSemaphore(value: 0)
        // Threads of their own: each blocks inside the narrowing until the other gets there.
        Thread {
            BLASThreads.withOneThreadPerCall(when: true) {
                firstInside.signal()
                secondInside.wait()
            }
            firstLeft.signal()
            done.signal()
        }.start()
        Thread {
            firstInside.wait()
            BLASThreads.withOneThreadPerCall(when: true) {
                secondInside.signal()
                firstLeft.wait()
                seenBySecond.withLock { $0 = BLASThreads.count }
            }
            done.signal()
        }.start()
        done.wait(); done.wait()
        #expect(seenBySecond.withLock { $0 } == 1)
        #expect(BLASThreads.count == before)
    }

    @Test func forcingThePortablePathTakesEffectAndIsUndone() {
        let cpuChoice = TrainingKernelPath.isVectorized
        withPath(portable: true) { #expect(!TrainingKernelPath.isVectorized) }
        #expect(TrainingKernelPath.isVectorized == cpuChoice)
    }
}
