import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

@Suite struct SafetensorsReaderTests {
    /// `params[name]` stats from micro-gpt2's goldens.
    static func microParams() throws -> [String: [String: Any]] {
        let g = try #require(try Fixtures.json("micro-gpt2/goldens.json") as? [String: Any])
        return try #require(g["params"] as? [String: [String: Any]])
    }

    @Test(arguments: [("model.safetensors", 1e-6), ("model.fp16.safetensors", 2e-3), ("model.bf16.safetensors", 1.6e-2)])
    func readsMicroModelStats(file: String, rtol: Double) throws {
        let dict = try SafetensorsReader.read(path: Fixtures.path("micro-gpt2/" + file))
        let params = try Self.microParams()
        for (name, stats) in params where name != "lm_head.weight" {
            let t = try #require(dict[name], "missing \(name)")
            #expect(t.isMapped)
            let s = TensorStatistics(t)
            let l2 = try #require(stats["l2"] as? Double)
            expectClose(s.l2, l2, rtol: rtol, "\(file) \(name) l2")
            let first = try #require(stats["first"] as? [Double])
            expectAllClose(s.first, first, rtol: rtol, atol: rtol * 0.1, "\(file) \(name) first")
        }
    }

    private func file(header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        out += h
        out += data
        return out
    }

    private func parse(_ bytes: [UInt8]) throws(SafetensorsError) -> SafetensorsReader.Header {
        let r = bytes.withUnsafeBytes { raw in Result { () throws(SafetensorsError) in try SafetensorsReader.parseHeader(raw, path: "x.safetensors") } }
        return try r.get()
    }

    @Test func refusesLyingHeaders() {
        #expect(throws: SafetensorsError.fileTooSmall(path: "x.safetensors", size: 3)) { try parse([1, 2, 3]) }
        var big = file(header: "{}", data: [])
        big[0] = 0xFF; big[7] = 0x7F
        #expect(throws: SafetensorsError.self) { try parse(big) }
        #expect(throws: SafetensorsError.unknownDType(path: "x.safetensors", tensor: "a", dtype: "Q8")) {
            try parse(file(header: #"{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.byteCountMismatch(path: "x.safetensors", tensor: "a", expected: 8, found: 4)) {
            try parse(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.offsetsOutOfRange(path: "x.safetensors", tensor: "a", begin: 0, end: 8, dataSize: 4)) {
            try parse(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.overlappingTensors(path: "x.safetensors", first: "a", second: "b")) {
            try parse(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.holeInData(path: "x.safetensors", offset: 4)) {
            try parse(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.invalidShape(path: "x.safetensors", tensor: "a", shape: "[-1]")) {
            try parse(file(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
        #expect(throws: SafetensorsError.self) { try parse(file(header: "[1,2]", data: [])) }
        #expect(throws: SafetensorsError.self) { try parse(file(header: "{\"a\":", data: [])) }
    }

    @Test func truncatedFileIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("micro-gpt2/model.safetensors")))
        let path = dir + "/cut.safetensors"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        #expect(throws: SafetensorsError.self) { try SafetensorsReader.read(path: path) }
        #expect(throws: SafetensorsError.cannotOpen(path: dir + "/nope", reason: "No such file or directory")) {
            try SafetensorsReader.read(path: dir + "/nope")
        }
    }
}
