import Foundation
import GPT2Kit
import Testing
import TestSupport

/// The `Trainer` loop and `TrainingRun` checkpoints against the reference trajectories and against themselves.
@Suite struct TrainerTests {
    static let pad: TokenID = 50256

    static func example(_ ex: [String: Any]) throws -> TrainingExample {
        TrainingExample(inputIDs: try Golden.ints(ex["input_ids"]), labels: try Golden.ints(ex["labels"]))
    }

    /// The reference optimizer settings of `key` (`finetune_seed`, `finetune_overfit`) as trainer options.
    static func options(_ g: [String: Any], _ key: String) throws -> TrainingOptions {
        let o = try #require((g[key] as? [String: Any])?["optimizer"] as? [String: Any])
        let betas = try Golden.doubles(o["betas"])
        var options = TrainingOptions()
        options.learningRate = try Golden.double(o["lr"])
        options.beta1 = betas[0]; options.beta2 = betas[1]
        options.eps = try Golden.double(o["eps"])
        options.weightDecay = try Golden.double(o["weight_decay"])
        options.steps = try #require(o["steps"] as? Int)
        return options
    }

    static func bits(_ model: GPT2Model) -> [UInt32] { model.parameters.storage.buffer.map(\.bitPattern) }

    @Test func seedTrajectoryThroughTrainer() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let golden = try #require(g["finetune_seed"] as? [String: Any])
        let options = try Self.options(g, "finetune_seed")
        #expect(options.eps == 1e-6 && options.learningRate == 5e-4 && options.steps == 20)
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [try Self.example(ex)], options: options, padTokenID: Self.pad)
        var norms: [Double] = [], rates: [Double] = []
        try trainer.run { norms.append($0.gradientNorm); rates.append($0.learningRate); return true }
        #expect(trainer.progress.step == 20 && trainer.isFinished)
        // fine-tuning losses and gradient norms: rtol 1e-4 (reference README)
        expectAllClose(trainer.progress.losses, try Golden.doubles(golden["losses"]), rtol: 1e-4, "finetune_seed losses")
        expectAllClose(norms, try Golden.doubles(golden["grad_norms_before_clip"]), rtol: 1e-4, "finetune_seed grad norms")
        #expect(rates.allSatisfy { $0 == 5e-4 }, "constant schedule")
    }

    @Test func overfitThenGreedyGivesTheLabel() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let expected = try Golden.ints((g["finetune_overfit"] as? [String: Any])?["greedy_after"])
        let context = try Golden.ints(ex["context_ids"])
        let model = try Golden.model("tiny-gpt2")
        let trainer = try Trainer(model: model, examples: [try Self.example(ex)], options: try Self.options(g, "finetune_overfit"),
                                  padTokenID: Self.pad)
        try trainer.run { _ in true }
        #expect(trainer.progress.step == 20)
        let generator = try Generator(model: model, promptIDs: context,
                                      options: GenerationOptions(maxNewTokens: expected.count - context.count))
        #expect(generator.run() == [expected])
        #expect(Array(expected.suffix(3)) == (try Golden.ints(ex["label_ids"])))
    }

    @Test func batchOfTwoFiveSteps() throws {
        let g = try Golden.tiny()
        let batch = try #require(g["batch"] as? [String: Any])
        let rows = try #require(batch["input_ids"] as? [Any]), masks = try #require(batch["attention_mask"] as? [Any])
        let labelRows = try #require(batch["labels"] as? [Any])
        var examples: [TrainingExample] = []
        for i in rows.indices {
            let n = try Golden.ints(masks[i]).filter { $0 == 1 }.count
            examples.append(TrainingExample(inputIDs: Array(try Golden.ints(rows[i]).prefix(n)), labels: Array(try Golden.ints(labelRows[i]).prefix(n))))
        }
        // The trainer's padding reproduces the reference batch exactly.
        let padded = TrainingBatch(examples: examples, padTokenID: Self.pad)
        #expect(padded.inputIDs == (try rows.flatMap { try Golden.ints($0) }))
        #expect(padded.attentionMask == (try masks.flatMap { try Golden.mask($0) }))
        #expect(padded.labels == (try labelRows.flatMap { try Golden.ints($0) }))
        var options = try Self.options(g, "finetune_seed")
        let losses = try Golden.doubles((batch["finetune_5_steps"] as? [String: Any])?["losses"])
        options.steps = losses.count; options.batchSize = 2; options.shuffle = false
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
        try trainer.run { _ in true }
        expectAllClose(trainer.progress.losses, losses, rtol: 1e-4, "batch 5-step losses")
    }

    /// One step of batch 2 × accumulation 1 against batch 1 × accumulation 2. Accumulation weights each
    /// micro-batch by its label tokens (transformers' Trainer since 4.46), so it equals the batch's token mean
    /// whether or not the micro-batches hold the same number of label tokens.
    @Test func gradientAccumulationMatchesBatching() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let a = try Self.example(ex)
        // Same length and label count: the label ids reversed.
        let b = TrainingExample(inputIDs: Array(a.inputIDs.prefix(6)) + a.inputIDs.suffix(3).reversed(),
                                labels: Array(a.labels.prefix(6)) + a.labels.suffix(3).reversed())
        var options = try Self.options(g, "finetune_seed")
        options.steps = 1; options.shuffle = false
        var batched = options; batched.batchSize = 2
        var accumulated = options; accumulated.gradientAccumulation = 2
        let t1 = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [a, b], options: batched, padTokenID: Self.pad)
        let t2 = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [a, b], options: accumulated, padTokenID: Self.pad)
        let r1 = try t1.step(), r2 = try t2.step()
        // Same float32 math summed in a different order: measured rel diff 4e-8 (loss), 6e-9 (norm).
        expectClose(r2.loss, r1.loss, rtol: 1e-6, "accumulated loss vs batch loss")
        expectClose(r2.gradientNorm, r1.gradientNorm, rtol: 1e-5, "gradient norm")
        let g1 = t1.model.gradients.buffer.map(Double.init), g2 = t2.model.gradients.buffer.map(Double.init)
        // gradients are left in place after the step (token-weighted over micro-batches)
        // Float32 rounding only: measured max |diff| 8.9e-8 with max |g| 0.91 (about one ulp of the largest
        // gradient), hence atol 2e-7; where terms cancel the relative error reaches 1.5e-5.
        expectAllClose(g2, g1, rtol: 1e-5, atol: 2e-7, "averaged gradients")
        let p1 = t1.model.parameters.storage.buffer.map(Double.init), p2 = t2.model.parameters.storage.buffer.map(Double.init)
        // First AdamW step ≈ lr·g/(|g| + eps): at most lr/eps = 500 times a gradient difference; parameter tolerance
        // (STYLE). Measured max |diff| 1.4e-6.
        expectAllClose(p2, p1, rtol: 1e-4, atol: 1e-5, "parameters after one step")

        // Unequal label counts (3 and 1): accumulation still reports the token mean, like the batch, and the
        // mean of the example means would differ.
        let second = try #require((g["examples"] as? [[String: Any]])?.dropFirst().first)
        let c = try Self.example(second)
        #expect(a.labelTokenCount != c.labelTokenCount)
        let la = try Golden.double(ex["loss"]), lc = try Golden.double(second["loss"])
        let na = Double(a.labelTokenCount), nc = Double(c.labelTokenCount)
        let tokenMean = (la * na + lc * nc) / (na + nc)
        let meanOfMeans = (la + lc) / 2
        #expect(abs(tokenMean - meanOfMeans) > 1e-3 * abs(meanOfMeans), "with unequal label counts the two means differ")
        let t3 = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [a, c], options: accumulated, padTokenID: Self.pad)
        let t4 = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [a, c], options: batched, padTokenID: Self.pad)
        let r3 = try t3.step(), r4 = try t4.step()
        expectClose(r3.loss, tokenMean, rtol: 1e-5, "accumulated loss = token mean of the examples")
        expectClose(r4.loss, tokenMean, rtol: 1e-5, "batch loss = token mean of the examples")
        expectClose(r3.gradientNorm, r4.gradientNorm, rtol: 1e-5, "accumulated vs batch gradient norm, unequal label counts")
        expectAllClose(t3.model.gradients.buffer.map(Double.init), t4.model.gradients.buffer.map(Double.init),
                       rtol: 1e-5, atol: 2e-7, "accumulated vs batch gradients, unequal label counts")
    }

    /// A tiny-gpt2 model whose config carries the dropout override (as `finetune --dropout` builds it).
    static func model(dropout: Double?, config original: GPT2Config, stateDict: StateDict) throws -> GPT2Model {
        var config = original
        if let p = dropout { config.residualDropout = p; config.embeddingDropout = p; config.attentionDropout = p }
        return try GPT2Model(config: config, stateDict: stateDict)
    }

    /// With dropout the masks are seeded by (seed, step, micro-batch), so a resumed run draws the same masks.
    @Test(arguments: [nil, 0.1] as [Double?])
    func resumeFromCheckpointIsBitIdentical(dropout: Double?) throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        let config = try Golden.config("tiny-gpt2")
        let reference = try SafetensorsReader.read(path: Fixtures.path("tiny-gpt2/model.safetensors"))
        var options = try Self.options(g, "finetune_seed")
        // Two examples, shuffled, batch 1: the data position and epoch must be restored too.
        options.steps = 6; options.shuffle = true; options.seed = 7; options.schedule = .linear; options.warmupSteps = 2
        let run = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: run) }

        let straight = try Trainer(model: try Self.model(dropout: dropout, config: config, stateDict: reference), examples: examples,
                                   options: options, padTokenID: Self.pad)
        var checkpoint: String?
        try straight.run { report in
            if report.step == 3 {
                checkpoint = try TrainingRun.saveCheckpoint(straight, run: run, format: .safetensors, config: config, dropout: dropout,
                                                            tokenizerFiles: [], generationConfigPath: nil)
            }
            return true
        }
        let folder = try #require(checkpoint)
        if dropout != nil {
            // Dropout really ran: the first loss is neither example's dropout-free loss.
            let clean = try #require(g["examples"] as? [[String: Any]]).map { try Golden.double($0["loss"]) }
            let first = try #require(straight.progress.losses.first)
            #expect(clean.allSatisfy { abs(first - $0) > 1e-4 * $0 }, "loss \(first) with dropout equals a dropout-free loss \(clean)")
        }
        #expect(folder == run + "/checkpoint-3")
        #expect(try TrainingRun.resumableFolder(run) == folder)

        let saved = try TrainingRun.readState(folder: folder)
        #expect(saved.progress.step == 3 && saved.totalSteps == 6 && saved.options == options)
        #expect(saved.dropout == dropout)
        let location = try ModelLocation(path: folder)
        #expect(try ModelIO.readConfig(location).residualDropout == config.residualDropout, "the checkpoint keeps the original config")
        let model = try Self.model(dropout: saved.dropout, config: try ModelIO.readConfig(location), stateDict: try ModelIO.readStateDict(location))
        let resumed = try Trainer(model: model, examples: examples, options: saved.options, padTokenID: Self.pad)
        try resumed.restore(progress: saved.progress, optimizerState: try TrainingRun.readOptimizerState(folder: folder))
        #expect(resumed.optimizer.stepCount == 3)
        try resumed.run { _ in true }
        #expect(resumed.progress.step == 6)
        #expect(resumed.progress == straight.progress, "losses, epoch and data position")
        #expect(resumed.progress.losses.map(\.bitPattern) == straight.progress.losses.map(\.bitPattern))
        #expect(Self.bits(resumed.model) == Self.bits(straight.model), "final parameters differ")
        #expect(resumed.optimizer.m.buffer.map(\.bitPattern) == straight.optimizer.m.buffer.map(\.bitPattern))
        #expect(resumed.optimizer.v.buffer.map(\.bitPattern) == straight.optimizer.v.buffer.map(\.bitPattern))

        // Other data is refused.
        let other = try Trainer(model: model, examples: [examples[0]], options: saved.options, padTokenID: Self.pad)
        #expect(throws: TrainingError.dataMismatch) {
            try other.restore(progress: saved.progress, optimizerState: try TrainingRun.readOptimizerState(folder: folder))
        }
    }

    /// `evaluate` weights every example by its label tokens, whatever the batch size.
    @Test(arguments: [1, 2])
    func evaluateIsTheTokenMean(batchSize: Int) throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        var options = TrainingOptions()
        options.batchSize = batchSize
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
        // Example losses weighted by their label tokens (3 and 1), not the mean of the two means. rtol 1e-5 (README).
        let losses = try #require(g["examples"] as? [[String: Any]]).map { try Golden.double($0["loss"]) }
        let counts = examples.map { Double($0.labelTokenCount) }
        #expect(counts == [3, 1])
        let tokenMean = zip(losses, counts).reduce(0) { $0 + $1.0 * $1.1 } / counts.reduce(0, +)
        expectClose(try trainer.evaluate(examples), tokenMean, rtol: 1e-5, "eval loss, batch size \(batchSize)")
        #expect(trainer.progress.step == 0, "evaluation does not train")
    }

    @Test(arguments: ExportFormat.allCases)
    func exportedRunReloadsWithIdenticalLogits(format: ExportFormat) throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        var options = try Self.options(g, "finetune_seed")
        options.steps = 2
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
        try trainer.run { _ in true }
        let out = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try TrainingRun.save(trainer, to: out, format: format, config: try Golden.config("tiny-gpt2"), dropout: nil,
                             tokenizerFiles: [], generationConfigPath: nil)
        let (reloaded, location) = try ModelIO.loadModel(path: out, trainsBase: true)
        #expect(location.weightsKind.fileName == format.weightsFileName)
        let ids = examples[1].inputIDs
        try trainer.model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count)
        try reloaded.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count)
        let mine = trainer.model.withLogits { $0.map(\.bitPattern) }, theirs = reloaded.withLogits { $0.map(\.bitPattern) }
        #expect(mine.count == ids.count * 50257)
        #expect(mine == theirs, "logits of the reloaded \(format) export differ")
    }

    /// Options as torch.optim.AdamW and the loop validate them: each refusal names its flag.
    @Test func invalidOptionsAreRefusedByName() throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        let model = try Golden.model("tiny-gpt2")
        let cases: [(String, (inout TrainingOptions) -> Void)] = [
            ("--lr", { $0.learningRate = .nan }), ("--lr", { $0.learningRate = -1 }), ("--lr", { $0.learningRate = .infinity }),
            ("--eps", { $0.eps = .nan }), ("--beta1", { $0.beta1 = 1 }), ("--beta2", { $0.beta2 = -0.1 }),
            ("--weight-decay", { $0.weightDecay = .infinity }), ("--clip", { $0.clipNorm = 0 }), ("--clip", { $0.clipNorm = .nan }),
            ("--warmup", { $0.warmupSteps = -1 }), ("--batch-size", { $0.batchSize = 0 }), ("--grad-accum", { $0.gradientAccumulation = 0 }),
            ("--grad-accum", { $0.gradientAccumulation = Int.max }), ("--epochs", { $0.epochs = 0 }), ("--steps", { $0.steps = 0 }),
            ("--eval-every", { $0.evalEvery = -1 }),
            // 9e18 epochs of one step each still fit; of two steps they overflow (formerly SIGILL).
            ("--epochs", { $0.epochs = 9_000_000_000_000_000_000; $0.batchSize = 1 }),
        ]
        for (flag, change) in cases {
            var options = TrainingOptions()
            change(&options)
            do {
                _ = try Trainer(model: model, examples: examples, options: options, padTokenID: Self.pad)
                Issue.record("\(flag) accepted: \(options)")
            } catch let error as TrainingError {
                #expect("\(error)".contains(flag), "\(error)")
            }
        }
    }

    /// `--batch-size Int.max` is clamped to the examples instead of overflowing an index.
    @Test func hugeBatchSizeIsClampedToTheExamples() throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        var options = try Self.options(g, "finetune_seed")
        options.steps = nil; options.epochs = 2; options.batchSize = Int.max
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, evalExamples: examples, options: options,
                                  padTokenID: Self.pad)
        #expect(trainer.totalSteps == 2)
        try trainer.run { _ in true }
        #expect(trainer.progress.step == 2 && trainer.progress.epoch == 2)
        #expect(try Trainer.evaluate(model: trainer.model, data: examples, batchSize: Int.max, padTokenID: Self.pad).isFinite)
    }

    /// A trainer_state.json that does not describe this run is refused before it is used.
    @Test func restoreRefusesInconsistentProgress() throws {
        let g = try Golden.tiny()
        let examples = try #require(g["examples"] as? [[String: Any]]).map(Self.example)
        var options = try Self.options(g, "finetune_seed")
        options.steps = 4
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
        try trainer.run { $0.step < 2 }
        let state = trainer.optimizer.exportState()
        let good = trainer.progress
        #expect(good.step == 2)
        let changes: [(inout TrainerProgress) -> Void] = [{ $0.positionInEpoch = 2 }, { $0.positionInEpoch = -1 }, { $0.epoch = -1 },
                                                           { $0.step = -3 }, { $0.step = 3 }]
        for change in changes {
            var bad = good
            change(&bad)
            let fresh = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
            do {
                try fresh.restore(progress: bad, optimizerState: state)
                Issue.record("progress \(bad) accepted")
            } catch {
                #expect(error is TrainingError, "\(error)")
            }
        }
        let fresh = try Trainer(model: try Golden.model("tiny-gpt2"), examples: examples, options: options, padTokenID: Self.pad)
        try fresh.restore(progress: good, optimizerState: state)
        // A NaN step in the optimizer state is refused, not trapped on.
        var poisoned = state
        poisoned[AdamW.stepName] = Tensor(floats: [.nan], shape: [1])
        #expect(throws: OptimizerStateError.self) { try fresh.optimizer.importState(poisoned) }
    }

    @Test func hugeLearningRateStopsWithNonFiniteLoss() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        var options = try Self.options(g, "finetune_seed")
        options.learningRate = 1e30
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: [try Self.example(ex)], options: options, padTokenID: Self.pad)
        let error = #expect(throws: TrainingError.self) { try trainer.run { _ in true } }
        guard case let .nonFiniteLoss(step, loss)? = error else { Issue.record("expected nonFiniteLoss, got \(String(describing: error))"); return }
        #expect(step == 2, "step 1 is finite, step 2 runs on weights of size 1e30")
        #expect(!loss.isFinite)
        #expect(trainer.progress.step == 1, "the non-finite step is not applied")
    }

    @Test func poisonedWeightsStopWithNonFiniteLoss() throws {
        let g = try Golden.tiny()
        let ex = try #require((g["examples"] as? [[String: Any]])?.first)
        let model = try Golden.model("tiny-gpt2")
        model.parameters.view(.lnfWeight)[0] = .nan
        let before = Self.bits(model)
        let trainer = try Trainer(model: model, examples: [try Self.example(ex)], options: try Self.options(g, "finetune_seed"),
                                  padTokenID: Self.pad)
        let error = #expect(throws: TrainingError.self) { try trainer.step() }
        guard case let .nonFiniteLoss(step, _)? = error else { Issue.record("expected nonFiniteLoss, got \(String(describing: error))"); return }
        #expect(step == 1)
        #expect(trainer.progress.step == 0 && trainer.progress.losses.isEmpty)
        #expect(Self.bits(model) == before, "no update after a non-finite loss")
    }

    // MARK: - Data errors

    static func writeJSONL(_ lines: [String]) throws -> (dir: String, path: String) {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/train.jsonl"
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
        return (dir, path)
    }

    static let good = #"{"context": "Harry Potter is a series of", "label": "seven fantasy novels"}"#

    @Test(arguments: [
        ("{\"context\": \"a\"", 2, "not valid JSON"),
        ("[1, 2]", 2, "not a JSON object"),
        (#"{"context": "a"}"#, 2, "'context' without 'label'"),
        (#"{"prompt": "a"}"#, 2, "'prompt' without 'completion'"),
        (#"{"input": "a", "output": "b"}"#, 2, "expected keys"),
        (#"{"text": 5}"#, 2, "'text' is not a string"),
    ])
    func badLineNamesFileAndLine(line: String, number: Int, reason: String) throws {
        let (dir, path) = try Self.writeJSONL([Self.good, line, Self.good])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let error = #expect(throws: TrainingDataError.self) { try TrainingRecord.readJSONL(path: path) }
        guard case let .invalidLine(p, l, r)? = error else { Issue.record("expected invalidLine, got \(String(describing: error))"); return }
        #expect(p == path && l == number)
        #expect(r.contains(reason), "reason: \(r)")
        #expect(error?.description.hasPrefix("\(path):\(number): ") == true)
    }

    @Test func blankLinesAreSkippedAndCounted() throws {
        let (dir, path) = try Self.writeJSONL([Self.good, "", "  ", #"{"text": "hello"}"#, "{bad"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: TrainingDataError.invalidLine(path: path, line: 5, reason: "not valid JSON")) { try TrainingRecord.readJSONL(path: path) }
    }

    @Test func emptyAndMissingFiles() throws {
        let (dir, path) = try Self.writeJSONL(["", "   "])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: TrainingDataError.empty(path: path)) { try TrainingRecord.readJSONL(path: path) }
        let missing = dir + "/nope.jsonl"
        let error = #expect(throws: TrainingDataError.self) { try TrainingRecord.readJSONL(path: missing) }
        guard case let .cannotRead(p, _)? = error else { Issue.record("expected cannotRead, got \(String(describing: error))"); return }
        #expect(p == missing)
    }

    @Test func overLongSequenceNeedsTruncation() throws {
        let (dir, path) = try Self.writeJSONL([Self.good, #"{"text": "abcdefghij"}"#])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records = try TrainingRecord.readJSONL(path: path)
        let encode: (String) -> [Int] = { $0.unicodeScalars.map { Int($0.value) } } // one id per character
        let error = #expect(throws: TrainingDataError.self) {
            try records[1].example(encode: encode, maximumLength: 8, truncation: nil, source: path, line: 2)
        }
        #expect(error == .tooLong(path: path, line: 2, tokens: 10, limit: 8))
        #expect(error?.description.hasPrefix("\(path):2: ") == true)
        let left = try records[1].example(encode: encode, maximumLength: 8, truncation: .left, source: path, line: 2)
        #expect(left.inputIDs == Array("cdefghij".unicodeScalars.map { TokenID($0.value) }))
        let right = try records[1].example(encode: encode, maximumLength: 8, truncation: .right, source: path, line: 2)
        #expect(right.inputIDs == Array("abcdefgh".unicodeScalars.map { TokenID($0.value) }))
        // Cutting the label away entirely leaves nothing to learn.
        let pair = TrainingRecord.pair(context: "abcdefgh", label: "xy")
        #expect(throws: TrainingDataError.noLabelTokens(path: path, line: 7)) {
            try pair.example(encode: encode, maximumLength: 8, truncation: .right, source: path, line: 7)
        }
    }
}
