@preconcurrency import CHDF5
import Checkpoints
import Foundation
import Tensors
import Testing
import TestSupport

extension HDF5Tests {
    @Test func refusesOneDatasetHardLinkedUnderManyNames() throws {
        // One 64 KiB dataset listed under eleven weight names: each fits the file, together they do not.
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/links.h5"
        let links = (0 ..< 10).map { "l\($0):0" }
        let big = Tensor(floats: [Float](repeating: 1, count: 16_384), shape: [16_384])
        let file = KerasHDF5.WeightFile(layers: [.init(name: "layer", weights:
            [.init(name: "w:0", tensor: big)] + links.map { .init(name: $0, tensor: Tensor(floats: [0], shape: [1])) })])
        try KerasHDF5.write(file, to: path)
        #expect(try KerasHDF5.read(path: path).count == 11)
        try KerasHDF5.withLibraryLock {
            let id = H5Fopen(path, 0x0001 /* H5F_ACC_RDWR */, hid_t(H5P_DEFAULT))
            try #require(id >= 0)
            defer { _ = H5Fclose(id) }
            for name in links {
                #expect(H5Ldelete(id, "/layer/" + name, hid_t(H5P_DEFAULT)) >= 0)
                #expect(H5Lcreate_hard(id, "/layer/w:0", id, "/layer/" + name, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT)) >= 0)
            }
        }
        let fileSize = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(fileSize < 2 * 65_536)
        let error = try #require(throws: HDF5Error.self) { try KerasHDF5.read(path: path) }
        guard case let .totalSizeExceedsFile(p, dataset, total, limit) = error else {
            Issue.record("unexpected error \(error)"); return
        }
        #expect(p == path)
        #expect(dataset == "/layer/l0:0")
        #expect(total == 2 * 65_536)
        #expect(limit == fileSize)
        #expect(error.description.hasPrefix("\(path): dataset '/layer/l0:0': weights total 131072 bytes"))
    }
}
