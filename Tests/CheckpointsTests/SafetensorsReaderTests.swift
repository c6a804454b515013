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

    @Test func headerSyntaxEdgeCases() throws {
        // Unknown fields are ignored (as the reference library does), escapes and non-ASCII names decode,
        // white space after the opening brace (the spec requires the header to start with '{') is accepted.
        let h = try parse(file(header: "{ \"a\\u00e9\\n\" : { \"extra\": [1, {\"x\": null}], \"shape\" : [ 1 ] , \"dtype\":\"F32\", \"data_offsets\": [0, 4] },"
                                + " \"ü\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [4, 5]}, \"__metadata__\": {\"k\": \"v\"} } ",
                                data: [0, 0, 0, 0, 7]))
        #expect(h.entries.map(\.name) == ["a\u{e9}\n", "ü"])
        #expect(h.entries[1].shape == Shape([]))
        #expect(h.metadata == ["k": "v"])
        // Invalid UTF-8 in a name, a fractional dimension, a duplicate key, trailing garbage: refused.
        var bad = file(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, data: [1])
        bad[10] = 0xFF
        #expect(throws: SafetensorsError.self) { try parse(bad) }
        #expect(throws: SafetensorsError.invalidShape(path: "x.safetensors", tensor: "a", shape: "[1.5]")) {
            try parse(file(header: #"{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#, data: [1]))
        }
        #expect(throws: SafetensorsError.invalidHeader(path: "x.safetensors", reason: "duplicate key 'a'")) {
            try parse(file(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, data: [1]))
        }
        #expect(throws: SafetensorsError.self) {
            try parse(file(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}x"#, data: [1]))
        }
        #expect(throws: SafetensorsError.invalidHeader(path: "x.safetensors", reason: "entry 'a' has no valid data_offsets")) {
            try parse(file(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#, data: [1]))
        }
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
