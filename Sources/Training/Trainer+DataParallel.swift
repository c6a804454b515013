import Dispatch

/// The data-parallel parts of a step: which examples a process takes, its dropout seed, and the sums over processes.
extension Trainer {
    /// Floats per gradient reduction: the flat gradient buffer is summed in buckets of this size, which bounds
    /// the communication library's temporary buffers and keeps every count within MPI's `Int32`.
    public static let gradientBucketSize = 1 << 22

    /// Sequences per global micro-batch: `batchSize` on each of `processes`.
    static func globalBatchSize(options: TrainingOptions, processes: Int) throws(TrainingError) -> Int {
        let (product, overflow) = options.batchSize.multipliedReportingOverflow(by: max(processes, 1))
        guard !overflow else {
            throw TrainingError.invalidOption("--batch-size: \(options.batchSize) per process × \(processes) processes overflows")
        }
        return product
    }

    /// Sequences of every optimizer step over all processes (the last step of an epoch may have fewer).
    public var globalBatchSize: Int { options.batchSize * communicator.size * options.gradientAccumulation }

    /// The positions of `global` (one global micro-batch in the epoch's order) that process `rank` takes: the
    /// contiguous `rank`-th run of `batchSize`, shorter or empty at the end of an epoch.
    static func slice(of global: Range<Int>, rank: Int, batchSize: Int) -> Range<Int> {
        let (offset, overflow) = rank.multipliedReportingOverflow(by: batchSize)
        let lower = overflow || offset >= global.count ? global.upperBound : global.lowerBound + offset
        return lower ..< lower + min(batchSize, global.upperBound - lower)
    }

    /// The dropout seed of a micro-batch: (seed, step, micro-batch), and the rank when there are several
    /// processes, so ranks draw different masks and a run is reproducible for a fixed number of processes.
    func dropoutSeed(step: Int, microBatch: Int) -> UInt64 {
        let seed = Self.mix(options.seed, UInt64(step), UInt64(microBatch))
        return communicator.isDistributed ? Self.mix(seed, 0xD15_7A1B, UInt64(communicator.rank)) : seed
    }

    /// The step's label tokens over all processes (needed before any backward: they weight each micro-batch).
    func globalLabelTokens(_ local: Int) throws -> Int {
        guard communicator.isDistributed else { return local }
        return Int(try communicator.allReducedSum([Double(local)])[0])
    }

    /// Sums the gradients (in buckets), the weighted loss and the real-token count over all processes.
    func sumOverProcesses(gradients: UnsafeMutableBufferPointer<Float>, loss: Double, realTokens: Int) throws -> (Double, Int) {
        var start = 0
        while start < gradients.count {
            let end = min(start + Self.gradientBucketSize, gradients.count)
            try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: gradients[start ..< end]))
            start = end
        }
        let sums = try communicator.allReducedSum([loss, Double(realTokens)])
        return (sums[0], Int(sums[1]))
    }

    /// Runs `body`, adding its wall-clock seconds to `seconds`.
    func timed<R>(_ seconds: inout Double, _ body: () throws -> R) rethrows -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }
}
