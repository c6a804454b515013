import Foundation
import GPT2
import Optimization
import Tensors

/// Hyper-parameters of a fine-tuning run.
public struct TrainingOptions: Sendable, Equatable, Codable {
    /// Learning-rate schedule shapes.
    public enum Schedule: String, Sendable, Codable, CaseIterable {
        /// The base learning rate throughout, after a linear warm-up when `warmupSteps` > 0
        /// (`get_constant_schedule_with_warmup`).
        case constant
        /// Linear warm-up, then linear decay to 0 at the last step (`get_linear_schedule_with_warmup`).
        case linear
        /// Linear warm-up, then half a cosine down to 0 at the last step (`get_cosine_schedule_with_warmup`).
        case cosine
    }

    /// Peak learning rate (transformers' `learning_rate`, default 5e-5), scaled by the schedule.
    public var learningRate: Double = AdamW.Options().learningRate
    /// AdamW's β₁ (`adam_beta1`, default 0.9).
    public var beta1: Double = AdamW.Options().beta1
    /// AdamW's β₂ (`adam_beta2`, default 0.999).
    public var beta2: Double = AdamW.Options().beta2
    /// AdamW's ε (`adam_epsilon`, default 1e-8).
    public var eps: Double = AdamW.Options().eps
    /// Decoupled weight decay (`weight_decay`, default 0).
    public var weightDecay: Double = AdamW.Options().weightDecay
    /// Exempt biases and LayerNorm weights from weight decay (transformers' Trainer does; torch's AdamW does not).
    public var exemptBiasesAndNorms: Bool = false
    /// How the learning rate changes over the run (`lr_scheduler_type`).
    public var schedule: Schedule = .constant
    /// Optimizer steps of linear warm-up from 0 (`warmup_steps`).
    public var warmupSteps: Int = 0
    /// Sequences per micro-batch, per process (as in PyTorch DDP: a data-parallel step over N processes
    /// takes N × batchSize × gradientAccumulation sequences).
    public var batchSize: Int = 1
    /// Micro-batches per optimizer step.
    public var gradientAccumulation: Int = 1
    /// Optimizer steps; when nil, `epochs` passes over the data.
    public var steps: Int? = nil
    /// Passes over the data when `steps` is nil (`num_train_epochs`).
    public var epochs: Int = 1
    /// Global gradient-norm clipping (nil: none).
    public var clipNorm: Double? = nil
    /// Shuffle the data each epoch (seeded).
    public var shuffle: Bool = true
    /// Seeds data order and dropout.
    public var seed: UInt64 = 0
    /// Evaluate on the eval data every this many steps (0: only at the end).
    public var evalEvery: Int = 0

    /// transformers' defaults (see `AdamW.Options`); set the fields that differ.
    public init() {}

    /// The options of a common run; the rest keep their defaults.
    public init(learningRate: Double = AdamW.Options().learningRate, steps: Int? = nil, epochs: Int = 1, batchSize: Int = 1,
                weightDecay: Double = AdamW.Options().weightDecay, schedule: Schedule = .constant, warmupSteps: Int = 0,
                seed: UInt64 = 0) {
        self.learningRate = learningRate; self.steps = steps; self.epochs = epochs; self.batchSize = batchSize
        self.weightDecay = weightDecay; self.schedule = schedule; self.warmupSteps = warmupSteps; self.seed = seed
    }

    /// The most micro-batches one optimizer step may accumulate.
    public static let maximumGradientAccumulation = 1 << 20

    /// Checks every option as `torch.optim.AdamW` and the loop need them; the error names the option.
    /// New runs and resumed runs (whose options come from `trainer_state.json`) both pass through here.
    public func validate() throws(TrainingError) {
        func fail(_ flag: String, _ value: Any, _ rule: String) -> TrainingError {
            .invalidOption("--\(flag): \(value) \(rule)")
        }
        if !(learningRate.isFinite && learningRate >= 0) { throw fail("lr", learningRate, "is not a finite number >= 0") }
        if !(eps.isFinite && eps >= 0) { throw fail("eps", eps, "is not a finite number >= 0") }
        if !(beta1 >= 0 && beta1 < 1) { throw fail("beta1", beta1, "is not in [0, 1)") }
        if !(beta2 >= 0 && beta2 < 1) { throw fail("beta2", beta2, "is not in [0, 1)") }
        if !(weightDecay.isFinite && weightDecay >= 0) { throw fail("weight-decay", weightDecay, "is not a finite number >= 0") }
        if let clipNorm, !(clipNorm.isFinite && clipNorm > 0) { throw fail("clip", clipNorm, "is not a finite number > 0") }
        if warmupSteps < 0 { throw fail("warmup", warmupSteps, "is negative") }
        if batchSize < 1 { throw fail("batch-size", batchSize, "is not an integer >= 1") }
        if !(1...Self.maximumGradientAccumulation).contains(gradientAccumulation) {
            throw fail("grad-accum", gradientAccumulation, "is not an integer in 1...\(Self.maximumGradientAccumulation)")
        }
        if epochs < 1 { throw fail("epochs", epochs, "is not an integer >= 1") }
        if let steps, steps < 1 { throw fail("steps", steps, "is not an integer >= 1") }
        if evalEvery < 0 { throw fail("eval-every", evalEvery, "is negative") }
    }
}

