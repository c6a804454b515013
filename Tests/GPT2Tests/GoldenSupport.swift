import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Loads goldens and models, and tracks the worst errors seen (printed as a measurement record).
enum Golden {
    static func tiny() throws -> [String: Any] {
        try #require(try Fixtures.json("tiny-gpt2/goldens.json") as? [String: Any])
    }
    static func micro() throws -> [String: Any] {
        try #require(try Fixtures.json("micro-gpt2/goldens.json") as? [String: Any])
    }

    static func config(_ dir: String) throws -> GPT2Config {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(dir + "/config.json")))
        return try GPT2Config(jsonData: data, path: dir + "/config.json")
    }

    static func model(_ dir: String, file: String = "model.safetensors") throws -> GPT2Model {
        let dict = try SafetensorsReader.read(path: Fixtures.path(dir + "/" + file))
        return try GPT2Model(config: config(dir), stateDict: dict)
    }

    /// An attention mask (0/1 per position).
    static func mask(_ any: Any?) throws -> [Int32] { try ints(any).map { Int32($0) } }

    static func ints(_ any: Any?) throws -> [TokenID] {
        let a = try #require(any as? [Any])
        return try a.map { try #require(($0 as? NSNumber)?.intValue) }
    }
    static func doubles(_ any: Any?) throws -> [Double] {
        let a = try #require(any as? [Any])
        return try a.map { try #require(($0 as? NSNumber)?.doubleValue) }
    }
    static func double(_ any: Any?) throws -> Double { try #require((any as? NSNumber)?.doubleValue) }
}

/// Worst relative error (|a−b| / max(|b|, floor)) per category, to report measured agreement.
final class ErrorLog: @unchecked Sendable {
    private var worst: [String: (err: Double, what: String)] = [:]
    private let lock = NSLock()

    func note(_ category: String, _ actual: Double, _ expected: Double, floor: Double = 1e-3, _ what: String) {
        let e = abs(actual - expected) / max(abs(expected), floor)
        lock.lock(); defer { lock.unlock() }
        if e > (worst[category]?.err ?? -1) { worst[category] = (e, what) }
    }

    func report(_ title: String) {
        lock.lock(); defer { lock.unlock() }
        for (k, v) in worst.sorted(by: { $0.key < $1.key }) {
            print("[measured] \(title) \(k): max rel err \(String(format: "%.2e", v.err)) at \(v.what)")
        }
    }
}

/// Compares (sum, l2, first) of `values` with a golden stats object.
func checkStats(_ values: UnsafeBufferPointer<Float>, _ golden: [String: Any], rtol: Double, atolSum: Double, atolFirst: Double,
                _ what: String, log: ErrorLog, category: String,
                sourceLocation: SourceLocation = #_sourceLocation) throws {
    let s = TensorStatistics(values)
    let sum = try Golden.double(golden["sum"]), l2 = try Golden.double(golden["l2"])
    let first = try Golden.doubles(golden["first"])
    if let n = golden["numel"] as? Int { #expect(values.count == n, "\(what) numel", sourceLocation: sourceLocation) }
    expectClose(s.sum, sum, rtol: rtol, atol: atolSum, "\(what) sum", sourceLocation: sourceLocation)
    expectClose(s.l2, l2, rtol: rtol, "\(what) l2", sourceLocation: sourceLocation)
    expectAllClose(Array(s.first.prefix(first.count)), first, rtol: rtol, atol: atolFirst, "\(what) first", sourceLocation: sourceLocation)
    log.note(category + " l2", s.l2, l2, what)
    log.note(category + " sum (floor 1e-2)", s.sum, sum, floor: 1e-2, what)
    if abs(sum) < 1e-2 { log.note(category + " |sum| < 1e-2, absolute", s.sum, sum, floor: 1, what) }
    for (a, b) in zip(s.first, first) { log.note(category + " first (floor 1e-3)", a, b, what) }
}

/// Compares the logits of the last forward with golden per-position stats (first8, argmax, logsumexp, sum).
func checkLogits(_ model: GPT2Model, batch b: Int = 0, _ golden: [Any], what: String, log: ErrorLog,
                 sourceLocation: SourceLocation = #_sourceLocation) throws {
    let V = model.config.vocabularySize, T = model.sequenceLength
    #expect(golden.count == T, "\(what): \(golden.count) golden positions, T \(T)", sourceLocation: sourceLocation)
    try model.withLogits { logits in
        for t in 0..<min(T, golden.count) {
            let g = try #require(golden[t] as? [String: Any])
            let row = UnsafeBufferPointer(rebasing: logits[(b * T + t) * V ..< (b * T + t + 1) * V])
            let first8 = try Golden.doubles(g["first8"])
            let mine = row.prefix(8).map(Double.init)
            // logits: atol 1e-5, rtol 1e-4 (STYLE table)
            expectAllClose(mine, first8, rtol: 1e-4, atol: 1e-5, "\(what) t=\(t) first8", sourceLocation: sourceLocation)
            for (a, e) in zip(mine, first8) { log.note("logits first8", a, e, floor: 1e-2, "\(what) t=\(t)") }
            var maxv = -Float.infinity, arg = 0
            var s = 0.0
            for i in 0..<V { s += Double(row[i]); if row[i] > maxv { maxv = row[i]; arg = i } }
            var e = 0.0
            for i in 0..<V { e += exp(Double(row[i] - maxv)) }
            let lse = Double(maxv) + Foundation.log(e)
            #expect(arg == (g["argmax"] as? Int), "\(what) t=\(t) argmax", sourceLocation: sourceLocation)
            let gl = try Golden.double(g["logsumexp"]), gs = try Golden.double(g["sum"])
            expectClose(lse, gl, rtol: 1e-4, "\(what) t=\(t) logsumexp", sourceLocation: sourceLocation)
            // sum of V logits: float32 summation order differs; atol 1e-3 for sums near zero
            expectClose(s, gs, rtol: 1e-4, atol: 1e-3, "\(what) t=\(t) sum", sourceLocation: sourceLocation)
            log.note("logits logsumexp", lse, gl, "\(what) t=\(t)")
            log.note("logits sum (floor 1)", s, gs, floor: 1, "\(what) t=\(t)")
        }
    }
}
