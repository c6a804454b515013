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
