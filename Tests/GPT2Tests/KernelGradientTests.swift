import Foundation
import GPT2Kit
import Kernels
import Testing
import TestSupport

/// Deterministic uniform floats for test inputs.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
    mutating func array(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in (next() * 2 - 1) * scale } }
}

/// Central-difference check: `loss` is a scalar function of `x` (evaluated in Float, summed in Double);
/// `analytic` is the backward's gradient. Checks `samples` coordinates spread over `x`.
func finiteDifferenceCheck(_ x: inout [Float], analytic: [Float], samples: Int = 12, h: Float = 1e-2,
                           rtol: Double = 2e-2, atol: Double = 2e-3, _ what: String,
                           loss: ([Float]) -> Double, sourceLocation: SourceLocation = #_sourceLocation) {
    precondition(x.count == analytic.count)
    let step = max(1, x.count / samples)
    for i in stride(from: 0, to: x.count, by: step) {
        let saved = x[i]
        x[i] = saved + h; let plus = loss(x)
        x[i] = saved - h; let minus = loss(x)
        x[i] = saved
        let numeric = (plus - minus) / Double(2 * h)
        expectClose(Double(analytic[i]), numeric, rtol: rtol, atol: atol, "\(what)[\(i)]", sourceLocation: sourceLocation)
    }
}

/// Owned float storage for kernel calls (pointers stay valid while the buffer lives; none escape a scope).
func owned(_ a: [Float]) -> FloatBuffer {
    let b = FloatBuffer(count: a.count)
    _ = b.buffer.update(from: a)
    return b
}

/// Owned Int32 storage for kernel calls.
final class OwnedIDs {
    let storage: UnsafeMutableBufferPointer<Int32>
    init(_ a: [Int32]) {
        storage = .allocate(capacity: a.count)
        _ = storage.initialize(from: a)
    }
    deinit { storage.deallocate() }
    var buffer: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(storage) }
}

/// Σ w·out in Double: the scalar whose gradient w.r.t. out is w.
func weightedSum(_ out: [Float], _ w: [Float]) -> Double {
    var s = 0.0
    for i in out.indices { s += Double(out[i]) * Double(w[i]) }
    return s
}

@Suite struct KernelGradientTests {
    @Test func layerNorm() {
        let N = 5, C = 7
        var rng = TestRNG(1)
        var x = rng.array(N * C, scale: 2), w = rng.array(C).map { $0 + 1 }, b = rng.array(C)
        let dout = rng.array(N * C)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> (out: FloatBuffer, mean: FloatBuffer, rstd: FloatBuffer) {
            let out = FloatBuffer(count: N * C), mean = FloatBuffer(count: N), rstd = FloatBuffer(count: N)
            let xb = owned(x), wb = owned(w), bb = owned(b)
            withExtendedLifetime((xb, wb, bb)) {
                LayerNorm.forward(out: out.buffer, mean: mean.buffer, rstd: rstd.buffer, inp: xb.buffer.readOnly,
                                  weight: wb.buffer.readOnly, bias: bb.buffer.readOnly, N: N, C: C, eps: 1e-5)
            }
            return (out, mean, rstd)
        }
        let f = run(x, w, b)
        // backward accumulates: start from non-zero values and subtract them
        let dx = owned([Float](repeating: 0.5, count: N * C)), dw = owned([Float](repeating: 0.25, count: C))
        let db = owned([Float](repeating: -1, count: C))
        let xb = owned(x), wb = owned(w), doutb = owned(dout)
        withExtendedLifetime((xb, wb, doutb, f)) {
            LayerNorm.backward(dinp: dx.buffer, dweight: dw.buffer, dbias: db.buffer, dout: doutb.buffer.readOnly, inp: xb.buffer.readOnly,
                               weight: wb.buffer.readOnly, mean: f.mean.buffer.readOnly, rstd: f.rstd.buffer.readOnly, N: N, C: C)
        }
        finiteDifferenceCheck(&x, analytic: dx.toArray().map { $0 - 0.5 }, "layernorm dinp") { weightedSum(run($0, w, b).out.toArray(), dout) }
        finiteDifferenceCheck(&w, analytic: dw.toArray().map { $0 - 0.25 }, "layernorm dweight") { weightedSum(run(x, $0, b).out.toArray(), dout) }
        finiteDifferenceCheck(&b, analytic: db.toArray().map { $0 + 1 }, "layernorm dbias") { weightedSum(run(x, w, $0).out.toArray(), dout) }
    }

