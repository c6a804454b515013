@preconcurrency import CHDF5
import Foundation
import Tensors
import Testing
import TestSupport
@testable import Checkpoints

/// libhdf5 runs in the helper process `gpt2kit-hdf5`: its crashes and hangs become typed errors, what it
/// returns is checked again, and links that leave the file are refused.
@Suite("HDF5 isolation")
struct HDF5IsolationTests {
    static let hostile = Fixtures.path("hdf5-hostile")

    /// One committed hostile file and what libhdf5 1.10 does with it in-process (see fixtures/hdf5-hostile/README.md).
    struct Hostile: Sendable, CustomTestStringConvertible {
        var file: String
        /// The signal that kills an in-process reader, or nil when libhdf5 hangs.
        var signal: Int32?
        var testDescription: String { file }
    }

    static let hostileFiles: [Hostile] = [
        Hostile(file: "layer-names-heap-index.h5", signal: 11),
        Hostile(file: "backend-heap-index.h5", signal: 11),
        Hostile(file: "heap-object-size.h5", signal: 11),
        Hostile(file: "weight-name-object-size.h5", signal: 6),
        Hostile(file: "heap-collection-size.h5", signal: nil),
    ]

    /// Whether the linked libhdf5 is the 1.10 series the hostile files were made against.
    static let isLibHDF5_1_10: Bool = {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        return H5get_libversion(&major, &minor, &release) >= 0 && major == 1 && minor == 10
    }()

    @Test func mutationBaseReadsLikeInProcess() throws {
        let path = Self.hostile + "/base.h5"
        let isolated = try KerasHDF5.readWeightFile(path: path)
        expectSameContents(isolated, try KerasHDF5.readWeightFileInProcess(path: path))
        #expect(isolated.layers.map(\.name) == ["transformer"])
        #expect(isolated.layers[0].weights.count == 16)
    }

    @Test func isolatedReadIsBitIdenticalToInProcess() throws {
        let path = HDF5Tests.fixture
        expectSameContents(try KerasHDF5.readWeightFile(path: path), try KerasHDF5.readWeightFileInProcess(path: path))
    }

