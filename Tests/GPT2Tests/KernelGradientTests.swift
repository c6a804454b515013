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
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> (out: [Float], mean: [Float], rstd: [Float]) {
            var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
            out.withUnsafeMutableBufferPointer { o in mean.withUnsafeMutableBufferPointer { m in rstd.withUnsafeMutableBufferPointer { r in
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                    LayerNorm.forward(out: o, mean: m, rstd: r, inp: xp, weight: wp, bias: bp, N: N, C: C, eps: 1e-5)
                } } }
            } } }
            return (out, mean, rstd)
        }
        let f = run(x, w, b)
        var dx = [Float](repeating: 0.5, count: N * C), dw = [Float](repeating: 0.25, count: C), db = [Float](repeating: -1, count: C)
        dx.withUnsafeMutableBufferPointer { dxp in dw.withUnsafeMutableBufferPointer { dwp in db.withUnsafeMutableBufferPointer { dbp in
            LayerNorm.backward(dinp: dxp, dweight: dwp, dbias: dbp, dout: dout.withUnsafeBufferPointer { $0 }, inp: x.withUnsafeBufferPointer { $0 },
                               weight: w.withUnsafeBufferPointer { $0 }, mean: f.mean.withUnsafeBufferPointer { $0 },
                               rstd: f.rstd.withUnsafeBufferPointer { $0 }, N: N, C: C)
        } } }
        // backward accumulates: subtract the initial values
        finiteDifferenceCheck(&x, analytic: dx.map { $0 - 0.5 }, "layernorm dinp") { weightedSum(run($0, w, b).out, dout) }
        finiteDifferenceCheck(&w, analytic: dw.map { $0 - 0.25 }, "layernorm dweight") { weightedSum(run(x, $0, b).out, dout) }
        finiteDifferenceCheck(&b, analytic: db.map { $0 + 1 }, "layernorm dbias") { weightedSum(run(x, w, $0).out, dout) }
    }

    @Test(arguments: [MatMul.WeightLayout.inputMajor, .outputMajor])
    func matmul(layout: MatMul.WeightLayout) {
        let N = 4, C = 6, OC = 5
        var rng = TestRNG(2)
        var x = rng.array(N * C), w = rng.array(C * OC), b = rng.array(OC)
        let dout = rng.array(N * OC)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * OC)
            out.withUnsafeMutableBufferPointer { o in
                MatMul.forward(out: o, inp: x.withUnsafeBufferPointer { $0 }, weight: w.withUnsafeBufferPointer { $0 },
                               bias: b.withUnsafeBufferPointer { $0 }, N: N, C: C, OC: OC, layout: layout)
            }
            return out
        }
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C * OC), db = [Float](repeating: 0, count: OC)
        dx.withUnsafeMutableBufferPointer { dxp in dw.withUnsafeMutableBufferPointer { dwp in db.withUnsafeMutableBufferPointer { dbp in
            MatMul.backward(dinp: dxp, dweight: dwp, dbias: dbp, dout: dout.withUnsafeBufferPointer { $0 }, inp: x.withUnsafeBufferPointer { $0 },
                            weight: w.withUnsafeBufferPointer { $0 }, N: N, C: C, OC: OC, layout: layout)
        } } }
        finiteDifferenceCheck(&x, analytic: dx, "matmul dinp") { weightedSum(run($0, w, b), dout) }
        finiteDifferenceCheck(&w, analytic: dw, "matmul dweight") { weightedSum(run(x, $0, b), dout) }
        finiteDifferenceCheck(&b, analytic: db, "matmul dbias") { weightedSum(run(x, w, $0), dout) }
    }

    @Test(arguments: [(false, Float(0)), (true, Float(0)), (true, Float(0.3))])
    func attention(masked: Bool, dropout: Float) {
        let B = 2, T = 5, C = 12, NH = 3
        var rng = TestRNG(3)
        var qkv = rng.array(B * T * 3 * C, scale: 1.5)
        let dout = rng.array(B * T * C)
        let mask: [Int32] = [1, 1, 1, 0, 0, 1, 0, 1, 1, 1]
        let scale: Float = 0.4
        func run(_ qkv: [Float]) -> (out: [Float], att: [Float]) {
            var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
            var scratch = [Float](repeating: 0, count: Attention.scratchCount(T: T))
            out.withUnsafeMutableBufferPointer { o in att.withUnsafeMutableBufferPointer { a in scratch.withUnsafeMutableBufferPointer { s in
                mask.withUnsafeBufferPointer { m in
                    Attention.forward(out: o, att: a, qkv: qkv.withUnsafeBufferPointer { $0 }, keyMask: masked ? m : nil, scratch: s,
                                      B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: 42)
                }
            } } }
            return (out, att)
        }
        let f = run(qkv)
        var dqkv = [Float](repeating: 0, count: qkv.count), scratch = [Float](repeating: 0, count: Attention.scratchCount(T: T))
        dqkv.withUnsafeMutableBufferPointer { d in scratch.withUnsafeMutableBufferPointer { s in mask.withUnsafeBufferPointer { m in
            Attention.backward(dqkv: d, dout: dout.withUnsafeBufferPointer { $0 }, qkv: qkv.withUnsafeBufferPointer { $0 },
                               att: f.att.withUnsafeBufferPointer { $0 }, keyMask: masked ? m : nil, scratch: s,
                               B: B, T: T, C: C, NH: NH, scale: scale, dropout: dropout, dropoutSeed: 42)
        } } }
        finiteDifferenceCheck(&qkv, analytic: dqkv, samples: 40, "attention dqkv") { weightedSum(run($0).out, dout) }
        // causality: position 0's output ignores later positions
        var changed = qkv
        for c in 0..<(3 * C) { changed[(T - 1) * 3 * C + c] += 1 }
        let g = run(changed)
        #expect(Array(g.out[0 ..< C]) == Array(f.out[0 ..< C]))
    }

    @Test(arguments: Activation.allCases)
    func activation(_ act: Activation) {
        let N = 40
        var rng = TestRNG(4)
        var x = rng.array(N, scale: 3).map { abs($0) < 0.05 ? $0 + 0.1 : $0 } // keep away from relu's kink
        let dout = rng.array(N)
        func run(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N)
            out.withUnsafeMutableBufferPointer { o in act.forward(out: o, inp: x.withUnsafeBufferPointer { $0 }, N: N) }
            return out
        }
        var dx = [Float](repeating: 0, count: N)
        dx.withUnsafeMutableBufferPointer { d in
            act.backward(dinp: d, inp: x.withUnsafeBufferPointer { $0 }, dout: dout.withUnsafeBufferPointer { $0 }, N: N)
        }
        finiteDifferenceCheck(&x, analytic: dx, samples: N, h: 1e-3, "\(act.rawValue) dinp") { weightedSum(run($0), dout) }
    }

    @Test func geluNewMatchesFormula() {
        let xs: [Float] = [-3, -1, -0.5, 0, 0.25, 1, 2.5]
        var out = [Float](repeating: 0, count: xs.count)
        out.withUnsafeMutableBufferPointer { o in Activation.geluNew.forward(out: o, inp: xs.withUnsafeBufferPointer { $0 }, N: xs.count) }
        for (x, y) in zip(xs, out) {
            let d = Double(x)
            let ref = 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            expectClose(Double(y), ref, rtol: 1e-6, atol: 1e-7, "gelu_new(\(x))")
        }
    }

    @Test func crossEntropy() {
        let N = 4, V = 9
        var rng = TestRNG(5)
        var logits = rng.array(N * V, scale: 3)
        let targets: [Int32] = [3, -100, 0, 8]
        func run(_ x: [Float]) -> (mean: Double, lse: [Float]) {
            var losses = [Float](repeating: 0, count: N), lse = losses
            let r = losses.withUnsafeMutableBufferPointer { l in lse.withUnsafeMutableBufferPointer { s in
                CrossEntropy.forward(losses: l, logsumexp: s, logits: x.withUnsafeBufferPointer { $0 },
                                     targets: targets.withUnsafeBufferPointer { $0 }, N: N, V: V)
            } }
            #expect(r.count == 3)
            return (r.sum / Double(r.count), lse)
        }
        let f = run(logits)
        var d = [Float](repeating: 0, count: N * V)
        d.withUnsafeMutableBufferPointer { dp in
            CrossEntropy.backward(dlogits: dp, logits: logits.withUnsafeBufferPointer { $0 }, logsumexp: f.lse.withUnsafeBufferPointer { $0 },
                                  targets: targets.withUnsafeBufferPointer { $0 }, dlossScale: 1 / 3, N: N, V: V)
        }
        #expect(d[V ..< 2 * V].allSatisfy { $0 == 0 }, "ignored row has no gradient")
        finiteDifferenceCheck(&logits, analytic: d, samples: N * V, h: 1e-3, "cross-entropy dlogits") { run($0).mean }
    }

    @Test func encoderAndResidual() {
        let B = 2, T = 3, C = 4, V = 5
        var rng = TestRNG(6)
        let wte = rng.array(V * C), wpe = rng.array(T * C), dout = rng.array(B * T * C)
        let tokens: [Int32] = [1, 4, 1, 0, 2, 4]
        var out = [Float](repeating: 0, count: B * T * C)
        out.withUnsafeMutableBufferPointer { o in
            Encoder.forward(out: o, tokens: tokens.withUnsafeBufferPointer { $0 }, wte: wte.withUnsafeBufferPointer { $0 },
                            wpe: wpe.withUnsafeBufferPointer { $0 }, B: B, T: T, C: C)
        }
        #expect(out[(1 * T + 2) * C + 3] == wte[4 * C + 3] + wpe[2 * C + 3])
        var dwte = [Float](repeating: 0, count: V * C), dwpe = [Float](repeating: 0, count: T * C)
        dwte.withUnsafeMutableBufferPointer { a in dwpe.withUnsafeMutableBufferPointer { p in
            Encoder.backward(dwte: a, dwpe: p, dout: dout.withUnsafeBufferPointer { $0 }, tokens: tokens.withUnsafeBufferPointer { $0 }, B: B, T: T, C: C)
        } }
        // token 1 appears at (0,0) and (0,2); token 4 at (0,1) and (1,2)
        #expect(abs(dwte[1 * C] - (dout[0] + dout[2 * C])) < 1e-6)
        #expect(abs(dwpe[2 * C + 1] - (dout[2 * C + 1] + dout[(T + 2) * C + 1])) < 1e-6)
        #expect(dwte[3 * C ..< 4 * C].allSatisfy { $0 == 0 })
    }

    @Test func dropoutMaskAndScaling() {
        let N = 20_000
        let x = [Float](repeating: 1, count: N)
        var out = [Float](repeating: 0, count: N)
        out.withUnsafeMutableBufferPointer { o in Dropout.forward(out: o, inp: x.withUnsafeBufferPointer { $0 }, N: N, p: 0.25, seed: 7) }
        let kept = out.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 4 / 3) < 1e-6 })
        #expect(abs(Double(kept.count) / Double(N) - 0.75) < 0.02)
        var dx = [Float](repeating: 0, count: N)
        dx.withUnsafeMutableBufferPointer { d in Dropout.backward(dinp: d, dout: x.withUnsafeBufferPointer { $0 }, N: N, p: 0.25, seed: 7) }
        #expect(dx == out, "backward regenerates the forward's mask")
    }
}