    @Test(arguments: [MatMul.WeightLayout.inputMajor, .outputMajor])
    func matmul(layout: MatMul.WeightLayout) {
        let N = 4, C = 6, OC = 5
        var rng = TestRNG(2)
        var x = rng.array(N * C), w = rng.array(C * OC), b = rng.array(OC)
        let dout = rng.array(N * OC)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            let out = FloatBuffer(count: N * OC), xb = owned(x), wb = owned(w), bb = owned(b)
            withExtendedLifetime((xb, wb, bb)) {
                MatMul.forward(out: out.buffer, inp: xb.buffer.readOnly, weight: wb.buffer.readOnly, bias: bb.buffer.readOnly,
                               N: N, C: C, OC: OC, layout: layout)
            }
            return out.toArray()
        }
        let dx = FloatBuffer(count: N * C), dw = FloatBuffer(count: C * OC), db = FloatBuffer(count: OC)
        let xb = owned(x), wb = owned(w), doutb = owned(dout)
        withExtendedLifetime((xb, wb, doutb)) {
            MatMul.backward(dinp: dx.buffer, dweight: dw.buffer, dbias: db.buffer, dout: doutb.buffer.readOnly, inp: xb.buffer.readOnly,
                            weight: wb.buffer.readOnly, N: N, C: C, OC: OC, layout: layout)
        }
        finiteDifferenceCheck(&x, analytic: dx.toArray(), "matmul dinp") { weightedSum(run($0, w, b), dout) }
        finiteDifferenceCheck(&w, analytic: dw.toArray(), "matmul dweight") { weightedSum(run(x, $0, b), dout) }
        finiteDifferenceCheck(&b, analytic: db.toArray(), "matmul dbias") { weightedSum(run(x, w, $0), dout) }
    }

    @Test(arguments: [(false, Float(0)), (true, Float(0)), (true, Float(0.3))])
    func attention(masked: Bool, dropout: Float) {
        let B = 2, T = 5, C = 12, NH = 3
        var rng = TestRNG(3)
        var qkv = rng.array(B * T * 3 * C, scale: 1.5)
        let dout = rng.array(B * T * C)
        let mask = OwnedIDs([1, 1, 1, 0, 0, 1, 0, 1, 1, 1])
        let scale: Float = 0.4
        let scratch = FloatBuffer(count: Attention.scratchCount(T: T))
        func run(_ qkv: [Float]) -> (out: [Float], att: FloatBuffer) {
            let out = FloatBuffer(count: B * T * C), att = FloatBuffer(count: Attention.statisticsCount(B: B, T: T, NH: NH)), q = owned(qkv)
            withExtendedLifetime((q, mask, scratch)) {
                Attention.forward(out: out.buffer, statistics: att.buffer, qkv: q.buffer.readOnly, keyMask: masked ? mask.buffer : nil,
                                  scratch: scratch.buffer, B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: 42)
            }
            return (out.toArray(), att)
        }
        let f = run(qkv)
        let dqkv = FloatBuffer(count: qkv.count), q = owned(qkv), doutb = owned(dout)
        withExtendedLifetime((doutb, q, f.att, mask, scratch)) {
            Attention.backward(dqkv: dqkv.buffer, dout: doutb.buffer.readOnly, qkv: q.buffer.readOnly, statistics: f.att.buffer.readOnly,
                               keyMask: masked ? mask.buffer : nil, scratch: scratch.buffer,
                               B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: 42)
        }
        finiteDifferenceCheck(&qkv, analytic: dqkv.toArray(), samples: 40, "attention dqkv") { weightedSum(run($0).out, dout) }
        // causality: position 0's output ignores later positions
        var changed = qkv
        for c in 0..<(3 * C) { changed[(T - 1) * 3 * C + c] += 1 }
        let g = run(changed)
        #expect(Array(g.out[0 ..< C]) == Array(f.out[0 ..< C]))
    }

    /// Several query tiles (T not a multiple of the tile), padding and dropout: the tiled kernel equals a
    /// plain T×T implementation of the same definition, forward and backward.
    @Test(arguments: [(false, Float(0)), (true, Float(0.2))])
    func attentionTilesMatchPlainSoftmax(masked: Bool, dropout: Float) {
        let B = 2, T = 2 * Attention.tileRows + 22, C = 16, NH = 2, hs = C / NH, C3 = 3 * C
        var rng = TestRNG(11)
        let qkv = rng.array(B * T * C3, scale: 2), dout = rng.array(B * T * C)
        let maskValues = (0..<(B * T)).map { i in Int32(masked && i % 7 == 3 ? 0 : 1) }
        let scale: Float = 0.35, seed: UInt64 = 9
        // Plain reference in Double: probabilities per (b, h), full T×T.
        var refOut = [Double](repeating: 0, count: B * T * C), refD = [Double](repeating: 0, count: B * T * C3)
        for b in 0..<B {
            for h in 0..<NH {
                func q(_ t: Int, _ i: Int) -> Double { Double(qkv[(b * T + t) * C3 + h * hs + i]) }
                func k(_ t: Int, _ i: Int) -> Double { Double(qkv[(b * T + t) * C3 + C + h * hs + i]) }
                func v(_ t: Int, _ i: Int) -> Double { Double(qkv[(b * T + t) * C3 + 2 * C + h * hs + i]) }
                let site = Dropout.siteSeed(seed, site: b * NH + h)
                for t in 0..<T {
                    let unmasked = (0...t).filter { maskValues[b * T + $0] != 0 }
                    var p = [Double](repeating: 1 / Double(t + 1), count: t + 1) // every key hidden: equal scores, uniform
                    let scores = (0...t).map { t2 in Double(scale) * (0..<hs).reduce(0.0) { $0 + q(t, $1) * k(t2, $1) } }
                    if !unmasked.isEmpty {
                        let m = unmasked.map { scores[$0] }.max() ?? 0
                        let z = unmasked.reduce(0.0) { $0 + exp(scores[$1] - m) }
                        p = (0...t).map { maskValues[b * T + $0] != 0 ? exp(scores[$0] - m) / z : 0 }
                    }
                    let keep = (0...t).map { t2 in dropout == 0 || Dropout.keeps(seed: site, index: t * T + t2, p: dropout) ? 1 / (1 - Double(dropout)) : 0 }
                    let dO = (0..<hs).map { Double(dout[(b * T + t) * C + h * hs + $0]) }
                    var dp = [Double](repeating: 0, count: t + 1)
                    for t2 in 0...t {
                        for i in 0..<hs {
                            refOut[(b * T + t) * C + h * hs + i] += p[t2] * keep[t2] * v(t2, i)
                            refD[(b * T + t2) * C3 + 2 * C + h * hs + i] += p[t2] * keep[t2] * dO[i]
                            dp[t2] += dO[i] * v(t2, i) * keep[t2]
                        }
                    }
                    let dot = (0...t).reduce(0.0) { $0 + p[$1] * dp[$1] }
                    for t2 in 0...t where maskValues[b * T + t2] != 0 { // a hidden key's score does not depend on q, k
                        let ds = p[t2] * (dp[t2] - dot) * Double(scale)
                        for i in 0..<hs {
                            refD[(b * T + t) * C3 + h * hs + i] += ds * k(t2, i)
                            refD[(b * T + t2) * C3 + C + h * hs + i] += ds * q(t, i)
                        }
                    }
                }
            }
        }
        let out = FloatBuffer(count: B * T * C), stats = FloatBuffer(count: Attention.statisticsCount(B: B, T: T, NH: NH))
        let scratch = FloatBuffer(count: Attention.scratchCount(T: T)), dqkv = FloatBuffer(count: B * T * C3)
        let q = owned(qkv), d = owned(dout), mask = OwnedIDs(maskValues)
        withExtendedLifetime((q, d, mask)) {
            Attention.forward(out: out.buffer, statistics: stats.buffer, qkv: q.buffer.readOnly, keyMask: masked ? mask.buffer : nil,
                              scratch: scratch.buffer, B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: seed)
            Attention.backward(dqkv: dqkv.buffer, dout: d.buffer.readOnly, qkv: q.buffer.readOnly, statistics: stats.buffer.readOnly,
                               keyMask: masked ? mask.buffer : nil, scratch: scratch.buffer,
                               B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: seed)
        }
        func maxError(_ ours: [Float], _ ref: [Double]) -> Double {
            zip(ours, ref).map { abs(Double($0) - $1) / (1 + abs($1)) }.max() ?? 0
        }
        #expect(maxError(out.toArray(), refOut) < 2e-5)
        #expect(maxError(dqkv.toArray(), refD) < 2e-5)
    }

    /// The decode products (helper threads, blocks of input rows with partial sums for Conv1D, of output rows for
    /// the lm head) equal sgemm for every row count they take, large enough to split and too small to.
    @Test(arguments: [(300, 520), (64, 24), (768, 2304), (520, 300)])
    func fewRowsProductsEqualSgemm(C: Int, OC: Int) {
        var rng = TestRNG(21)
        let w = owned(rng.array(C * OC)), bias = owned(rng.array(OC))
        for layout in [MatMul.WeightLayout.inputMajor, .outputMajor] {
            for N in 1...MatMul.gemvRowLimit {
                let x = owned(rng.array(N * C))
                for withBias in [false, true] {
                    let a = FloatBuffer(count: N * OC), b = FloatBuffer(count: N * OC)
                    withExtendedLifetime((w, bias, x)) {
                        MatMul.forward(out: a.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: withBias ? bias.buffer.readOnly : nil,
                                       N: N, C: C, OC: OC, layout: layout)
                        MatMul.forwardFewRows(out: b.buffer, inp: x.buffer.readOnly, weight: w.buffer.readOnly, bias: withBias ? bias.buffer.readOnly : nil,
                                              N: N, C: C, OC: OC, layout: layout)
                    }
                    // Two summation orders differ by rounding relative to Σ|terms| of each output, not to the output.
                    let xs = x.toArray(), ws = w.toArray(), av = a.toArray(), bv = b.toArray()
                    var worst = 0.0
                    for n in 0..<N {
                        for j in 0..<OC {
                            var magnitude = 1.0
                            for i in 0..<C {
                                let weight = layout == .inputMajor ? ws[i * OC + j] : ws[j * C + i]
                                magnitude += Double(abs(xs[n * C + i] * weight))
                            }
                            worst = max(worst, Double(abs(av[n * OC + j] - bv[n * OC + j])) / magnitude)
                        }
                    }
                    #expect(worst < 1e-6, "\(layout) N \(N) C \(C) OC \(OC) bias \(withBias): \(worst)")
                }
            }
        }
    }

    @Test(arguments: Activation.allCases)
    func activation(_ act: Activation) {
        let N = 40
        var rng = TestRNG(4)
        var x = rng.array(N, scale: 3).map { abs($0) < 0.05 ? $0 + 0.1 : $0 } // keep away from relu's kink
        let dout = rng.array(N)
        func run(_ x: [Float]) -> [Float] {
            let out = FloatBuffer(count: N), xb = owned(x)
            withExtendedLifetime(xb) { act.forward(out: out.buffer, inp: xb.buffer.readOnly, N: N) }
            return out.toArray()
        }
        let dx = FloatBuffer(count: N), xb = owned(x), doutb = owned(dout)
        withExtendedLifetime((xb, doutb)) { act.backward(dinp: dx.buffer, inp: xb.buffer.readOnly, dout: doutb.buffer.readOnly, N: N) }
        finiteDifferenceCheck(&x, analytic: dx.toArray(), samples: N, h: 1e-3, "\(act.rawValue) dinp") { weightedSum(run($0), dout) }
    }

    @Test func geluNewMatchesFormula() {
        let xs: [Float] = [-3, -1, -0.5, 0, 0.25, 1, 2.5]
        let out = FloatBuffer(count: xs.count), xb = owned(xs)
        withExtendedLifetime(xb) { Activation.geluNew.forward(out: out.buffer, inp: xb.buffer.readOnly, N: xs.count) }
        for (x, y) in zip(xs, out.toArray()) {
            let d = Double(x)
            let ref = 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            expectClose(Double(y), ref, rtol: 1e-6, atol: 1e-7, "gelu_new(\(x))")
        }
    }

    @Test func crossEntropy() {
        let N = 4, V = 9
        var rng = TestRNG(5)
        var logits = rng.array(N * V, scale: 3)
        let targets = OwnedIDs([3, -100, 0, 8])
        func run(_ x: [Float]) -> (mean: Double, lse: FloatBuffer) {
            let losses = FloatBuffer(count: N), lse = FloatBuffer(count: N), xb = owned(x)
            let r = withExtendedLifetime((losses, xb, targets)) {
                CrossEntropy.forward(losses: losses.buffer, logsumexp: lse.buffer, logits: xb.buffer.readOnly,
                                     targets: targets.buffer, N: N, V: V)
            }
            #expect(r.count == 3)
            return (r.sum / Double(r.count), lse)
        }
        let f = run(logits)
        let d = owned(logits) // becomes d(loss)/d(logits) in place
        withExtendedLifetime((f.lse, targets)) {
            CrossEntropy.gradientInPlace(logits: d.buffer, logsumexp: f.lse.buffer.readOnly, targets: targets.buffer,
                                         dlossScale: 1 / 3, N: N, V: V)
        }
        #expect(d.toArray()[V ..< 2 * V].allSatisfy { $0 == 0 }, "ignored row has no gradient")
        finiteDifferenceCheck(&logits, analytic: d.toArray(), samples: N * V, h: 1e-3, "cross-entropy dlogits") { run($0).mean }
    }

    @Test func encoderAndResidual() {
        let B = 2, T = 3, C = 4, V = 5
        var rng = TestRNG(6)
        let wte = owned(rng.array(V * C)), wpe = owned(rng.array(T * C)), dout = owned(rng.array(B * T * C))
        let tokens = OwnedIDs([1, 4, 1, 0, 2, 4])
        let out = FloatBuffer(count: B * T * C)
        withExtendedLifetime((wte, wpe, dout, tokens)) {
        Encoder.forward(out: out.buffer, tokens: tokens.buffer, wte: wte.buffer.readOnly, wpe: wpe.buffer.readOnly, B: B, T: T, C: C)
        #expect(out.buffer[(1 * T + 2) * C + 3] == wte.buffer[4 * C + 3] + wpe.buffer[2 * C + 3])
        let dwte = FloatBuffer(count: V * C), dwpe = FloatBuffer(count: T * C)
        Encoder.backward(dwte: dwte.buffer, dwpe: dwpe.buffer, dout: dout.buffer.readOnly, tokens: tokens.buffer, B: B, T: T, C: C)
        let d = dout.buffer
        // token 1 appears at (0,0) and (0,2); position 2 at (0,2) and (1,2)
        #expect(abs(dwte.buffer[1 * C] - (d[0] + d[2 * C])) < 1e-6)
        #expect(abs(dwpe.buffer[2 * C + 1] - (d[2 * C + 1] + d[(T + 2) * C + 1])) < 1e-6)
        #expect(dwte.buffer[3 * C ..< 4 * C].allSatisfy { $0 == 0 })
        let sum = FloatBuffer(count: 3), da = owned([1, 1, 1]), db = FloatBuffer(count: 3)
        Residual.forward(out: sum.buffer, a: wte[0 ..< 3].readOnly, b: wpe[0 ..< 3].readOnly, N: 3)
        #expect(sum.buffer[2] == wte.buffer[2] + wpe.buffer[2])
        Residual.backward(da: da.buffer, db: db.buffer, dout: dout[0 ..< 3].readOnly, N: 3)
        #expect(da.buffer[1] == 1 + d[1] && db.buffer[1] == d[1])
        }
    }

    @Test func dropoutMaskAndScaling() {
        let N = 20_000
        let x = owned([Float](repeating: 1, count: N)), out = FloatBuffer(count: N)
        withExtendedLifetime(x) {
        Dropout.forward(out: out.buffer, inp: x.buffer.readOnly, N: N, p: 0.25, seed: 7)
        let kept = out.buffer.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 4 / 3) < 1e-6 })
        #expect(abs(Double(kept.count) / Double(N) - 0.75) < 0.02)
        let dx = FloatBuffer(count: N)
        Dropout.backward(dinp: dx.buffer, dout: x.buffer.readOnly, N: N, p: 0.25, seed: 7)
        #expect(dx.toArray() == out.toArray(), "backward regenerates the forward's mask")
        }
    }
}
