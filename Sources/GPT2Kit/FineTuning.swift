import Foundation

/// Everything a fine-tuning run needs to know, full or LoRA, new or resumed.
public struct FineTuningSettings: Sendable {
    /// Base model folder or weights file (for a resumed full run the run folder itself is the model).
    public var model: String?
    /// `config.json` for a single weights file.
    public var configPath: String?
    /// The run folder that receives the result, `trainer_state/`, `checkpoint-N/` and the loss curve.
    public var output: String
    /// Continue the run saved in this folder (or its newest complete `checkpoint-N/`).
    public var resume: String?
    /// Start a new run in a non-empty output folder (its checkpoints and trainer state are removed first).
    public var overwrite = false
    /// Tokenizer folder (default: the base model's folder, or the resumed full run's).
    public var tokenizerFolder: String?
    /// Options of a new run; a resumed run keeps its saved options except `steps`.
    public var options = TrainingOptions()
    /// `steps` given again when resuming (extends or shortens the run).
    public var resumeSteps: Int?
    /// Overrides the config's embedding/attention/residual dropout.
    public var dropout: Double?
    /// Weights format of a full run's output.
    public var format: ExportFormat = .safetensors
    /// Write `checkpoint-N/` every this many steps (0: never).
    public var saveEvery = 0
    /// Keep only the newest this many checkpoints (nil: all).
    public var saveTotalLimit: Int?
    /// Stop (after saving) once this many steps have run.
    public var stopAfter: Int?
    /// Train a new LoRA adapter with this configuration (the base stays frozen).
    public var lora: LoRAConfiguration?
    /// Train an existing adapter further (made by PEFT or GPT2Kit).
    public var adapter: String?

    /// A new run writing into `output`, with every other setting at its default (no model yet: set `model` or
    /// `resume`).
    public init(output: String) { self.output = output }
}

/// What a run reports while it works, in this order: `removedLeftovers` (if any), `started`, then for every step
/// `step` followed, on a checkpoint step, by `savingCheckpoint`, `checkpointSaved` and any `checkpointRemoved`;
/// finally `savingResult` before the run folder is written.
public enum FineTuningEvent {
    /// The run is ready: examples, steps, trained floats, and where it resumes (nil: a new run).
    case started(examples: Int, totalSteps: Int, trainedParameters: Int, resumedAt: Int?)
    /// Leftovers of an interrupted process were removed from a run folder.
    case removedLeftovers([String])
    /// A step has run (its eval loss included when it evaluated).
    case step(StepReport)
    /// `checkpoint-N/` (the path) is about to be written: a phase that takes a while on large models.
    case savingCheckpoint(String)
    /// `checkpoint-N/` (the path) is complete.
    case checkpointSaved(String)
    /// An older checkpoint (the path) was removed (`saveTotalLimit`).
    case checkpointRemoved(String)
    /// The result (model or adapter, trainer state, loss curve) is about to be written into the run folder (the path).
    case savingResult(String)
}

/// A fine-tuning run on disk (the library side of `gpt2kit finetune`): locks the run folder, removes what a
/// killed process left, refuses to mix a new run into an old folder, resumes bit-identically, saves
/// `checkpoint-N/` (replacing one only once its successor is complete, keeping the newest `saveTotalLimit`),
/// stops after `stopAfter` steps, writes the result and the loss curve.
///
/// Data-parallel (a `communicator` of several processes): every process runs the same run, each on its slice
/// of every global batch; rank 0 alone locks the folder, reports events, and writes checkpoints and results.
/// A resumed run may use another number of processes when its global batch (batch size × processes of the
/// saved run) divides evenly among them.
public final class FineTuningRun {
    /// The settings the run was created with.
    public let settings: FineTuningSettings
    /// The trainer that runs the steps (its `progress` and `options` are the run's; a resumed run's options are the
    /// saved ones).
    public let trainer: Trainer
    /// The tokenizer the data was encoded with (written into the run folder with a full model).
    public let tokenizer: GPT2Tokenizer
    /// The folder the run resumed from (nil: a new run).
    public let resumedFrom: String?
    private let output: TrainingRun.Output
    private let stateTemplate: TrainingRun.SavedState
    private let locks: [RunFolderLock]
    private let communicator: any Communicator
    private let leftovers: [String]
    /// The step the run started from (0, or where it resumed).
    private let startStep: Int

