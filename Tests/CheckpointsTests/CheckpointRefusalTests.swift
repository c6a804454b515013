import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

/// Bad input, each hand-built or cut from a fixture: a typed error naming the file, no crash, no huge allocation.
@Suite struct CheckpointRefusalTests {
    let dir: String
    init() throws { dir = try Fixtures.temporaryDirectory() }

    static let micro = Fixtures.path("micro-gpt2/pytorch_model.bin")

    /// Offset of the first (or last) "PK", a, b signature in `bytes`.
    static func signature(_ a: UInt8, _ b: UInt8, in bytes: [UInt8], last: Bool = false) throws -> Int {
        let needle: [UInt8] = [0x50, 0x4B, a, b]
        let range = 0 ..< bytes.count - 3
        let match: (Int) -> Bool = { i in bytes[i ..< i + 4].elementsEqual(needle) }
        let found: Int? = last ? range.reversed().first(where: match) : range.first(where: match)
        return try #require(found)
    }

    /// The micro model's zip entries with `transform` applied (nil drops an entry), written to `name`.
    func rezipped(_ name: String, _ transform: (String, [UInt8]) -> [UInt8]?) throws -> String {
        let path = dir + "/" + name
        try CheckpointFixtures.zip(try CheckpointFixtures.entries(of: Self.micro).compactMap { n, b in transform(n, b).map { (n, $0) } }, to: path)
        return path
    }

    /// A zip checkpoint whose `data.pkl` is `pickle`, plus the given data entries.
    func archive(_ name: String, pickle: [UInt8], data: [(String, [UInt8])] = []) throws -> String {
        let path = dir + "/" + name
        try CheckpointFixtures.zip([("archive/data.pkl", pickle)] + data.map { ("archive/data/" + $0.0, $0.1) }, to: path)
        return path
    }

