import Foundation
import Testing
import Tensors
import TestSupport
@testable import Checkpoints

/// Hostile inputs that are small on disk but amplify: shared (DAG) pickles, memo-smuggled nesting,
/// many views of one storage. Each must fail fast with a typed error naming the file.
extension CheckpointRefusalTests {
    /// The legacy header pickles (magic, protocol 1001, empty sys info) followed by `main` and an empty key list.
    static func legacyFile(main: [UInt8]) -> [UInt8] {
        TorchCheckpointReader.legacyMagic + [0x2E] + [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E] + [0x80, 0x02, 0x7D, 0x2E]
            + main + [0x80, 0x02, 0x5D, 0x2E]
    }

    @Test func sharedPickleGraphIsNotWalkedAsATree() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // NONE, then (DUP, TUPLE2) × 60: 123 bytes of pickle, a tree of 2^60 leaves.
        var main: [UInt8] = [0x80, 0x02, 0x4E]
        for _ in 0 ..< 60 { main += [0x32, 0x86] }
        main.append(0x2E)
        let path = dir + "/dag.bin"
        try CheckpointFixtures.write(Self.legacyFile(main: main), to: path)
        let start = ContinuousClock.now
        #expect(throws: TorchArchiveError.unexpectedObject(path: path, reason: "top-level object is not a dict")) {
            try TorchCheckpointReader.read(path: path)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func memoCannotSmuggleNestingOrCycles() throws {
        // L0 = []; then for each i: LONG_BINGET L(i-1), EMPTY_LIST, LONG_BINPUT i, APPEND, POP.
        // Every fetched list looks shallow in the memo, but the chain nests 300 deep.
        func le4(_ i: Int) -> [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: i >> (8 * $0)) } }
        var chain: [UInt8] = [0x80, 0x02, 0x5D, 0x72] + le4(0)
        for i in 1 ... 300 { chain += [0x6A] + le4(i - 1) + [0x5D, 0x72] + le4(i) + [0x61, 0x30] }
        chain.append(0x2E)
        let result = Result { () throws(TorchArchiveError) in try CheckpointFixtures.unpickle(chain) }
        guard case let .failure(.invalidPickle(path, _, reason)) = result else {
            Issue.record("nesting through the memo was accepted: \(result)"); return
        }
        #expect(path == "x.pkl")
        #expect(reason == "a list is changed after being stored in another value")
        // EMPTY_LIST, DUP, APPEND: a list inside itself.
        #expect(throws: TorchArchiveError.invalidPickle(path: "x.pkl", offset: 4, reason: "a container is stored inside itself")) {
            try CheckpointFixtures.unpickle([0x80, 0x02, 0x5D, 0x32, 0x61, 0x2E])
        }
        // Sharing a filled list is fine: ([1], [1]) through the memo.
        let shared = try CheckpointFixtures.unpickle([0x80, 0x02, 0x5D, 0x71, 0, 0x4B, 1, 0x61, 0x68, 0, 0x86, 0x2E])
        #expect(shared.elements?.count == 2)
    }
}

extension CheckpointRefusalTests {
    @Test func stridedViewsCannotMultiplyOneStorage() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Transposed 32 × 32 views of one 4 KiB storage: each fits its storage; up to four copies are allowed.
        func pickle(_ names: [String]) -> [UInt8] {
            var p = PickleBuilder()
            p.bytes += [0x80, 0x02, 0x7D, 0x28]
            for name in names {
                p.string(name)
                p.global("torch._utils", "_rebuild_tensor_v2")
                p.bytes += [0x28, 0x28]
                p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(1024)
                p.bytes += [0x74, 0x51]
                p.int(0); p.tuple([32, 32]); p.tuple([1, 32]); p.bytes.append(0x89)
                p.bytes += [0x74, 0x52]
            }
            p.bytes += [0x75, 0x2E]
            return p.bytes
        }
        let storage = [("0", (0 ..< 1024).flatMap { i in withUnsafeBytes(of: Float(i)) { Array($0) } })]
        let path = try archive("views.bin", pickle: pickle(["a", "b", "c", "d", "e"]), data: storage)
        #expect(throws: TorchArchiveError.invalidTensorGeometry(path: path, tensor: "e",
            reason: "non-contiguous copies would take 20480 bytes, more than 4× the 4096 bytes of distinct storages in the file")) {
            try TorchCheckpointReader.read(path: path)
        }
        // A size of 65 dimensions (a shared memoised list could make every entry walk a huge one).
        var deep = PickleBuilder()
        deep.bytes += [0x80, 0x02, 0x7D, 0x28]
        deep.string("w")
        deep.global("torch._utils", "_rebuild_tensor_v2")
        deep.bytes += [0x28, 0x28]
        deep.string("storage"); deep.global("torch", "FloatStorage"); deep.string("0"); deep.string("cpu"); deep.int(1024)
        deep.bytes += [0x74, 0x51]
        deep.int(0); deep.tuple(Array(repeating: 1, count: 65)); deep.tuple(Array(repeating: 1, count: 65)); deep.bytes.append(0x89)
        deep.bytes += [0x74, 0x52, 0x75, 0x2E]
        let rank = try archive("rank.bin", pickle: deep.bytes, data: storage)
        #expect(throws: TorchArchiveError.invalidTensorGeometry(path: rank, tensor: "w", reason: "65 dimensions, more than 64")) {
            try TorchCheckpointReader.read(path: rank)
        }
        // Two transposed views (a legitimate file) are still materialised.
        let single = try archive("view.bin", pickle: pickle(["a", "b"]), data: storage)
        let a = try #require(try TorchCheckpointReader.read(path: single)["a"])
        #expect(a.shape == Shape([32, 32]))
        #expect(a.floats()[1] == 32)
    }

    @Test func zipEntriesSharingCompressedBytesAreBoundedInTotal() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        // One deflated local entry of 4 KiB declaring 1000 × that, and 50 central-directory records all pointing at it:
        // each passes the per-entry ratio, together they declare 200 MB from a 7 KB file.
        let compressed = 4096, declared = 1000 * compressed, count = 50
        var bytes: [UInt8] = le32(0x0403_4B50) + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + le32(0)
            + le32(compressed) + le32(declared) + le16(1) + le16(0) + Array("a".utf8)
        bytes += [UInt8](repeating: 0, count: compressed)
        let cdOffset = bytes.count
        for i in 0 ..< count {
            let name = Array("e\(i)".utf8)
            bytes += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + le32(0)
                + le32(compressed) + le32(declared) + le16(name.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + name
        }
        let cdSize = bytes.count - cdOffset
        bytes += le32(0x0605_4B50) + le16(0) + le16(0) + le16(count) + le16(count) + le32(cdSize) + le32(cdOffset) + le16(0)
        let path = dir + "/shared.zip"
        try CheckpointFixtures.write(bytes, to: path)
        let result = Result { () throws(TorchArchiveError) in try ZipArchive(path: path) }
        guard case let .failure(.invalidZip(p, reason)) = result else { Issue.record("accepted: \(result)"); return }
        #expect(p == path)
        #expect(reason.hasPrefix("entries declare more than 1100 × the file's \(bytes.count) bytes in total"), "\(reason)")
    }
}