    /// Prepares the run. `data` turns the tokenizer and the model's config (context length, vocabulary) into
    /// training and evaluation data: JSONL examples (`[TrainingExample]`) or packed blocks (`TrainingDataSet.load`).
    /// `communicator`: the processes of a data-parallel run (every one of them creates the run).
    public init(settings: FineTuningSettings, communicator: any Communicator = SingleProcessCommunicator(),
                data: (GPT2Tokenizer, GPT2Config) throws -> (train: any TrainingDataSource, eval: any TrainingDataSource)) throws {
        self.settings = settings
        self.communicator = communicator
        let fm = FileManager.default
        let out = settings.output
        let isWriter = communicator.rank == 0
        var locks: [RunFolderLock] = []
        var removed: [String] = []
        if isWriter {
            locks.append(try RunFolderLock(folder: out))
            if let resume = settings.resume, Self.standardized(resume) != Self.standardized(out) {
                locks.append(try RunFolderLock(folder: resume))
            }
            for run in Set([out] + (settings.resume.map { [$0] } ?? [])) { removed += TrainingRun.removeLeftovers(run: run) }
        }
        self.locks = locks
        leftovers = removed
        // The other processes read the run folder only once rank 0 has locked and tidied it.
        try communicator.barrier()

        let resumeFolder = try settings.resume.map(TrainingRun.resumableFolder)
        let saved = try resumeFolder.map { try TrainingRun.readState(folder: $0) }
        if resumeFolder == nil {
            let entries = ((try? fm.contentsOfDirectory(atPath: out)) ?? []).filter { !$0.hasPrefix(".") }
            if !entries.isEmpty {
                guard settings.overwrite else { throw TrainingRunError.folderNotEmpty(path: out) }
                if let model = settings.model {
                    var isDirectory: ObjCBool = false
                    let modelFolder = fm.fileExists(atPath: model, isDirectory: &isDirectory) && isDirectory.boolValue
                        ? model : (model as NSString).deletingLastPathComponent
                    if Self.standardized(modelFolder.isEmpty ? "." : modelFolder) == Self.standardized(out) {
                        throw TrainingRunError.invalidSetting("the output folder \(out) holds the base model; write the run elsewhere")
                    }
                }
                if isWriter { try Self.clearRunFiles(out) }
            }
        }
        try communicator.barrier()
        let lora = saved?.lora ?? settings.lora
        if lora != nil || settings.adapter != nil, settings.format != .safetensors, saved == nil {
            throw TrainingRunError.invalidSetting("a LoRA run writes a PEFT adapter (safetensors); --format does not apply")
        }
        let isAdapterRun = saved?.lora != nil || (saved == nil && (settings.lora != nil || settings.adapter != nil))

        // The base model: a full run resumes from its checkpoint folder; a LoRA run from its recorded base.
        let basePath: String
        var configPath = settings.configPath
        if let saved, let resumeFolder {
            if isAdapterRun {
                guard let base = settings.model ?? saved.baseModel else { throw TrainingRunError.invalidSetting("give --model (the base of the adapter)") }
                basePath = base
                if settings.model == nil { configPath = saved.baseConfig }
            } else {
                basePath = resumeFolder
                configPath = nil
            }
        } else {
            guard let model = settings.model else { throw TrainingRunError.invalidSetting("give --model (or --resume)") }
            basePath = model
        }
        let location = try ModelLocation(path: basePath, configPath: configPath)
        let originalConfig = try ModelIO.readConfig(location)
        let dropoutOverride = saved?.dropout ?? settings.dropout
        var config = originalConfig
        if let p = dropoutOverride {
            guard (0..<1).contains(p) else { throw TrainingRunError.invalidSetting("--dropout must be in [0, 1)") }
            config.residualDropout = p; config.embeddingDropout = p; config.attentionDropout = p
        }
        try config.validate(path: location.configPath)
        try ModelIO.checkMemory(for: config, floatCopies: isAdapterRun ? 1 : 4,
                                purpose: isAdapterRun ? "the frozen weights" : "the weights, gradients and AdamW moments")
        let parameters: GPT2Parameters
        do { parameters = try GPT2Parameters(config: config, stateDict: try ModelIO.readStateDict(location)) } catch {
            throw ModelLoadError.weightsDoNotMatch(weights: location.weightsPath, config: location.configPath ?? "", problem: error)
        }
        var adapter: LoRAAdapter?
        if isAdapterRun {
            if let resumeFolder {
                adapter = try AdapterFiles.read(folder: resumeFolder, modelConfig: config)
                if let recorded = saved?.lora, adapter?.configuration != recorded {
                    throw TrainingRunError.invalidState(path: resumeFolder + "/" + AdapterFiles.configFileName,
                                                        reason: "adapter_config.json differs from the run's trainer state")
                }
            } else if let folder = settings.adapter {
                adapter = try AdapterFiles.read(folder: folder, modelConfig: config)
            } else if let lora = settings.lora {
                do { adapter = try LoRAAdapter(configuration: lora, modelConfig: config) } catch {
                    throw TrainingRunError.invalidSetting("\(error)")
                }
                adapter?.initialize(seed: settings.options.seed)
            }
        }
        let gpt2 = try GPT2Model(parameters: parameters, trainable: isAdapterRun ? .none(parameters.layout) : nil, adapter: adapter)
        let tokenizerFolder = settings.tokenizerFolder ?? location.folder
        tokenizer = try ModelIO.loadTokenizer(for: location, override: settings.tokenizerFolder)
        let (examples, evalExamples) = try data(tokenizer, config)
        var options: TrainingOptions
        if let saved {
            options = saved.options
            if let steps = settings.resumeSteps { options.steps = steps }
            options.batchSize = try Self.batchSize(resuming: saved, processes: communicator.size)
        } else {
            options = settings.options
        }
        // Activations of the longest batch (linear in its length: see GPT2Model.activationBytes), beside the weights.
        let batchRows = min(options.batchSize, max(examples.count, evalExamples.count))
        let longest = max(examples.longestExample, evalExamples.longestExample)
        let weightCopies = isAdapterRun ? 1 : 4
        let weightBytes = config.checkedParameterCount.flatMap { MemoryBudget.total([[$0, 4, weightCopies]]) }
        let activationBytes = GPT2Model.activationBytes(config: config, batchSize: max(batchRows, 1), sequenceLength: max(longest, 1), training: true)
        try MemoryBudget.check(bytes: weightBytes.flatMap { w in activationBytes.map { w + $0 } },
                               for: "training with batches of \(batchRows) × \(longest) tokens (weights, optimizer state and activations)")

        trainer = try Trainer(model: gpt2, examples: examples, evalExamples: evalExamples, options: options,
                              padTokenID: tokenizer.eosTokenID, communicator: communicator)
        if let saved, let resumeFolder {
            try trainer.restore(progress: saved.progress, optimizerState: try TrainingRun.readOptimizerState(folder: resumeFolder))
        }
        resumedFrom = resumeFolder
        startStep = trainer.progress.step
        var state = TrainingRun.SavedState(options: options, progress: trainer.progress, totalSteps: trainer.totalSteps,
                                           dropout: dropoutOverride, exportFormat: isAdapterRun ? .safetensors : settings.format)
        if let adapter {
            state.lora = adapter.configuration
            state.baseModel = saved?.baseModel ?? Self.absolute(basePath)
            state.baseConfig = saved?.baseConfig ?? configPath.map(Self.absolute)
            output = .adapter(baseModel: state.baseModel ?? basePath)
        } else {
            let format = saved.flatMap { ExportFormat(rawValue: $0.exportFormat) } ?? settings.format
            state.exportFormat = format.rawValue
            let tokenizerFiles = ModelLocation.tokenizerFileNames.map { tokenizerFolder + "/" + $0 }.filter(InputFile.isRegularFile)
            output = .model(format: format, config: originalConfig, tokenizerFiles: tokenizerFiles,
                            generationConfigPath: location.generationConfigPath,
                            tokenizerData: location.weightsKind == .gguf && settings.tokenizerFolder == nil
                                ? try GGUFModel.tokenizerFiles(path: location.weightsPath) : [])
        }
        stateTemplate = state
    }