    @Test func truncatedFilesAreRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in ["pytorch_model.bin", "pytorch_model_legacy.bin"] {
            let bytes = try CheckpointFixtures.bytes(Fixtures.path("micro-gpt2/" + file))
            for cut in [bytes.count / 2, bytes.count - 1, 100, 10] {
                let path = dir + "/cut-\(cut)-" + file
                try CheckpointFixtures.write(Array(bytes.prefix(cut)), to: path)
                do {
                    _ = try TorchCheckpointReader.read(path: path)
                    Issue.record("\(file) cut at \(cut) was accepted")
                } catch {
                    #expect("\(error)".hasPrefix(path + ":"), "\(error)")
                }
            }
        }
        let legacy = try CheckpointFixtures.bytes(Fixtures.path("micro-gpt2/pytorch_model_legacy.bin"))
        let path = dir + "/half.bin"
        try CheckpointFixtures.write(Array(legacy.prefix(legacy.count / 2)), to: path)
        #expect(throws: TorchArchiveError.self) { try TorchCheckpointReader.read(path: path) }
        let zipCut = dir + "/zipcut.bin"
        try CheckpointFixtures.write(Array(try CheckpointFixtures.bytes(Self.micro).prefix(5000)), to: zipCut)
        #expect(throws: TorchArchiveError.invalidZip(path: zipCut, reason: "no end-of-central-directory record")) {
            try TorchCheckpointReader.read(path: zipCut)
        }
    }

    @Test func forbiddenGlobalsAreNamedAndNeverCalled() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // GLOBAL 'os system', BINUNICODE 'ls', TUPLE1, REDUCE, STOP
        let osSystem: [UInt8] = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x58, 2, 0, 0, 0] + Array("ls".utf8) + [0x85, 0x52, 0x2E]
        // SHORT_BINUNICODE 'builtins', SHORT_BINUNICODE 'eval', STACK_GLOBAL, SHORT_BINUNICODE '1', TUPLE1, REDUCE, STOP
        let builtinsEval: [UInt8] = [0x80, 0x04, 0x8C, 8] + Array("builtins".utf8) + [0x8C, 4] + Array("eval".utf8)
            + [0x93, 0x8C, 1, 0x31, 0x85, 0x52, 0x2E]
        let posix: [UInt8] = [0x80, 0x02, 0x63] + Array("posix\nsystem\n".utf8) + [0x2E]
        let a = try archive("os.bin", pickle: osSystem)
        #expect(throws: TorchArchiveError.forbiddenGlobal(path: a, module: "os", name: "system")) { try TorchCheckpointReader.read(path: a) }
        let b = try archive("eval.bin", pickle: builtinsEval)
        #expect(throws: TorchArchiveError.forbiddenGlobal(path: b, module: "builtins", name: "eval")) { try CheckpointReader.read(path: b) }
        #expect(throws: TorchArchiveError.forbiddenGlobal(path: "x.pkl", module: "posix", name: "system")) { try CheckpointFixtures.unpickle(posix) }
        #expect("\(TorchArchiveError.forbiddenGlobal(path: a, module: "os", name: "system"))" == "\(a): pickle: global 'os.system' is not allowed")
    }

    @Test func missingStorageEntry() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try rezipped("missing.bin") { n, b in n == "pytorch_model/data/3" ? nil : b }
        #expect(throws: TorchArchiveError.missingEntry(path: path, entry: "pytorch_model/data/3")) { try TorchCheckpointReader.read(path: path) }
        let noPickle = try rezipped("nopkl.bin") { n, b in n.hasSuffix("data.pkl") ? nil : b }
        #expect(throws: TorchArchiveError.missingEntry(path: noPickle, entry: "<archive>/data.pkl")) { try TorchCheckpointReader.read(path: noPickle) }
        let big = try rezipped("big.bin") { n, b in n.hasSuffix("byteorder") ? Array("big".utf8) : b }
        #expect(throws: TorchArchiveError.unsupportedByteOrder(path: big, byteOrder: "big")) { try TorchCheckpointReader.read(path: big) }
    }

    @Test func storageShorterThanTheTensor() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try rezipped("short.bin") { n, b in n == "pytorch_model/data/1" ? Array(b.dropLast(4)) : b }
        #expect(throws: TorchArchiveError.storageSizeMismatch(path: path, storage: "pytorch_model/data/1", expected: 3072, found: 3068)) {
            try TorchCheckpointReader.read(path: path)
        }
        // A consistent 2-element storage that a tensor of size (4,) reads past.
        func pickle(numel: Int, size: [Int], stride: [Int]) -> [UInt8] {
            var p = PickleBuilder()
            p.bytes += [0x80, 0x02, 0x7D, 0x28]
            p.string("w")
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.bytes += [0x28, 0x28]
            p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(numel)
            p.bytes += [0x74, 0x51]
            p.int(0); p.tuple(size); p.tuple(stride); p.bytes.append(0x89)
            p.bytes += [0x74, 0x52, 0x75, 0x2E]
            return p.bytes
        }
        let p = (bytes: pickle(numel: 2, size: [4], stride: [1]), ())
        let over = try archive("over.bin", pickle: p.bytes, data: [("0", [UInt8](repeating: 0, count: 8))])
        #expect(throws: TorchArchiveError.tensorOutOfStorage(path: over, tensor: "w", neededElements: 4, storageElements: 2)) {
            try TorchCheckpointReader.read(path: over)
        }
        let lying = try archive("lying.bin", pickle: p.bytes, data: [("0", [UInt8](repeating: 0, count: 4))])
        #expect(throws: TorchArchiveError.storageSizeMismatch(path: lying, storage: "archive/data/0", expected: 8, found: 4)) {
            try TorchCheckpointReader.read(path: lying)
        }
        // Stride 0 over a huge size: refused before allocating the expansion.
        let expand = try archive("expand.bin", pickle: pickle(numel: 2, size: [1 << 40], stride: [0]), data: [("0", [UInt8](repeating: 0, count: 8))])
        #expect(throws: TorchArchiveError.invalidTensorGeometry(path: expand, tensor: "w", reason: "strides [0] expand 2 stored elements to 1099511627776")) {
            try TorchCheckpointReader.read(path: expand)
        }
        let overflow = try archive("overflow.bin", pickle: pickle(numel: 2, size: [1 << 40, 1 << 40], stride: [1 << 40, 1]), data: [("0", [UInt8](repeating: 0, count: 8))])
        #expect(throws: TorchArchiveError.self) { try TorchCheckpointReader.read(path: overflow) }
    }

    @Test func lyingCentralDirectoryOffset() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = try CheckpointFixtures.bytes(Self.micro)
        // torch writes a ZIP64 end record; its central-directory offset sits 48 bytes in.
        let z = try Self.signature(6, 6, in: bytes, last: true)
        for (i, lie) in [UInt64(bytes.count - 100), 1 << 62, UInt64.max].enumerated() {
            for k in 0 ..< 8 { bytes[z + 48 + k] = UInt8(truncatingIfNeeded: lie >> (8 * UInt64(k))) }
            let path = dir + "/lie\(i).bin"
            try CheckpointFixtures.write(bytes, to: path)
            let result = Result { () throws(TorchArchiveError) in try TorchCheckpointReader.read(path: path) }
            if case let .failure(.offsetOutOfRange(p, what, _, _, _)) = result {
                #expect(p == path)
                #expect(what.contains("central directory"), "\(what)")
            } else {
                Issue.record("lying offset \(lie): \(result)")
            }
        }
        // A local header offset past the end.
        var local = try CheckpointFixtures.bytes(Self.micro)
        let cd = try Self.signature(1, 2, in: local)
        for k in 0 ..< 4 { local[cd + 42 + k] = 0xFE }
        let path = dir + "/local.bin"
        try CheckpointFixtures.write(local, to: path)
        #expect(throws: TorchArchiveError.self) { try TorchCheckpointReader.read(path: path) }
    }

    @Test func deflateBombsAndBadDataAreRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bomb.zip"
        try CheckpointFixtures.zip([("a", Array(repeating: 7, count: 16))], to: path)
        var bytes = try CheckpointFixtures.bytes(path)
        let cd = try Self.signature(1, 2, in: bytes)
        bytes[cd + 10] = 8                                                      // method: deflate
        for (k, b) in [0x00, 0x00, 0x00, 0x40].enumerated() { bytes[cd + 24 + k] = UInt8(b) } // uncompressed: 1 GiB
        try CheckpointFixtures.write(bytes, to: path)
        #expect(throws: TorchArchiveError.invalidZip(path: path, reason: "entry 'a' declares 1073741824 bytes from 16 compressed bytes")) {
            try ZipArchive(path: path)
        }
        for (k, b) in [16, 0, 0, 0].enumerated() { bytes[cd + 24 + k] = UInt8(b) } // honest size, but not deflate data
        try CheckpointFixtures.write(bytes, to: path)
        let archive = try ZipArchive(path: path)
        #expect(throws: TorchArchiveError.self) { try archive.contents(named: "a") }
    }

    @Test func hostilePickles() {
        // BINUNICODE claiming 4 GiB: refused before any allocation.
        #expect(throws: TorchArchiveError.truncated(path: "x.pkl", what: "pickle string of 4294967280 bytes", offset: 2)) {
            try CheckpointFixtures.unpickle([0x80, 0x02, 0x58, 0xF0, 0xFF, 0xFF, 0xFF, 0x41, 0x2E])
        }
        #expect(throws: TorchArchiveError.badOpcode(path: "x.pkl", opcode: 0xFF, offset: 3)) {
            try CheckpointFixtures.unpickle([0x80, 0x02, 0x4E, 0xFF, 0x2E])
        }
        #expect(throws: TorchArchiveError.self) { try CheckpointFixtures.unpickle([0x80, 0x02, 0x68, 0x05, 0x2E]) } // BINGET of nothing
        #expect(throws: TorchArchiveError.self) { try CheckpointFixtures.unpickle([0x80, 0x02, 0x2E]) }             // STOP on empty stack
        #expect(throws: TorchArchiveError.self) { try CheckpointFixtures.unpickle([0x80, 0x02, 0x4E]) }             // no STOP
        // 10 000 nested tuples: the nesting limit stops it.
        let nested: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 10_000) + [0x2E]
        #expect(throws: TorchArchiveError.pickleLimitExceeded(path: "x.pkl", what: "nesting depth", limit: Unpickler.maximumNesting)) {
            try CheckpointFixtures.unpickle(nested)
        }
    }

    @Test func legacyStorageCountCannotLie() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = try CheckpointFixtures.bytes(Fixtures.path("micro-gpt2/pytorch_model_legacy.bin"))
        // The first storage's 8-byte element count follows the key-list pickle: find it from the reader's own parse.
        let keysEnd = try bytes.withUnsafeBytes { raw in
            var o = 0
            for _ in 0 ..< 5 { o = try Unpickler.load(raw, at: o, path: "p").end }
            return o
        }
        for k in 0 ..< 8 { bytes[keysEnd + k] = 0xFF }
        let path = dir + "/lying.bin"
        try CheckpointFixtures.write(bytes, to: path)
        #expect(throws: TorchArchiveError.self) { try TorchCheckpointReader.read(path: path) }
        do { _ = try TorchCheckpointReader.read(path: path) } catch { #expect("\(error)".hasPrefix(path), "\(error)") }
    }
}
