import ArgumentParser
import Foundation
import GPT2Kit

struct FinetuneCommand: DataParallelCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune GPT-2 with AdamW and write a complete model folder (plus trainer state to resume).",
        discussion: """
            Data: --context/--label, a JSONL file, or corpus data — a .txt file, a folder of .txt files, or llm.c \
            token shards from `gpt2kit tokenize --shards OUT FILES…` — joined with <|endoftext|> and packed into \
            blocks of --block-size tokens (default n_positions; the tail shorter than a block is dropped). Text is \
            tokenized into memory (2 bytes per token); shards are memory-mapped, for corpora of any size.
            """)

    @Option(help: "Model folder or weights file to start from.") var model: String?
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(name: .customLong("eval-data"), help: "Data evaluated at the end (and every --eval-every steps): the kinds --data takes (repeatable).")
    var evalData: [String] = []
    @Option(help: "Output run folder.") var out: String
    @Option(help: "Continue the run saved in this folder (or its newest checkpoint-N).") var resume: String?

    @Option(parsing: .unconditional, help: "Optimizer steps (default: --epochs passes over the data).") var steps: Int?
    @Option(parsing: .unconditional, help: "Passes over the data when --steps is not given.") var epochs = TrainingOptions().epochs
    @Option(parsing: .unconditional, help: "Sequences per micro-batch (per process under gpt2kit-mpi).") var batchSize = TrainingOptions().batchSize
    @Option(name: .customLong("grad-accum"), parsing: .unconditional, help: "Micro-batches per optimizer step.") var gradientAccumulation = TrainingOptions().gradientAccumulation
    @Option(parsing: .unconditional, help: "Peak learning rate.") var lr = TrainingOptions().learningRate
    @Option(help: "constant | linear | cosine.") var schedule = TrainingOptions().schedule
    @Option(parsing: .unconditional, help: "Linear warm-up steps.") var warmup = TrainingOptions().warmupSteps
    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: "Decoupled weight decay.") var weightDecay = TrainingOptions().weightDecay
    @Flag(name: .customLong("no-decay-bias-norm"), help: "Exempt biases and LayerNorm weights from weight decay.") var exemptBiasNorm = false
    @Option(parsing: .unconditional, help: "AdamW epsilon (the notebook's transformers AdamW used 1e-6).") var eps = TrainingOptions().eps
    @Option(parsing: .unconditional, help: "AdamW beta1.") var beta1 = TrainingOptions().beta1
    @Option(parsing: .unconditional, help: "AdamW beta2.") var beta2 = TrainingOptions().beta2
    @Option(parsing: .unconditional, help: "Clip the global gradient norm to this value.") var clip: Double?
    @Option(parsing: .unconditional, help: "Override embd/attn/resid dropout of the config.") var dropout: Double?
    @Option(parsing: .unconditional, help: "Seed of data order and dropout.") var seed = TrainingOptions().seed
    @Flag(name: .customLong("no-shuffle"), help: "Keep the data order.") var noShuffle = false
    @Option(name: .customLong("eval-every"), parsing: .unconditional, help: "Evaluate every N steps (with --eval-data).") var evalEvery = 0
    @Option(name: .customLong("save-every"), parsing: .unconditional, help: "Write checkpoint-N/ every N steps.") var saveEvery = 0
    @Option(name: .customLong("save-total-limit"), parsing: .unconditional, help: "Keep only the newest N checkpoints.") var saveTotalLimit: Int?
    @Option(name: .customLong("stop-after"), parsing: .unconditional, help: "Stop (after saving) once this many steps have run; resume later.") var stopAfter: Int?
    @Flag(help: "Start a new run in a non-empty --out folder (its checkpoints and trainer state are removed).") var overwrite = false
    @Option(help: "Weights format of the output: safetensors | pytorch | h5.") var format: ExportFormat = .safetensors
    @Option(name: .customLong("lora-rank"), parsing: .unconditional, help: "Train a LoRA adapter of this rank instead of every weight (PEFT format output).") var loraRank: Int?
    @Option(name: .customLong("lora-alpha"), parsing: .unconditional, help: "LoRA alpha (the update is scaled by alpha/r; default r).") var loraAlpha: Double?
    @Option(name: .customLong("lora-dropout"), parsing: .unconditional, help: "Dropout on the adapter's input.") var loraDropout = 0.0
    @Option(name: .customLong("lora-targets"), help: "Comma-separated module names, matched by suffix as PEFT does.") var loraTargets = "c_attn"
    @Flag(name: .customLong("lora-rslora"), help: "Scale by alpha/sqrt(r) (rsLoRA).") var loraRSLoRA = false
    @Option(help: "Train this existing adapter folder further (PEFT or gpt2kit made).") var adapter: String?
    @Option(name: .customLong("log-every"), parsing: .unconditional, help: "Plain progress line every N steps (non-TTY).") var logEvery = 1
    @Flag(help: "One JSON object per step on stdout.") var json = false

    func run() throws {
        try reportingErrors { try train() }
    }

    private func train() throws {
        var settings = FineTuningSettings(output: out)
        settings.model = model
        settings.configPath = modelOptions.configPath
        settings.resume = resume
        settings.overwrite = overwrite
        settings.tokenizerFolder = dataOptions.tokenizer
        settings.resumeSteps = steps
        settings.dropout = dropout
        settings.format = format
        settings.saveEvery = saveEvery
        settings.saveTotalLimit = saveTotalLimit
        settings.stopAfter = stopAfter
        settings.adapter = adapter
        if let loraRank {
            guard adapter == nil else { throw ValidationError("--lora-rank: give --lora-rank for a new adapter or --adapter to continue one, not both") }
            let targets = loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            settings.lora = LoRAConfiguration(rank: loraRank, alpha: loraAlpha, dropout: loraDropout, targetModules: targets, useRSLoRA: loraRSLoRA)
        }
        if let saveTotalLimit, saveTotalLimit < 1 { throw ValidationError("--save-total-limit: must be at least 1") }
        var options = TrainingOptions()
        options.learningRate = lr; options.beta1 = beta1; options.beta2 = beta2; options.eps = eps
        options.weightDecay = weightDecay; options.exemptBiasesAndNorms = exemptBiasNorm
        options.schedule = schedule; options.warmupSteps = warmup
        options.batchSize = batchSize; options.gradientAccumulation = gradientAccumulation
        options.steps = steps; options.epochs = epochs; options.clipNorm = clip
        options.shuffle = !noShuffle; options.seed = seed; options.evalEvery = evalEvery
        settings.options = options

        var summaries: [String] = [], unit = "example"
        let communicator = CommandEnvironment.communicator
        let isMain = communicator.rank == 0
        let run = try FineTuningRun(settings: settings, communicator: communicator) { tokenizer, config in
            let train = try dataOptions.dataSet(tokenizer: tokenizer, config: config)
            if train.blocks != nil { summaries.append("training data: " + train.summary); unit = "block" }
            let eval = evalData.isEmpty ? nil : try dataOptions.dataSet(paths: evalData, tokenizer: tokenizer, config: config)
            if let eval, eval.blocks != nil { summaries.append("eval data: " + eval.summary) }
            return (train.source, eval?.source ?? [TrainingExample]())
        }
        if !json && isMain { summaries.forEach(Console.err) }
        let trainer = run.trainer
        let display = ProgressDisplay(total: trainer.totalSteps, lastStep: run.lastStep, logEvery: logEvery,
                                      isTerminal: !json && Console.stderrIsTerminal, savesRemaining: run.savesRemaining(after:))
        // Ctrl-C stops the run at the next step boundary (a second one at once); the library only sees the flag.
        let interrupt = InterruptSignal.install { [json, isMain] in
            guard isMain else { return }
            let line = "interrupt: stopping after the current step (press Ctrl-C again to stop at once)"
            if json { Console.err(line) } else { display.message(line) }
        }
        var lastEval: Double?
        do {
            try run.run(shouldStop: { interrupt.isSet }) { event in
                switch event {
                case let .removedLeftovers(paths):
                    if !json { Console.err("removed \(paths.count) leftover temporary file\(paths.count == 1 ? "" : "s") of an interrupted run") }
                case let .started(examples, total, trained, resumedAt):
                    if !json {
                        let what = trainer.model.adapter.map { "LoRA r=\($0.configuration.rank) on \($0.modules.count) modules" } ?? "every weight"
                        Console.err("fine-tuning \(what): \(examples) \(unit)\(examples == 1 ? "" : "s"), \(total) steps, "
                                    + "\(trained) trained parameters, lr \(trainer.options.learningRate), "
                                    + "batch \(trainer.options.batchSize)×\(trainer.options.gradientAccumulation)"
                                    + (communicator.isDistributed ? "×\(communicator.size) processes" : "")
                                    + (resumedAt.map { ", resumed at step \($0)" } ?? ""))
                    }
                case let .step(report):
                    if json {
                        var o: [String: Any] = ["step": report.step, "loss": report.loss, "lr": report.learningRate,
                                                "grad_norm": report.gradientNorm, "tokens_per_s": report.tokensPerSecond, "epoch": report.epoch]
                        if communicator.isDistributed { o["step_s"] = report.seconds; o["communication_s"] = report.communicationSeconds }
                        if let e = report.evalLoss { o["eval_loss"] = e; o["eval_perplexity"] = exp(e) }
                        Console.out(Console.json(o))
                    } else {
                        if let e = report.evalLoss { lastEval = e }
                        display.update(step: report.step, fields: Self.progressFields(report, lastEval: lastEval, isTerminal: display.isTerminal))
                        // On a TTY the results stay on a line of their own, above the bar (which keeps the last eval loss).
                        if let e = report.evalLoss, display.isTerminal {
                            display.message("step \(report.step): eval loss \(String(format: "%.4f", e)), perplexity \(String(format: "%.2f", exp(e)))")
                        }
                    }
                case let .savingCheckpoint(path):
                    if !json { display.beginSave("saving \((path as NSString).lastPathComponent)…") }
                case let .checkpointSaved(path):
                    if !json { display.endSave(message: "saved \(path)") }
                case let .checkpointRemoved(path):
                    if !json { display.message("removed \(path) (--save-total-limit)") }
                case let .savingResult(path):
                    if !json { display.beginSave("saving \(path)…") }
                }
            }
        } catch TrainingRunError.cancelled(let step, let resumeFrom) {
            display.finish()
            interrupt.stop()
            if isMain { Console.err(interruptedMessage(step: step, resumeFrom: resumeFrom, processes: communicator.size)) }
            throw ExitCode(InterruptSignal.exitStatus)
        } catch TrainingError.nonFiniteLoss(let step, let loss) {
            display.finish()
            interrupt.stop()
            if isMain { Console.err("error: \(TrainingError.nonFiniteLoss(step: step, loss: loss))") }
            throw ExitCode.failure
        } catch {
            display.finish()
            interrupt.stop()
            throw error
        }
        display.finish()
        interrupt.stop()
        if !json && isMain {
            let first = trainer.progress.losses.first.map { String(format: "%.4f", $0) } ?? "-"
            let last = trainer.progress.losses.last.map { String(format: "%.4f", $0) } ?? "-"
            let files = trainer.model.adapter != nil ? "adapter_model.safetensors, adapter_config.json" : "\(format.weightsFileName), config, tokenizer"
            Console.err("loss \(first) → \(last) after \(trainer.progress.step) steps; wrote \(out) (\(files), trainer_state/, loss_curve.svg)")
        }
    }
}