    /// Runs to the end (or `stopAfter`), saving checkpoints on the way and the result at the end. Returns the
    /// folder written. A non-finite loss throws `TrainingError.nonFiniteLoss` and leaves the last checkpoint.
    /// With several processes, only rank 0 reports events and writes; every process returns once it has written.
    ///
    /// `shouldStop` is asked before the first step and after every step (once that step's checkpoint, if any, is
    /// written), never during a step or a save; when it answers true the run stops there, writes nothing more, and
    /// throws `TrainingRunError.cancelled` naming the newest complete save to resume from. It is not asked once
    /// the last step (or `stopAfter`) has run: the result is written then. With several processes the answer is
    /// shared (one process asking to stop stops all, at the same step). The library installs no signal handler:
    /// a command line sets a flag from its own SIGINT handler and returns it here.
    @discardableResult
    public func run(shouldStop: (() -> Bool)? = nil, onEvent reportEvent: (FineTuningEvent) throws -> Void = { _ in }) throws -> String {
        let isWriter = communicator.rank == 0
        func onEvent(_ event: FineTuningEvent) throws { if isWriter { try reportEvent(event) } }
        func stopRequested() throws -> Bool {
            guard let shouldStop else { return false }
            let asked = shouldStop()
            guard communicator.isDistributed else { return asked }
            return try communicator.allReducedSum([asked ? 1 : 0])[0] > 0
        }
        if !leftovers.isEmpty { try onEvent(.removedLeftovers(leftovers)) }
        try onEvent(.started(examples: trainer.examples.count, totalSteps: trainer.totalSteps,
                             trainedParameters: trainer.model.gradients.count, resumedAt: resumedFrom.map { _ in trainer.progress.step }))
        let out = settings.output
        // The newest complete save of this session (else the folder the run resumed from).
        var newestSave = resumedFrom
        var cancelled = try !trainer.isFinished && stopRequested()
        if !cancelled {
            try trainer.run { report in
                try onEvent(.step(report))
                if isWriter, settings.saveEvery > 0, report.step % settings.saveEvery == 0, report.step < trainer.totalSteps {
                    try onEvent(.savingCheckpoint(out + "/checkpoint-\(trainer.progress.step)"))
                    let path = try TrainingRun.saveCheckpoint(trainer, run: out, output: output, state: stateTemplate)
                    newestSave = path
                    try onEvent(.checkpointSaved(path))
                    if let limit = settings.saveTotalLimit {
                        for old in pruneCheckpoints(keeping: limit, justWritten: path) { try onEvent(.checkpointRemoved(old)) }
                    }
                }
                if let stopAfter = settings.stopAfter, report.step >= stopAfter { return false }
                if trainer.isFinished { return false }
                cancelled = try stopRequested()
                return !cancelled
            }
        }
        if cancelled {
            throw TrainingRunError.cancelled(step: trainer.progress.step, resumeFrom: isWriter ? newestSave : resumedFrom)
        }
        if isWriter {
            try onEvent(.savingResult(out))
            try TrainingRun.save(trainer, to: out, output: output, state: stateTemplate)
            let steps = trainer.progress.step
            let svg = LossCurve.svg(losses: trainer.progress.losses, evalLosses: trainer.progress.evalLosses.map { ($0.step, $0.loss) },
                                    title: "fine-tuning loss (\(steps) step\(steps == 1 ? "" : "s"))")
            try ModelIO.writeAtomically(Data(svg.utf8), to: out + "/loss_curve.svg")
        }
        try communicator.barrier()
        withExtendedLifetime(locks) {}
        return out
    }

