/// The processes of a data-parallel run and the collective operations the `Trainer` needs from them.
///
/// Every process holds the same model, takes its slice of each global batch, and sums gradients, losses and
/// token counts with the others, so that all processes apply the same update (PyTorch DDP's scheme). GPT2Kit
/// itself links no communication library: `SingleProcessCommunicator` is the default, and the `gpt2kit-mpi`
/// executable provides an Open MPI implementation.
///
/// Every process must call the collective operations in the same order with the same counts. An
/// implementation is expected to end the whole job when a peer dies (Open MPI's `MPI_ERRORS_ARE_FATAL`), or
/// to throw, never to wait forever.
public protocol Communicator: AnyObject {
    /// This process's index, 0 ..< size. Rank 0 logs and writes files.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// Replaces `values` on every process by their elementwise sum over all processes.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces `values` on every process by their elementwise sum over all processes.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Returns once every process has called it.
    func barrier() throws
}

extension Communicator {
    /// The elementwise sum of `values` over all processes.
    public func allReducedSum(_ values: [Double]) throws -> [Double] {
        var out = values
        try out.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return out
    }

    /// Whether there is more than one process.
    public var isDistributed: Bool { size > 1 }
}

/// One process alone: rank 0 of 1; reductions leave the values as they are.
public final class SingleProcessCommunicator: Communicator {
    /// The only process of a run.
    public init() {}
    /// Always 0.
    public var rank: Int { 0 }
    /// Always 1.
    public var size: Int { 1 }
    /// Leaves `values` as they are (the sum over one process).
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) {}
    /// Leaves `values` as they are (the sum over one process).
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) {}
    /// Returns at once.
    public func barrier() {}
}