extension FinetuneCommand {
    /// The progress line's fields. On a TTY the last eval loss stays on the bar, beside the loss; plain lines
    /// add the eval loss and perplexity of the steps that evaluated.
    static func progressFields(_ report: StepReport, lastEval: Double?, isTerminal: Bool) -> [(String, String)] {
        var fields = [("loss", String(format: "%.4f", report.loss))]
        if isTerminal, let lastEval { fields.append(("eval", String(format: "%.4f", lastEval))) }
        fields += [("lr", String(format: "%.2e", report.learningRate)), ("grad", String(format: "%.3f", report.gradientNorm)),
                   ("tok/s", String(format: "%.0f", report.tokensPerSecond))]
        if !isTerminal, let e = report.evalLoss {
            fields.append(("eval", String(format: "%.4f", e)))
            fields.append(("ppl", String(format: "%.2f", exp(e))))
        }
        return fields
    }

    /// What an interrupted run prints: the step it stopped at and the command that continues it from its newest
    /// save, or that there is nothing to resume.
    func interruptedMessage(step: Int, resumeFrom: String?, processes: Int) -> String {
        guard let resumeFrom else {
            return "interrupted at step \(step); no checkpoint saved yet; nothing to resume"
                + (saveEvery == 0 ? " (--save-every N writes checkpoint-N/ folders)" : "")
        }
        return "interrupted at step \(step); resume with: " + resumeCommand(from: resumeFrom, processes: processes)
    }