/// What happened in one optimizer step.
public struct StepReport: Sendable, Equatable {
    /// 1-based step number.
    public var step: Int
    /// Optimizer steps in the whole run.
    public var totalSteps: Int
    /// The epoch (0-based) the step's first micro-batch came from.
    public var epoch: Int
    /// Mean loss over the step's label tokens, computed before the update.
    public var loss: Double
    /// The learning rate this update used (after the schedule).
    public var learningRate: Double
    /// Global gradient L2 norm before clipping.
    public var gradientNorm: Double
    /// Real (non-padding) tokens processed per second in this step.
    public var tokensPerSecond: Double
    /// Wall-clock seconds the step took (evaluation not included).
    public var seconds: Double
    /// Mean eval loss when this step evaluated.
    public var evalLoss: Double?
    /// Seconds spent summing gradients, losses and counts over the processes (0 for one process).
    public var communicationSeconds: Double = 0
}

/// The result of evaluating a model on some data.
public struct Evaluation: Sendable, Equatable {
    /// Mean cross-entropy over every label token (NaN when there are none).
    public var loss: Double
    /// Positions whose shifted label counted.
    public var labelTokens: Int
    /// Examples (or blocks) evaluated.
    public var examples: Int
    /// `exp(loss)`.
    public var perplexity: Double { exp(loss) }
}

/// Everything beyond the weights and optimizer moments that a resumed run needs to continue bit-identically.
public struct TrainerProgress: Sendable, Equatable, Codable {
    /// Optimizer steps done.
    public var step: Int = 0
    /// Epoch of the next micro-batch (0-based).
    public var epoch: Int = 0
    /// Index of the next example in the epoch's order.
    public var positionInEpoch: Int = 0
    /// Losses of every step so far.
    public var losses: [Double] = []
    /// Every evaluation so far: the step and its mean eval loss.
    public var evalLosses: [EvalPoint] = []
    /// Fingerprint of the training examples (resuming with other data is refused).
    public var dataFingerprint: UInt64 = 0

    /// One evaluation: the mean eval loss after optimizer step `step`.
    public struct EvalPoint: Sendable, Equatable, Codable {
        /// The optimizer step (1-based) after which the model was evaluated.
        public var step: Int
        /// Mean cross-entropy over the eval data's label tokens.
        public var loss: Double
    }
    /// A run that has not started: step 0, no losses.
    public init() {}
}

/// Why training stopped early.
public enum TrainingError: Error, Sendable, CustomStringConvertible, Equatable {
    /// There is no training example, or a step's batches hold no label token.
    case noExamples
    /// Step `step` (1-based) gave a NaN or infinite loss, or gradient norm (`loss` holds the value).
    case nonFiniteLoss(step: Int, loss: Double)
    /// A resumed run's data fingerprint differs from the saved one.
    case dataMismatch
    /// An option out of range, or saved progress that describes no possible run; the message names the option.
    case invalidOption(String)

    /// The message `gpt2kit` prints.
    public var description: String {
        switch self {
        case .noExamples: return "no training examples"
        case let .nonFiniteLoss(s, l): return "step \(s): loss is \(l); stopped (the last saved checkpoint is kept)"
        case .dataMismatch:
            return "the training data differs from the data of the run being resumed (give the same --data, and for text or shards the same --block-size)"
        case let .invalidOption(m): return m
        }
    }
}

