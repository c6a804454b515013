import Foundation
import Testing
import TestSupport
@testable import Checkpoints
import Tensors

/// GGUF at the format level: a writer/reader round trip, Q8_0 against ggml's reference arithmetic, and one
/// hand-built hostile file per refusal.
@Suite struct GGUFTests {
    /// Little-endian GGUF bytes built by hand.
    struct Bytes {
        var data: [UInt8] = []
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); data += Array(s.utf8) }
        mutating func pad(to alignment: Int) { data += [UInt8](repeating: 0, count: (alignment - data.count % alignment) % alignment) }
    }

    /// A valid one-tensor file: metadata `general.architecture`, tensor `t` F32 of ne [4, 2].
    static func minimal(tensorCount: UInt64 = 1, metadataCount: UInt64 = 1, type: UInt32 = 0, offset: UInt64 = 0,
                        dims: [UInt64] = [4, 2], stringLength: UInt64? = nil, dataBytes: Int = 32, version: UInt32 = 3) -> [UInt8] {
        var b = Bytes()
        b.data += Array("GGUF".utf8)
        b.u32(version); b.u64(tensorCount); b.u64(metadataCount)
        if let stringLength { b.u64(stringLength); b.data += Array("general.architecture".utf8) } else { b.string("general.architecture") }
        b.u32(8); b.string("gpt2")
        b.string("t"); b.u32(UInt32(dims.count)); for d in dims { b.u64(d) }; b.u32(type); b.u64(offset)
        b.pad(to: 32)
        b.data += [UInt8](repeating: 0, count: dataBytes)
        return b.data
    }

    static func write(_ bytes: [UInt8], name: String) throws -> String {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func minimalFileReads() throws {
        let path = try Self.write(Self.minimal(), name: "ok.gguf")
        let file = try GGUF.read(path: path)
        #expect(file["general.architecture"]?.string == "gpt2")
        #expect(file.tensors.map(\.name) == ["t"])
        #expect(file.tensor(file.tensors[0]).shape == [2, 4])
    }

    @Test func writtenFilesReadBackExactly() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SeededGenerator(state: 3)
        let values = (0..<(3 * 64)).map { _ in Float(Int64(bitPattern: rng.next() % 2000) - 1000) / 300 }
        let t = Tensor(floats: values, shape: [3, 64])
        let metadata: [(key: String, value: GGUF.Value)] = [
            ("general.architecture", .string("gpt2")), ("x.count", .uint32(7)), ("x.eps", .float32(1e-5)),
            ("x.list", .array(.string, [.string("a"), .string("é")])), ("x.flag", .bool(true)), ("x.big", .int64(-5)),
        ]
        try GGUF.write(metadata: metadata, tensors: [("a", t, .f32), ("b", t, .f16), ("c", t, .q8_0), ("d", t, .bf16)], to: dir + "/w.gguf")
        let file = try GGUF.read(path: dir + "/w.gguf")
        for (key, value) in metadata { #expect(file[key] == value, "\(key)") }
        #expect(file[GGUF.alignmentKey]?.integer == 32)
        let dict = file.stateDict()
        #expect(dict["a"]?.floats() == values)
        #expect(dict["b"]?.floats() == t.converted(to: .f16).floats())
        #expect(dict["d"]?.floats() == t.converted(to: .bf16).floats())
        // Q8_0: per block of 32, d = max|x|/127, q = round(x/d), d stored as f16 (d16): |x − d16·q| ≤ d/2 + 127·|d − d16|.
        let q = try #require(dict["c"]).floats()
        for block in 0..<(values.count / 32) {
            let slice = values[block * 32 ..< (block + 1) * 32]
            let d = (slice.map(abs).max() ?? 0) / 127
            let d16 = HalfPrecision.float(fromF16: HalfPrecision.f16(from: d))
            let bound = d / 2 + 127 * abs(d - d16) + 1e-6
            for i in block * 32 ..< (block + 1) * 32 { #expect(abs(q[i] - values[i]) <= bound, "element \(i)") }
        }
        for info in file.tensors { #expect((file.dataOffset + info.offset) % 32 == 0) }
    }

    @Test func q8_0MatchesGgmlsReferenceBytes() throws {
        // Block: 0, 1, ..., 31 scaled by 0.5 → amax 15.5, d = 15.5/127, q = round(x/d).
        let values = (0..<32).map { Float($0) * 0.5 - 8 }
        let bytes = values.withUnsafeBufferPointer { Q8_0.quantize($0) }
        let amax: Float = 8
        let d = amax / 127
        #expect(bytes.count == 34)
        #expect(UInt16(bytes[0]) | UInt16(bytes[1]) << 8 == HalfPrecision.f16(from: d))
        for j in 0..<32 {
            #expect(Int8(bitPattern: bytes[2 + j]) == Int8((values[j] / d).rounded(.toNearestOrAwayFromZero)), "q[\(j)]")
        }
        var out = [Float](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in bytes.withUnsafeBytes { Q8_0.dequantize($0, into: o) } }
        #expect(out[0] == HalfPrecision.float(fromF16: HalfPrecision.f16(from: d)) * -127)
    }

    @Test func hostileFilesAreRefusedWithTypedErrors() throws {
        let cases: [(String, [UInt8], String)] = [
            ("magic", Array("GGUG".utf8) + [UInt8](repeating: 0, count: 40), "not a GGUF file"),
            ("version", Self.minimal(version: 9), "version 9"),
            ("lying tensor count", Self.minimal(tensorCount: 1 << 40), "tensor count"),
            ("lying metadata count", Self.minimal(metadataCount: UInt64.max), "metadata count"),
            ("lying string length", Self.minimal(stringLength: 1 << 50), "truncated"),
            ("unknown ggml type", Self.minimal(type: 12), "ggml type 12"),
            ("misaligned offset", Self.minimal(offset: 4), "alignment"),
            ("offset past the end", Self.minimal(offset: 1 << 20), "pass the end"),
            ("huge dimensions", Self.minimal(dims: [1 << 30, 1 << 20]), "pass the end"),
            ("overflowing dimensions", Self.minimal(dims: [1 << 62, 1 << 62, 4]), "overflow"),
            ("rank 5", Self.minimal(dims: [1, 1, 1, 1, 1]), "dimensions"),
            ("q8_0 partial block", Self.minimal(type: 8, dims: [16, 2]), "blocks"),
            ("truncated data", Self.minimal(dataBytes: 16), "pass the end"),
            ("truncated header", Array(Self.minimal().prefix(40)), "does not fit"),
            ("empty", [], "truncated"),
        ]
        for (name, bytes, message) in cases {
            let path = try Self.write(bytes, name: "bad.gguf")
            do {
                _ = try GGUF.read(path: path)
                Issue.record("\(name): accepted")
            } catch {
                #expect("\(error)".contains(message) && "\(error)".contains(path), "\(name): \(error)")
            }
        }
    }
}
