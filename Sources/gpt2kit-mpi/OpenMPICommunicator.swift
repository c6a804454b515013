import CMPI
import Foundation
import GPT2Kit

/// `MPI_COMM_WORLD` of Open MPI as the trainer's `Communicator`.
///
/// Errors keep Open MPI's default handler, `MPI_ERRORS_ARE_FATAL`: a failed call (a peer that died) aborts the
/// whole job, and `mpirun` ends every process, so no rank waits forever in a collective.
final class OpenMPICommunicator: Communicator {
    let rank: Int
    let size: Int
    private let world = gpt2kit_mpi_comm_world()

    /// Initializes MPI (`MPI_Init`) and reads this process's rank and the world's size.
    init() throws(OpenMPIError) {
        try Self.check(MPI_Init(nil, nil), "MPI_Init")
        var rank: Int32 = 0, size: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(world, &size), "MPI_Comm_size")
        self.rank = Int(rank)
        self.size = Int(size)
    }

    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try allReduce(UnsafeMutableRawPointer(values.baseAddress), count: values.count, type: gpt2kit_mpi_float())
    }

    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try allReduce(UnsafeMutableRawPointer(values.baseAddress), count: values.count, type: gpt2kit_mpi_double())
    }

    func barrier() throws {
        try Self.check(MPI_Barrier(world), "MPI_Barrier")
    }

    /// Shuts MPI down (`MPI_Finalize`) after every process is done.
    func finalize() {
        MPI_Finalize()
    }

    /// In-place sum in chunks of at most `Int32.max` elements (MPI counts are `int`).
    private func allReduce(_ base: UnsafeMutableRawPointer?, count: Int, type: MPI_Datatype?) throws {
        guard let base, count > 0 else { return }
        var typeSize: Int32 = 0
        try Self.check(MPI_Type_size(type, &typeSize), "MPI_Type_size")
        var offset = 0
        while offset < count {
            let n = min(count - offset, Int(Int32.max))
            try Self.check(MPI_Allreduce(UnsafeRawPointer(gpt2kit_mpi_in_place()), base + offset * Int(typeSize), Int32(n), type,
                                         gpt2kit_mpi_sum(), world), "MPI_Allreduce")
            offset += n
        }
    }

    private static func check(_ status: Int32, _ call: String) throws(OpenMPIError) {
        guard status == gpt2kit_mpi_success() else { throw OpenMPIError(call: call, code: status) }
    }
}

/// An MPI call that returned an error code (only reachable with an error handler other than the default).
struct OpenMPIError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call) failed with MPI error \(code)" }
}