/// The fine-tuning loop: batches, forward, backward, clipping, AdamW, schedule, deterministic order and dropout.
public final class Trainer {
    /// The model being trained (its weights change in place; its gradient buffer holds the last step's gradients).
    public let model: GPT2Model
    /// The AdamW optimizer over the model's trainable floats.
    public let optimizer: AdamW
    /// The options the run was created with.
    public let options: TrainingOptions
    /// The training data: JSONL examples or packed blocks, read by index.
    public let examples: any TrainingDataSource
    /// The evaluation data (empty: no evaluation).
    public let evalExamples: any TrainingDataSource
    /// The id right-padding fills batch rows with (masked out of attention and loss; GPT-2 uses its EOS id).
    public let padTokenID: TokenID
    /// The processes this trainer shares each step with (one by default).
    public let communicator: any Communicator
    /// Where the run is: steps done, data position, losses; saved with the optimizer state to resume.
    public private(set) var progress: TrainerProgress
    /// The example order of `progress.epoch`, computed once per epoch.
    private var epochOrder: (epoch: Int, order: [Int])?

    /// Optimizer steps in the whole run.
    public let totalSteps: Int

    /// A trainer for `model` on `examples` (`padTokenID` pads batch rows). The run lasts `options.steps`, else
    /// `epochs` × the steps of one pass (micro-batches of `batchSize` × processes sequences, `gradientAccumulation`
    /// per step). Throws `TrainingError` for no examples or an invalid option.
    public init(model: GPT2Model, examples: any TrainingDataSource, evalExamples: any TrainingDataSource = [TrainingExample](),
                options: TrainingOptions, padTokenID: TokenID, communicator: any Communicator = SingleProcessCommunicator()) throws {
        guard examples.count > 0 else { throw TrainingError.noExamples }
        try options.validate()
        let globalBatch = try Self.globalBatchSize(options: options, processes: communicator.size)
        // A batch never holds more than every example (so --batch-size Int.max cannot overflow an index).
        let batch = min(globalBatch, examples.count)
        let perEpoch = (examples.count + batch - 1) / batch
        let stepsPerEpoch = max(1, (perEpoch + options.gradientAccumulation - 1) / options.gradientAccumulation)
        if let steps = options.steps {
            totalSteps = steps
        } else {
            let (product, overflow) = stepsPerEpoch.multipliedReportingOverflow(by: options.epochs)
            guard !overflow else {
                throw TrainingError.invalidOption("--epochs: \(options.epochs) epochs of \(stepsPerEpoch) steps overflow the step count")
            }
            totalSteps = product
        }
        self.model = model
        self.examples = examples
        self.evalExamples = evalExamples
        self.options = options
        self.padTokenID = padTokenID
        self.communicator = communicator
        let entries = model.trainableNamedRanges
        let mask = options.exemptBiasesAndNorms ? WeightDecayMask.exemptingBiasesAndNorms(entries) : .all
        optimizer = AdamW(parameterCount: model.gradients.count,
                          options: .init(learningRate: options.learningRate, beta1: options.beta1, beta2: options.beta2,
                                         eps: options.eps, weightDecay: options.weightDecay),
                          decayMask: mask)
        progress = TrainerProgress()
        progress.dataFingerprint = examples.fingerprint
    }

    /// Restores a saved run: progress and optimizer moments (the model must hold the saved weights).
    public func restore(progress saved: TrainerProgress, optimizerState: StateDict) throws {
        guard saved.dataFingerprint == progress.dataFingerprint else { throw TrainingError.dataMismatch }
        // The saved progress is input (trainer_state.json is outside the checksums): every value must describe a run
        // that could have happened, so that nothing later overflows or indexes out of range.
        let (microBatches, overflow) = saved.step.multipliedReportingOverflow(by: options.gradientAccumulation)
        guard saved.step >= 0, !overflow, saved.epoch >= 0, saved.epoch <= microBatches,
              (0 ..< examples.count).contains(saved.positionInEpoch) else {
            throw TrainingError.invalidOption("trainer state: step \(saved.step), epoch \(saved.epoch), position \(saved.positionInEpoch) "
                                              + "do not describe a run over \(examples.count) examples")
        }
        guard saved.losses.count == saved.step else {
            throw TrainingError.invalidOption("trainer state: \(saved.losses.count) losses for \(saved.step) steps")
        }
        guard saved.evalLosses.allSatisfy({ (1 ... max(saved.step, 1)).contains($0.step) }) else {
            throw TrainingError.invalidOption("trainer state: an evaluation step lies outside steps 1...\(saved.step)")
        }
        try optimizer.importState(optimizerState)
        guard optimizer.stepCount == saved.step else {
            throw TrainingError.invalidOption("trainer state: step \(saved.step) differs from the optimizer state's step \(optimizer.stepCount)")
        }
        progress = saved
    }