    /// The command line that continues this run from `folder`: `--resume` and `--out`, the data options again (a run
    /// keeps only its data's fingerprint), and the options a run does not save (checkpointing, stopping, output).
    func resumeCommand(from folder: String, processes: Int) -> String {
        var arguments = ["--resume", folder, "--out", out]
        if let tokenizer = dataOptions.tokenizer { arguments += ["--tokenizer", tokenizer] }
        for path in dataOptions.data { arguments += ["--data", path] }
        if let context = dataOptions.context { arguments += ["--context", context] }
        if let label = dataOptions.label { arguments += ["--label", label] }
        if let blockSize = dataOptions.blockSize { arguments += ["--block-size", String(blockSize)] }
        if let truncate = dataOptions.truncate { arguments += ["--truncate", truncate.rawValue] }
        for path in evalData { arguments += ["--eval-data", path] }
        if let steps { arguments += ["--steps", String(steps)] }
        if saveEvery > 0 { arguments += ["--save-every", String(saveEvery)] }
        if let saveTotalLimit { arguments += ["--save-total-limit", String(saveTotalLimit)] }
        if let stopAfter { arguments += ["--stop-after", String(stopAfter)] }
        if logEvery != 1 { arguments += ["--log-every", String(logEvery)] }
        if json { arguments.append("--json") }
        let program = processes > 1 ? "mpirun -np \(processes) gpt2kit-mpi" : "gpt2kit"
        return ([program, "finetune"] + arguments.map(Self.shellQuoted)).joined(separator: " ")
    }

    /// `text` as one shell word: as it is when it holds only safe characters, else in single quotes.
    static func shellQuoted(_ text: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%")
        if !text.isEmpty, text.allSatisfy(safe.contains) { return text }
        return "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}

extension TrainingOptions.Schedule: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
