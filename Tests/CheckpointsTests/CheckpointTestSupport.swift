import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

/// Helpers shared by the checkpoint tests.
enum CheckpointFixtures {
    /// `params[name]` stats from micro-gpt2's goldens.
    static func microParams() throws -> [String: [String: Any]] {
        let g = try #require(try Fixtures.json("micro-gpt2/goldens.json") as? [String: Any])
        return try #require(g["params"] as? [String: [String: Any]])
    }

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func write(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    /// Writes a stored zip with `entries` (name, bytes) through the project's zip writer.
    static func zip(_ entries: [(String, [UInt8])], to path: String) throws {
        let file = try AtomicFileWriter(path: path)
        var zip = ZipWriter(file: file)
        for (name, bytes) in entries { try zip.add(name: name, bytes: bytes) }
        try zip.finish()
        try file.commit()
    }

    /// Every entry of the archive at `path`, in order.
    static func entries(of path: String) throws -> [(String, [UInt8])] {
        let archive = try ZipArchive(path: path)
        return try archive.entries.map { e in (e.name, try archive.contents(of: e).array) }
    }

    /// Reads a pickle from bytes.
    static func unpickle(_ bytes: [UInt8], path: String = "x.pkl") throws(TorchArchiveError) -> PickleValue {
        let r = bytes.withUnsafeBytes { raw in Result { () throws(TorchArchiveError) in try Unpickler.load(raw, path: path).value } }
        return try r.get()
    }
}

/// Expects a tensor's stats to match a goldens entry: F32 tightly, 16-bit floats within their rounding.
func expectMatchesGolden(_ t: Tensor, _ stats: [String: Any], _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    let s = TensorStatistics(t)
    let sum = try #require(stats["sum"] as? Double, sourceLocation: sourceLocation)
    let l2 = try #require(stats["l2"] as? Double, sourceLocation: sourceLocation)
    let first = try #require(stats["first"] as? [Double], sourceLocation: sourceLocation)
    // F32: only the summation order differs from the reference (measured |err| < 1e-12 relative).
    // F16: each element moves by at most 2^-11 relative, so the sum by at most 2^-11·Σ|x| ≤ 2^-11·√n·l2.
    let eps = t.dtype == .f32 ? 1e-9 : (t.dtype == .f16 ? 0x1p-11 : 0x1p-8)
    let sumAtol = eps * Double(s.elementCount).squareRoot() * l2 + 1e-9
    expectClose(s.sum, sum, rtol: 0, atol: sumAtol, "\(what) sum", sourceLocation: sourceLocation)
    expectClose(s.l2, l2, rtol: eps, atol: 1e-9, "\(what) l2", sourceLocation: sourceLocation)
    expectAllClose(s.first, first, rtol: eps, atol: t.dtype == .f32 ? 0 : 1e-7, "\(what) first", sourceLocation: sourceLocation)
}
