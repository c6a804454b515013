import ArgumentParser
import Foundation
import GPT2Kit

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune GPT-2 with AdamW and write a complete model folder (plus trainer state to resume).")

    @Option(help: "Model folder or weights file to start from.") var model: String?
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(name: .customLong("eval-data"), help: "JSONL evaluated at the end (and every --eval-every steps).") var evalData: String?
    @Option(help: "Output run folder.") var out: String
    @Option(help: "Continue the run saved in this folder (or its newest checkpoint-N).") var resume: String?

    @Option(help: "Optimizer steps (default: --epochs passes over the data).") var steps: Int?
    @Option(help: "Passes over the data when --steps is not given.") var epochs = 1
    @Option(help: "Sequences per micro-batch.") var batchSize = 1
    @Option(name: .customLong("grad-accum"), help: "Micro-batches per optimizer step.") var gradientAccumulation = 1
    @Option(help: "Peak learning rate.") var lr = 5e-5
    @Option(help: "constant | linear | cosine.") var schedule: TrainingOptions.Schedule = .constant
    @Option(help: "Linear warm-up steps.") var warmup = 0
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay.") var weightDecay = 0.0
    @Flag(name: .customLong("no-decay-bias-norm"), help: "Exempt biases and LayerNorm weights from weight decay.") var exemptBiasNorm = false
    @Option(help: "AdamW epsilon (the notebook's transformers AdamW used 1e-6).") var eps = 1e-8
    @Option(help: "AdamW beta1.") var beta1 = 0.9
    @Option(help: "AdamW beta2.") var beta2 = 0.999
    @Option(help: "Clip the global gradient norm to this value.") var clip: Double?
    @Option(help: "Override embd/attn/resid dropout of the config.") var dropout: Double?
    @Option(help: "Seed of data order and dropout.") var seed: UInt64 = 0
    @Flag(name: .customLong("no-shuffle"), help: "Keep the data order.") var noShuffle = false
    @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (with --eval-data).") var evalEvery = 0
    @Option(name: .customLong("save-every"), help: "Write checkpoint-N/ every N steps.") var saveEvery = 0
    @Option(name: .customLong("stop-after"), help: "Stop (after saving) once this many steps have run; resume later.") var stopAfter: Int?
    @Option(help: "Weights format of the output: safetensors | pytorch | h5.") var format: ExportFormat = .safetensors
    @Option(name: .customLong("log-every"), help: "Plain progress line every N steps (non-TTY).") var logEvery = 1
    @Flag(help: "One JSON object per step on stdout.") var json = false

    func run() throws {
        try reportingErrors { try train() }
    }

    private func train() throws {
        // One process per run folder: the lock is held until exit (the kernel drops it if the process dies).
        let outLock = try RunFolderLock(folder: out)
        var resumeLock: RunFolderLock?
        if let resume, URL(fileURLWithPath: resume).standardized.path != URL(fileURLWithPath: out).standardized.path {
            resumeLock = try RunFolderLock(folder: resume)
        }
        defer { withExtendedLifetime((outLock, resumeLock)) {} }
        for run in Set([out] + (resume.map { [$0] } ?? [])) {
            let removed = TrainingRun.removeLeftovers(run: run)
            if !removed.isEmpty, !json { Console.err("removed \(removed.count) leftover temporary file\(removed.count == 1 ? "" : "s") of an interrupted run in \(run)") }
        }
        let resumeFolder = try resume.map(TrainingRun.resumableFolder)
        let saved = try resumeFolder.map { try TrainingRun.readState(folder: $0) }
        if let saved, let resumeFolder { try TrainingRun.verifyFiles(folder: resumeFolder, state: saved) }
        guard let modelPath = resumeFolder ?? model else { throw ValidationError("give --model (or --resume)") }
        let location = try ModelLocation(path: modelPath, configPath: resumeFolder == nil ? modelOptions.configPath : nil)
        let originalConfig = try ModelIO.readConfig(location)
        let dropoutOverride = saved?.dropout ?? dropout
        var config = originalConfig
        if let p = dropoutOverride {
            guard (0..<1).contains(p) else { throw ValidationError("--dropout must be in [0, 1)") }
            config.residualDropout = p; config.embeddingDropout = p; config.attentionDropout = p
        }
        try config.validate(path: location.configPath)
        try ModelIO.checkMemory(for: config, floatCopies: 4, purpose: "the weights, gradients and AdamW moments")
        let parameters: GPT2Parameters
        do { parameters = try GPT2Parameters(config: config, stateDict: try ModelIO.readStateDict(location)) } catch {
            throw ModelLoadError.weightsDoNotMatch(weights: location.weightsPath, config: location.configPath ?? "", problem: error)
        }
        let gpt2 = try GPT2Model(parameters: parameters)
        let tokenizerFolder = dataOptions.tokenizer ?? location.folder
        let tokenizer = try ModelIO.loadTokenizer(folder: tokenizerFolder)
        let tokenizerFiles = ModelLocation.tokenizerFileNames.map { tokenizerFolder + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
        let examples = try dataOptions.examples(tokenizer: tokenizer, maximumLength: config.maxPositions)
        let evalExamples = try evalData.map {
            try DataOptions.examples(path: $0, tokenizer: tokenizer, maximumLength: config.maxPositions, truncate: dataOptions.truncate)
        } ?? []

        var options: TrainingOptions
        if let saved {
            options = saved.options
            if let steps { options.steps = steps }
        } else {
            options = TrainingOptions()
            options.learningRate = lr; options.beta1 = beta1; options.beta2 = beta2; options.eps = eps
            options.weightDecay = weightDecay; options.exemptBiasesAndNorms = exemptBiasNorm
            options.schedule = schedule; options.warmupSteps = warmup
            options.batchSize = batchSize; options.gradientAccumulation = gradientAccumulation
            options.steps = steps; options.epochs = epochs; options.clipNorm = clip
            options.shuffle = !noShuffle; options.seed = seed; options.evalEvery = evalEvery
        }
        let trainer = try Trainer(model: gpt2, examples: examples, evalExamples: evalExamples, options: options,
                                  padTokenID: Int32(tokenizer.eosTokenID))
        if let saved, let resumeFolder {
            try trainer.restore(progress: saved.progress, optimizerState: try TrainingRun.readOptimizerState(folder: resumeFolder))
        }
        let save = { (folder: String?) throws -> String in
            if let folder {
                try TrainingRun.save(trainer, to: folder, format: format, config: originalConfig, dropout: dropoutOverride,
                                     tokenizerFiles: tokenizerFiles, generationConfigPath: location.generationConfigPath)
                return folder
            }
            return try TrainingRun.saveCheckpoint(trainer, run: out, format: format, config: originalConfig, dropout: dropoutOverride,
                                                  tokenizerFiles: tokenizerFiles, generationConfigPath: location.generationConfigPath)
        }
        if !json {
            Console.err("fine-tuning \(location.weightsPath): \(examples.count) example\(examples.count == 1 ? "" : "s"), "
                        + "\(trainer.totalSteps) steps, lr \(options.learningRate), batch \(options.batchSize)×\(options.gradientAccumulation)"
                        + (saved != nil ? ", resumed at step \(trainer.progress.step)" : ""))
        }
        let display = ProgressDisplay(total: trainer.totalSteps, logEvery: logEvery, isTerminal: !json && Console.stderrIsTerminal)
        var failure: Error?
        do {
            try trainer.run { report in
                if json {
                    var o: [String: Any] = ["step": report.step, "loss": report.loss, "lr": report.learningRate,
                                            "grad_norm": report.gradientNorm, "tokens_per_s": report.tokensPerSecond, "epoch": report.epoch]
                    if let e = report.evalLoss { o["eval_loss"] = e }
                    Console.out(Console.json(o))
                } else {
                    var fields = [("loss", String(format: "%.4f", report.loss)), ("lr", String(format: "%.2e", report.learningRate)),
                                  ("grad", String(format: "%.3f", report.gradientNorm)), ("tok/s", String(format: "%.0f", report.tokensPerSecond))]
                    if let e = report.evalLoss { fields.append(("eval", String(format: "%.4f", e))) }
                    display.update(step: report.step, fields: fields)
                }
                if saveEvery > 0, report.step % saveEvery == 0, report.step < trainer.totalSteps {
                    let path = try save(nil)
                    if !json { Console.err("saved \(path)") }
                }
                if let stopAfter, report.step >= stopAfter { return false }
                return true
            }
        } catch {
            failure = error
        }
        if let failure {
            if case TrainingError.nonFiniteLoss = failure {
                Console.err("error: \(failure)")
                throw ExitCode.failure
            }
            throw failure
        }
        let folder = try save(out)
        let svg = LossCurve.svg(losses: trainer.progress.losses, evalLosses: trainer.progress.evalLosses.map { ($0.step, $0.loss) },
                                title: "fine-tuning loss (\(trainer.progress.step) steps)")
        try ModelIO.writeAtomically(Data(svg.utf8), to: out + "/loss_curve.svg")
        if !json {
            let first = trainer.progress.losses.first.map { String(format: "%.4f", $0) } ?? "-"
            let last = trainer.progress.losses.last.map { String(format: "%.4f", $0) } ?? "-"
            Console.err("loss \(first) → \(last) after \(trainer.progress.step) steps; wrote \(folder) (\(format.weightsFileName), config, tokenizer, trainer_state/, loss_curve.svg)")
        }
    }
}

extension TrainingOptions.Schedule: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
