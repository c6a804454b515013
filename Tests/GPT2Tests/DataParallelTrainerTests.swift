import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Ranks as threads of one process: sums in rank order once every rank has given its values.
final class InProcessGroup: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var contributions: [[Double]]
    private var result: [Double] = []
    private var arrived = 0
    private var generation = 0

    init(size: Int) {
        self.size = size
        contributions = Array(repeating: [], count: size)
    }

    func allReduce(rank: Int, _ values: [Double]) -> [Double] {
        condition.lock()
        defer { condition.unlock() }
        let round = generation
        contributions[rank] = values
        arrived += 1
        if arrived == size {
            precondition(contributions.allSatisfy { $0.count == values.count }, "ranks reduced different counts")
            result = (0 ..< values.count).map { i in contributions.dropFirst().reduce(contributions[0][i]) { $0 + $1[i] } }
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == round { condition.wait() }
        }
        return result
    }
}

/// One rank of an `InProcessGroup`. Floats are summed in Double and rounded once, which for two ranks is
/// Float addition itself.
final class InProcessCommunicator: Communicator {
    let group: InProcessGroup
    let rank: Int
    var size: Int { group.size }
    private(set) var reductions = 0

    init(group: InProcessGroup, rank: Int) { self.group = group; self.rank = rank }

    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) {
        reductions += 1
        for (i, v) in group.allReduce(rank: rank, values.map(Double.init)).enumerated() { values[i] = Float(v) }
    }

    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) {
        reductions += 1
        for (i, v) in group.allReduce(rank: rank, Array(values)).enumerated() { values[i] = v }
    }

    func barrier() { _ = group.allReduce(rank: rank, []) }
}

/// `Trainer` over several ranks (threads) against one process with the same global batch.
@Suite struct DataParallelTrainerTests {
    /// Seven examples of different lengths and label counts (the last global batch of an epoch is short).
    static let examples: [TrainingExample] = (0 ..< 7).map { i in
        let ids = (0 ..< 5 + 3 * i).map { Int(($0 * 7919 + i * 104_729) % 50257) }
        return TrainingExample(contextIDs: Array(ids.prefix(2 + i % 3)), labelIDs: Array(ids.dropFirst(2 + i % 3)))
    }

    struct Outcome: @unchecked Sendable {
        var losses: [Double]
        var parameters: [Float]
        var reductions: Int
    }

    /// Trains `steps` steps on `ranks` threads with per-rank `batch` and `accumulation`.
    static func train(ranks: Int, batch: Int, accumulation: Int, steps: Int = 4) throws -> [Outcome] {
        let group = InProcessGroup(size: ranks)
        let lock = NSLock()
        nonisolated(unsafe) var outcomes = [Outcome?](repeating: nil, count: ranks)
        nonisolated(unsafe) var failure: (any Error)?
        let threads = (0 ..< ranks).map { rank in
            Thread {
                do {
                    var options = TrainingOptions()
                    options.learningRate = 1e-3; options.eps = 1e-6  // see MPITests.flags for why not 1e-8
                    options.batchSize = batch; options.gradientAccumulation = accumulation
                    options.steps = steps; options.seed = 5
                    let communicator = InProcessCommunicator(group: group, rank: rank)
                    let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: Self.examples, options: options,
                                              padTokenID: 50256, communicator: communicator)
                    try trainer.run { _ in true }
                    let outcome = Outcome(losses: trainer.progress.losses, parameters: trainer.model.parameters.storage.toArray(),
                                          reductions: communicator.reductions)
                    lock.withLock { outcomes[rank] = outcome }
                } catch {
                    lock.withLock { failure = error }
                }
            }
        }
        threads.forEach { $0.stackSize = 8 << 20; $0.start() }
        while lock.withLock({ outcomes.contains { $0 == nil } && failure == nil }) { usleep(10_000) }
        if let failure = lock.withLock({ failure }) { throw failure }
        return lock.withLock { outcomes.compactMap { $0 } }
    }

    /// Seven examples: with a global batch of 4 the second step of an epoch leaves rank 1 one example; with 3 ranks
    /// × 1 the third leaves ranks 1 and 2 none, and they still join every sum.
    @Test(arguments: [(ranks: 2, batch: 2, accumulation: 1), (ranks: 3, batch: 1, accumulation: 1), (ranks: 2, batch: 1, accumulation: 2)])
    func ranksMatchOneProcessWithTheGlobalBatch(_ c: (ranks: Int, batch: Int, accumulation: Int)) throws {
        let one = try #require(try Self.train(ranks: 1, batch: c.ranks * c.batch, accumulation: c.accumulation).first)
        let many = try Self.train(ranks: c.ranks, batch: c.batch, accumulation: c.accumulation)
        #expect(many.count == c.ranks)
        for (rank, outcome) in many.enumerated() {
            // Every rank logs the global loss and holds the same weights (the same update from the same sums).
            #expect(outcome.losses == many[0].losses, "rank \(rank) logged other losses")
            #expect(outcome.parameters == many[0].parameters, "rank \(rank) holds other weights")
            // Per step: the label count, the gradient buffer (one bucket here), loss and tokens.
            #expect(outcome.reductions == 3 * 4)
        }
        expectAllClose(many[0].losses, one.losses, rtol: 1e-6, "losses of \(c.ranks) ranks vs one process")
        let worst = zip(many[0].parameters, one.parameters).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5, "largest weight difference \(worst)")
    }

}