    /// The learning-rate schedule of this run.
    public var schedule: LearningRateSchedule {
        switch options.schedule {
        case .constant: return options.warmupSteps > 0 ? .constantWithWarmup(warmupSteps: options.warmupSteps) : .constant
        case .linear: return .linear(warmupSteps: options.warmupSteps, totalSteps: totalSteps)
        case .cosine: return .cosine(warmupSteps: options.warmupSteps, totalSteps: totalSteps)
        }
    }

    /// Whether every step has run.
    public var isFinished: Bool { progress.step >= totalSteps }

    /// Runs steps until the run is finished or `onStep` returns false.
    public func run(onStep: (StepReport) throws -> Bool) throws {
        while !isFinished {
            let report = try step()
            if try !onStep(report) { break }
        }
    }

    /// Runs one optimizer step (`gradientAccumulation` micro-batches) and returns its report.
    public func step() throws -> StepReport {
        let start = DispatchTime.now().uptimeNanoseconds
        model.zeroGradients()
        let stepIndex = progress.step
        let epochAtStart = progress.epoch
        // Token-weighted accumulation (transformers' Trainer since 4.46): each micro-batch's mean loss is weighted
        // by its share of the step's label tokens, so accumulating equals one large batch.
        // With several processes each takes its slice of every global micro-batch, and the weights use the
        // global step's label tokens (summed first), so the summed gradients are those of one process.
        let batches = try (0..<options.gradientAccumulation).map { _ in try nextBatch() }
        let labelCounts = batches.map { $0?.labelTokenCount ?? 0 }
        let distributed = communicator.isDistributed
        var communicationSeconds = 0.0
        let labelTokens = try timed(&communicationSeconds) { try globalLabelTokens(labelCounts.reduce(0, +)) }
        guard labelTokens > 0 else { throw TrainingError.noExamples }
        var weightedLoss = 0.0, realTokens = 0
        for (micro, batch) in batches.enumerated() where labelCounts[micro] > 0 {
            guard let batch else { continue }
            let seed = dropoutSeed(step: stepIndex, microBatch: micro)
            let mask = batch.isUnpadded ? nil : batch.attentionMask
            let weight = batches.count == 1 && !distributed ? 1.0 : Double(labelCounts[micro]) / Double(labelTokens)
            // The loss scale lets the forward fold the output layer's backward into its chunked loss (no logits kept).
            guard let loss = try model.forward(inputIDs: batch.inputIDs, batchSize: batch.batchSize, sequenceLength: batch.sequenceLength,
                                               attentionMask: mask, labels: batch.labels, training: true, dropoutSeed: seed,
                                               computeAllLogits: false, lossScale: Float(weight)) else {
                throw TrainingError.noExamples
            }
            let l = Double(loss)
            // Several processes stop together, on the summed loss below.
            guard l.isFinite || distributed else { throw TrainingError.nonFiniteLoss(step: stepIndex + 1, loss: l) }
            model.backward()
            weightedLoss += l * weight
            realTokens += batch.attentionMask.reduce(0) { $0 + Int($1) }
        }
        let grads = model.gradients.buffer
        if distributed {
            try timed(&communicationSeconds) {
                (weightedLoss, realTokens) = try sumOverProcesses(gradients: grads, loss: weightedLoss, realTokens: realTokens)
            }
            guard weightedLoss.isFinite else { throw TrainingError.nonFiniteLoss(step: stepIndex + 1, loss: weightedLoss) }
        }
        let norm: Double
        if let clip = options.clipNorm {
            norm = clipGradientNorm(grads, maxNorm: clip)
        } else {
            norm = gradientNorm(UnsafeBufferPointer(grads))
        }
        guard norm.isFinite else { throw TrainingError.nonFiniteLoss(step: stepIndex + 1, loss: norm) }
        let lr = schedule.learningRate(base: options.learningRate, step: stepIndex)
        optimizer.step(parameterSegments: model.trainableSegments, gradients: UnsafeBufferPointer(grads), learningRate: lr)
        progress.step += 1
        let loss = weightedLoss
        progress.losses.append(loss)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var report = StepReport(step: progress.step, totalSteps: totalSteps, epoch: epochAtStart, loss: loss, learningRate: lr,
                                gradientNorm: norm, tokensPerSecond: Double(realTokens) / max(seconds, 1e-9), seconds: seconds,
                                communicationSeconds: communicationSeconds)
        let evalNow = evalExamples.count > 0 && ((options.evalEvery > 0 && progress.step % options.evalEvery == 0) || isFinished)
        if evalNow {
            let e = try evaluate(evalExamples)
            progress.evalLosses.append(.init(step: progress.step, loss: e))
            report.evalLoss = e
        }
        return report
    }