    /// The step after which `run` stops: the run's last step, or `stopAfter` when that comes first (a run always
    /// takes at least one step past where it started).
    public var lastStep: Int {
        guard let stopAfter = settings.stopAfter else { return trainer.totalSteps }
        return min(trainer.totalSteps, max(stopAfter, startStep + 1))
    }

    /// The saves still to come once step `step` has run: its own `checkpoint-N/` if it writes one, the later
    /// checkpoints up to `lastStep`, and the final save of the result (for an estimate of the time left).
    public func savesRemaining(after step: Int) -> Int {
        let every = settings.saveEvery
        // Checkpoints are written at multiples of `every` before the run's last step; the result is saved at the end.
        let end = min(lastStep, trainer.totalSteps - 1)
        guard every > 0, end >= max(step, 1) else { return 1 }
        return 1 + end / every - (max(step, 1) - 1) / every
    }

    /// Removes the oldest `checkpoint-N/` folders beyond `limit` (never the one just written). Returns the removed paths.
    private func pruneCheckpoints(keeping limit: Int, justWritten: String) -> [String] {
        let out = settings.output
        let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        let steps = names.compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), let n = Int(name.dropFirst("checkpoint-".count)), n >= 0 else { return nil }
            return n
        }.sorted()
        var removed: [String] = []
        for step in steps.dropLast(max(limit, 1)) {
            let path = out + "/checkpoint-\(step)"
            if path == justWritten { continue }
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
        }
        return removed
    }

    /// Removes what a previous run left in `folder` that would mix with a new one: `checkpoint-N/`, `trainer_state/`,
    /// weights, adapter files and the loss curve (other files stay).
    static func clearRunFiles(_ folder: String) throws {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
            let isRunFile = name.hasPrefix("checkpoint-") || name == TrainingRun.stateFolderName || name == "loss_curve.svg"
                || name == AdapterFiles.weightsFileName || name == AdapterFiles.configFileName
                || ModelLocation.WeightsKind.allCases.contains { $0.fileName == name }
            guard isRunFile else { continue }
            do { try fm.removeItem(atPath: folder + "/" + name) } catch {
                throw ModelLoadError.cannotWrite(path: folder + "/" + name, reason: "cannot remove the old run's file: \(error.localizedDescription)")
            }
        }
    }

    static func standardized(_ path: String) -> String { URL(fileURLWithPath: path).standardized.path }
    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
}

extension FineTuningRun {
    /// The per-process batch size that continues `saved` on `processes` processes with the same global batch
    /// (so the same examples make each step); throws when it does not divide evenly.
    static func batchSize(resuming saved: TrainingRun.SavedState, processes: Int) throws -> Int {
        let savedProcesses = saved.processes ?? 1
        guard savedProcesses != processes else { return saved.options.batchSize }
        let (global, overflow) = saved.options.batchSize.multipliedReportingOverflow(by: savedProcesses)
        guard !overflow, global % processes == 0 else {
            throw TrainingRunError.invalidSetting(
                "the run being resumed took \(saved.options.batchSize) sequences on each of \(savedProcesses) processes "
                + "(a global batch of \(global)), which does not split evenly over \(processes) processes")
        }
        return global / processes
    }
}