    @Test(arguments: hostileFiles)
    func hostileFileGivesATypedError(_ hostile: Hostile) throws {
        let path = Self.hostile + "/" + hostile.file
        // A hang is cut short; a crash comes back at once.
        let options = KerasHDF5.IsolationOptions(timeout: .seconds(hostile.signal == nil ? 2 : 60))
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.readWeightFile(path: path, options: options) }
        #expect(error.path == path)
        guard Self.isLibHDF5_1_10 else { return } // another libhdf5 may refuse the file cleanly instead
        if let signal = hostile.signal {
            #expect(error == .crashed(path: path, operation: .reading, signal: signal))
            #expect(error.description == "\(path): libhdf5 crashed (signal \(signal)) reading the file")
        } else {
            #expect(error == .timedOut(path: path, operation: .reading, seconds: 2))
            #expect(error.description == "\(path): libhdf5 did not finish reading the file within 2 s and was stopped")
        }
    }

    @Test func weightsBeyondTheMemoryLimitAreRefusedBeforeAllocation() throws {
        let path = HDF5Tests.fixture
        let options = KerasHDF5.IsolationOptions(memoryLimit: HDF5Helper.memoryReserve + 100_000)
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.read(path: path, options: options) }
        guard case let .memoryLimitExceeded(p, dataset, total, budget) = error else {
            Issue.record("unexpected error \(error)"); return
        }
        #expect(p == path)
        // In file order the weights pass 100,000 bytes here (wte alone is 96,000).
        #expect(dataset == "/transformer/tfgpt2lm_head_model/transformer/h_._0/attn/c_attn/weight:0")
        #expect(budget == 100_000)
        #expect(total > budget)
    }

    // MARK: links

    @Test(arguments: ["/layer/scope/b:0", "/layer/scope"])
    func externalLinksAreRefused(_ link: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The target exists and is a valid weight file: following the link would read it.
        let other = directory + "/other.h5"
        try KerasHDF5.write(KerasHDF5.WeightFile(layers: [.init(name: "layer", weights: [
            .init(name: "scope/a:0", tensor: Tensor(floats: [1, 2], shape: [2])),
            .init(name: "scope/b:0", tensor: Tensor(floats: [3, 4, 5], shape: [3])),
        ])]), to: other)
        let path = try HDF5Tests.editedFile("external-link.h5") { id in
            #expect(H5Ldelete(id, link, hid_t(H5P_DEFAULT)) >= 0)
            #expect(H5Lcreate_external(other, link, id, link, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT)) >= 0)
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let expected = HDF5Error.unsupportedLink(path: path, link: link, kind: "external")
        #expect(throws: expected) { try KerasHDF5.read(path: path) }
        #expect(throws: expected) { try KerasHDF5.readWeightFileInProcess(path: path) }
        #expect(expected.description == "\(path): link '\(link)': external links are refused (only hard links inside the file are followed)")
    }

    @Test func softLinksAreRefused() throws {
        let path = try HDF5Tests.editedFile("soft-link.h5") { id in
            #expect(H5Lmove(id, "/layer/scope/b:0", id, "/elsewhere", hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT)) >= 0)
            #expect(H5Lcreate_soft("/elsewhere", id, "/layer/scope/b:0", hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT)) >= 0)
        }
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: HDF5Error.unsupportedLink(path: path, link: "/layer/scope/b:0", kind: "soft")) { try KerasHDF5.read(path: path) }
    }

    // MARK: writing

    @Test func aFullDiskGivesATypedErrorAndKeepsTheOldFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/tf_model.h5"
        let small = KerasHDF5.WeightFile(layers: [.init(name: "a", weights: [.init(name: "a/w:0", tensor: Tensor(floats: [1], shape: [1]))])])
        try KerasHDF5.write(small, to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        // 64 KiB of weights against a 16 KiB file-size limit: libhdf5's writes fail with EFBIG as on a full disk.
        let large = KerasHDF5.WeightFile(layers: [.init(name: "a", weights: [
            .init(name: "a/w:0", tensor: Tensor(floats: [Float](repeating: 0.5, count: 16_384), shape: [16_384])),
        ])])
        var options = KerasHDF5.IsolationOptions()
        options.fileSizeLimit = 16_384
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.write(large, to: path, options: options) }
        // libhdf5 1.10.8 reports the failed write, then crashes with SIGSEGV closing the file; either is ours now.
        switch error {
        case .writeFailed(path, _, _), .crashed(path, .writing, _): break
        default: Issue.record("unexpected error \(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["tf_model.h5"])
        // Without the limit the same write goes through.
        try KerasHDF5.write(large, to: path)
        expectSameContents(try KerasHDF5.readWeightFile(path: path), large)
    }

    // MARK: the parent's side of the protocol, against stand-in helpers

    /// An executable shell script standing in for the helper.
    static func fakeHelper(_ directory: String, _ body: String) throws -> String {
        let path = directory + "/fake-helper"
        try Data(("#!/bin/sh\n" + body + "\n").utf8).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, 0o755) == 0)
        return path
    }

    @Test func helperDeathsBecomeTypedErrors() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = HDF5Tests.fixture
        let cases: [(String, HDF5Error)] = [
            ("kill -SEGV $$", .crashed(path: path, operation: .reading, signal: 11)),
            ("kill -ABRT $$", .crashed(path: path, operation: .reading, signal: 6)),
            ("exec sleep 30", .timedOut(path: path, operation: .reading, seconds: 0.5)),
            ("echo 'cannot load libhdf5' >&2; exit 127",
             .helperFailed(path: path, operation: .reading, detail: "exit status 127: cannot load libhdf5")),
            ("exit 0", .helperFailed(path: path, operation: .reading,
                                     detail: "helper channel: file of 0 bytes is too small to hold a safetensors header")),
            ("echo 'not json'; exit 1", .helperFailed(path: path, operation: .reading, detail: "malformed error record")),
            ("echo '{\"case\":\"notHDF5\",\"fields\":[\"/elsewhere.h5\"]}'; exit 1",
             .helperFailed(path: path, operation: .reading, detail: "error record names another file")),
            ("printf '%s' '{\"case\":\"missingGroup\",\"fields\":[\"'\"$5\"'\",\"/x\"]}'; exit 1", .missingGroup(path: path, group: "/x")),
        ]
        for (script, expected) in cases {
            // Only the sleeping helper should meet the short limit; the others get time for a loaded machine.
            let timeout: Duration = script.contains("sleep") ? .milliseconds(500) : .seconds(60)
            let options = KerasHDF5.IsolationOptions(helperPath: try Self.fakeHelper(directory, script), timeout: timeout)
            let started = Date()
            #expect(throws: expected, "\(script)") { try KerasHDF5.read(path: path, options: options) }
            #expect(Date().timeIntervalSince(started) < 30, "\(script)")
        }
    }

    @Test func helperOutputIsCheckedAgain() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The file is never opened (the stand-in helper ignores it), but its size bounds the weights.
        let path = directory + "/tiny.h5"
        try Data([0]).write(to: URL(fileURLWithPath: path))
        // A helper that copies a prepared stream (framed data first, as the helper frames it) to its channel.
        func expectRefused(_ dict: StateDict, _ detail: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let stream = directory + "/stream"
            let (header, order) = SafetensorsWriter.serializedHeader(dict, metadata: dict.metadata)
            var bytes: [UInt8] = []
            for name in order { bytes += try #require(dict[name]).withUnsafeBytes { Array($0) } }
            bytes += header
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes += $0 }
            try Data(bytes).write(to: URL(fileURLWithPath: stream))
            let helper = try Self.fakeHelper(directory, "cat '\(stream)' >&3")
            #expect(throws: HDF5Error.helperFailed(path: path, operation: .reading, detail: detail), sourceLocation: sourceLocation) {
                try KerasHDF5.read(path: path, options: .init(helperPath: helper))
            }
        }
        let one = Tensor(floats: [1], shape: [1])
        func structure(_ json: String, _ tensors: [(String, Tensor)] = [("w", Tensor(floats: [1], shape: [1]))]) -> StateDict {
            var dict = StateDict()
            for (name, tensor) in tensors { dict[name] = tensor }
            dict.metadata = ["gpt2kit.hdf5": json]
            return dict
        }
        let layer = #"{"layers":[{"name":"l","weights":["w"]}],"top":[],"attributes":{}}"#
        var noStructure = structure(layer)
        noStructure.metadata = ["format": "pt"]
        try expectRefused(noStructure, "helper channel: metadata is not exactly the 'gpt2kit.hdf5' structure")
        try expectRefused(structure("{"), "helper channel: structure is not valid JSON (expected '\"' at byte 1)")
        try expectRefused(structure(#"{"layers":[],"top":[],"attributes":{}}"#), "helper channel: 1 tensors belong to no layer")
        try expectRefused(structure(#"{"layers":[{"name":"l","weights":["w","w"]}],"top":[],"attributes":{}}"#),
                          "helper channel: weight 'w' appears twice")
        try expectRefused(structure(#"{"layers":[{"name":"l","weights":["v"]}],"top":[],"attributes":{}}"#),
                          "helper channel: weight 'v' has no tensor")
        try expectRefused(structure(#"{"layers":[{"name":"","weights":["w"]}],"top":[],"attributes":{}}"#),
                          #"helper channel: a layer is not {"name": non-empty string, "weights": [...]}"#)
        try expectRefused(structure(layer, [("w", Tensor(zeros: .i64, shape: [1]))]),
                          "helper channel: weight 'w': dtype I64 is not F16, F32 or F64")
        try expectRefused(structure(#"{"layers":[{"name":"l","weights":["w"]}],"top":[],"attributes":{"k":1}}"#, [("w", one)]),
                          "helper channel: attribute 'k' is not a unique name with a string value")
        // Filler entries (names starting with NUL) must be byte vectors.
        try expectRefused(structure(layer, [("w", one), ("\u{0}1", Tensor(floats: [0], shape: [1]))]),
                          "helper channel: filler entry is not a U8 vector")
        // More bytes than 1101 times the (1-byte) file could ever hold.
        try expectRefused(structure(layer, [("w", Tensor(zeros: .f32, shape: [276]))]), "helper channel: weights total more than 1101 bytes")
        // Not safetensors at all.
        let garbage = try Self.fakeHelper(directory, "printf 'garbage!garbage!' >&3")
        #expect(throws: HDF5Error.self) { try KerasHDF5.read(path: path, options: .init(helperPath: garbage)) }
    }

    @Test func aMissingHelperSaysHowToBuildIt() throws {
        let path = HDF5Tests.fixture
        let error = try #require(throws: HDF5Error.self) {
            try KerasHDF5.read(path: path, options: .init(helperPath: "/nonexistent/gpt2kit-hdf5"))
        }
        #expect(error == .helperUnavailable(path: path, reason: "'/nonexistent/gpt2kit-hdf5' is not an executable file"))
        // The search itself (no configured path): found next to the test runner, as `swift build --build-tests` puts it.
        let found = try HDF5Helper.locate(nil, for: path)
        #expect(found.hasSuffix("/gpt2kit-hdf5"))
    }

    @Test func everyErrorSurvivesTheErrorRecord() {
        let p = "/m/tf_model.h5"
        let errors: [HDF5Error] = [
            .cannotOpen(path: p, reason: "no such file"), .notHDF5(path: p),
            .missingAttribute(path: p, object: "/", attribute: "layer_names"),
            .invalidAttribute(path: p, object: "/", attribute: "a", reason: "r"), .missingGroup(path: p, group: "/g"),
            .missingDataset(path: p, dataset: "/d"), .unsupportedElementType(path: p, dataset: "/d", type: "integer of 4 bytes"),
            .invalidShape(path: p, dataset: "/d", reason: "r"), .unsupportedStorage(path: p, dataset: "/d", reason: "r"),
            .sizeExceedsFile(path: p, dataset: "/d", byteCount: 1 << 42, fileSize: 10),
            .totalSizeExceedsFile(path: p, dataset: "/d", totalBytes: Int.max, limit: 5), .duplicateWeight(path: p, name: "w"),
            .readFailed(path: p, object: "/@a", detail: "d \"quoted\"\n"), .writeFailed(path: p, object: "/", detail: "ünï"),
            .unsupportedDType(path: p, weight: "w", dtype: .bf16), .invalidName(path: p, name: "a/b", reason: "r"),
            .memoryLimitExceeded(path: p, dataset: "/d", totalBytes: 3, budget: 2),
            .unsupportedLink(path: p, link: "/l", kind: "external"), .crashed(path: p, operation: .writing, signal: 11),
            .timedOut(path: p, operation: .reading, seconds: 2.5), .helperUnavailable(path: p, reason: "r"),
            .helperFailed(path: p, operation: .writing, detail: "d"),
        ]
        for error in errors {
            let record = Array(HDF5Helper.errorRecord(error).utf8)
            #expect(HDF5Helper.error(fromRecord: record, path: p, operation: .reading) == error)
        }
        let malformed = HDF5Error.helperFailed(path: p, operation: .reading, detail: "malformed error record")
        for record in [#"{"case":"notHDF5","fields":[]}"#, #"{"case":"sizeExceedsFile","fields":["a","b","x","1"]}"#,
                       #"{"case":"nope","fields":["a"]}"#, #"{"fields":["a"],"case":"notHDF5"}"#, ""] {
            #expect(HDF5Helper.error(fromRecord: Array(record.utf8), path: p, operation: .reading) == malformed, "\(record)")
        }
    }
}