    /// Mean loss over every label token of `data` (no dropout, no gradient).
    public func evaluate(_ data: any TrainingDataSource) throws -> Double {
        try Self.evaluation(model: model, data: data, batchSize: options.batchSize, padTokenID: padTokenID, communicator: communicator).loss
    }

    /// Mean loss over every label token of `data` in batches of `batchSize` (no dropout, no gradient, no optimizer).
    public static func evaluate(model: GPT2Model, data: any TrainingDataSource, batchSize: Int, padTokenID: TokenID) throws -> Double {
        try evaluation(model: model, data: data, batchSize: batchSize, padTokenID: padTokenID).loss
    }

    /// Loss, label tokens and perplexity of `data` in batches of `batchSize` (no dropout, no gradient, no optimizer).
    /// Examples are read one batch at a time, so packed blocks over shards evaluate in bounded memory.
    /// With several processes, each evaluates every `size`-th batch and the sums are combined (every process
    /// gets the result).
    public static func evaluation(model: GPT2Model, data: any TrainingDataSource, batchSize: Int, padTokenID: TokenID,
                                  communicator: any Communicator = SingleProcessCommunicator()) throws -> Evaluation {
        guard batchSize >= 1 else { throw TrainingError.invalidOption("--batch-size: \(batchSize) is not an integer >= 1") }
        var total = 0.0, tokens = 0
        var i = 0, batchIndex = 0
        while i < data.count {
            let range = i ..< i + min(batchSize, data.count - i)
            i = range.upperBound
            defer { batchIndex += 1 }
            guard batchIndex % communicator.size == communicator.rank else { continue }
            let chunk = try range.map { try data.example(at: $0) }
            // Each example separately weighted by its label tokens: batch them, then weight the batch mean.
            let batch = TrainingBatch(examples: chunk, padTokenID: padTokenID)
            let n = batch.labelTokenCount
            guard n > 0 else { continue }
            let mask = batch.isUnpadded ? nil : batch.attentionMask
            if let loss = try model.forward(inputIDs: batch.inputIDs, batchSize: batch.batchSize, sequenceLength: batch.sequenceLength,
                                            attentionMask: mask, labels: batch.labels, training: false, computeAllLogits: false) {
                total += Double(loss) * Double(n)
                tokens += n
            }
        }
        if communicator.isDistributed {
            let sums = try communicator.allReducedSum([total, Double(tokens)])
            total = sums[0]
            tokens = Int(sums[1])
        }
        return Evaluation(loss: tokens > 0 ? total / Double(tokens) : .nan, labelTokens: tokens, examples: data.count)
    }

    /// This process's slice of the next global micro-batch (nil when the epoch's short last batch leaves it none).
    private func nextBatch() throws -> TrainingBatch? {
        if epochOrder?.epoch != progress.epoch {
            epochOrder = (progress.epoch, Self.order(count: examples.count, epoch: progress.epoch, seed: options.seed, shuffle: options.shuffle))
        }
        let order = epochOrder?.order ?? []
        let start = progress.positionInEpoch
        let end = start + min(options.batchSize * communicator.size, order.count - start)
        let slice = Self.slice(of: start ..< end, rank: communicator.rank, batchSize: options.batchSize)
        let chunk = try order[slice].map { try examples.example(at: $0) }
        if end >= order.count {
            progress.epoch += 1
            progress.positionInEpoch = 0
        } else {
            progress.positionInEpoch = end
        }
        return chunk.isEmpty ? nil : TrainingBatch(examples: chunk, padTokenID: padTokenID)
    }

    /// The example order of `epoch`: identity, or a Fisher–Yates shuffle seeded by (seed, epoch).
    static func order(count: Int, epoch: Int, seed: UInt64, shuffle: Bool) -> [Int] {
        var order = Array(0..<count)
        guard shuffle, count > 1 else { return order }
        var state = mix(seed, 0x5EED, UInt64(epoch))
        for i in stride(from: count - 1, to: 0, by: -1) {
            state = splitMix(&state)
            let j = Int(state % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    static func splitMix(_ state: inout UInt64) -> UInt64 {
        var generator = SplitMix64(state: state)
        defer { state = generator.state }
        return generator.next()
    }

    static func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var s = a
        _ = splitMix(&s)
        s ^= b &* 0xD6E8_FEB8_6659_FD93
        _ = splitMix(&s)
        s ^= c &* 0xA076_1D64_78BD_642F
        return splitMix(&s)
    }
}
