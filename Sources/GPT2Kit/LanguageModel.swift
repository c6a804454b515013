import Foundation

/// A GPT-2 model with its tokenizer and generation defaults: the common job in a few lines.
///
/// ```swift
/// import GPT2Kit
///
/// let model = try LanguageModel(folder: "gpt2")
/// print(try model.loss(context: "Harry Potter is a series of", label: " seven fantasy novels"))
/// try model.finetune(examples: [.pair(context: "Harry Potter is a series of", label: " seven fantasy novels")],
///                    options: TrainingOptions(learningRate: 5e-4, steps: 20))
/// print(try model.generate(prompt: "Harry Potter is a series of", options: .init(maxNewTokens: 3)))
/// try model.save(to: "gpt2-hp")
/// ```
///
/// It does what the `gpt2kit` commands do, with the same defaults: `generate` takes its EOS id and defaults
/// from `generation_config.json` (`GenerationOverrides` changes any of them); `finetune` takes
/// `TrainingOptions` (transformers' defaults); `save` writes a folder transformers loads, tokenizer and
/// generation config included. Evaluation and generation keep no gradient buffers; `finetune` allocates
/// gradients and AdamW moments for the call only. The layers underneath (`GPT2Model`, `Trainer`,
/// `Generator`, `GPT2Tokenizer`, `ModelIO`) stay public for other jobs.
///
/// A model loaded with an adapter (`adapter:`) or given one (`addAdapter(_:seed:)`) runs the adapter unmerged;
/// `finetune` then trains the adapter alone, `saveAdapter(to:)` writes it in PEFT's format and `save(to:)`
/// writes the merged model.
public final class LanguageModel {
    /// The network (frozen outside `finetune`).
    public private(set) var model: GPT2Model
    /// The tokenizer the model was loaded with.
    public let tokenizer: GPT2Tokenizer
    /// Defaults for `generate` (the model folder's `generation_config.json`, or none).
    public let generationConfig: GenerationConfigFile
    /// The hyper-parameters.
    public var config: GPT2Config { model.config }
    /// The weights (shared with `model`; changes show in the next call).
    public var parameters: GPT2Parameters { model.parameters }
    /// The LoRA adapter applied unmerged, if any.
    public var adapter: LoRAAdapter? { model.adapter }

    /// Tokenizer files (`vocab.json`, `merges.txt`, `tokenizer.json`, …) as loaded, written again by `save`.
    private let tokenizerFiles: [(name: String, data: Data)]
    /// The `generation_config.json` bytes as loaded (nil: `save` writes one from the config's token ids).
    private let generationConfigData: Data?
    /// Where the weights came from (recorded as the base model of a saved adapter).
    private let source: String

    /// Loads a model folder (config, weights in any supported format, tokenizer, generation config) or a
    /// single weights file (a GGUF file carries its tokenizer; others need `tokenizer`).
    /// - Parameters:
    ///   - path: a Hugging Face folder, a weights file (`.safetensors`, `.bin`, `.h5`, `.gguf`, llm.c `.bin`).
    ///   - tokenizerFolder: a folder with `vocab.json` + `merges.txt` or `tokenizer.json` (default: the model's).
    ///   - adapter: a PEFT LoRA adapter folder (made by PEFT or GPT2Kit), applied unmerged.
    ///   - configPath: a `config.json` for a single weights file.
    /// - Throws: a typed error naming the file and the problem (`ModelLocationError`, `ModelLoadError`,
    ///   `TokenizerError`, `AdapterError`, …).
    public init(folder path: String, tokenizer tokenizerFolder: String? = nil, adapter: String? = nil,
                configPath: String? = nil) throws {
        let (model, location) = try ModelIO.loadModel(path: path, configPath: configPath, adapter: adapter, trainsBase: false)
        if tokenizerFolder == nil && location.weightsKind != .gguf && !location.hasTokenizer {
            throw ModelLocationError.noTokenizer(folder: location.folder)
        }
        self.model = model
        tokenizer = try ModelIO.loadTokenizer(for: location, override: tokenizerFolder)
        if let tokenizerFolder {
            tokenizerFiles = try Self.readFiles(ModelLocation.tokenizerFileNames.map { tokenizerFolder + "/" + $0 }.filter(InputFile.isRegularFile))
        } else if location.weightsKind == .gguf {
            tokenizerFiles = try GGUFModel.tokenizerFiles(path: location.weightsPath)
        } else {
            tokenizerFiles = try Self.readFiles(location.tokenizerPaths)
        }
        if let generationPath = location.generationConfigPath {
            let data = Data(try InputFile.readBytes(generationPath, maximumBytes: InputLimits.maximumConfigBytes))
            generationConfig = try GenerationConfigFile(jsonData: data, path: generationPath)
            generationConfigData = data
        } else {
            generationConfig = GenerationConfigFile()
            generationConfigData = nil
        }
        source = FineTuningRun.absolute(location.weightsKind == .gguf ? location.weightsPath : location.folder)
    }

    /// A model from parts already in memory. `tokenizerFiles` are what `save` writes beside the weights
    /// (`vocab.json` + `merges.txt`, or `tokenizer.json`); without them the saved folder has no tokenizer.
    public init(model: GPT2Model, tokenizer: GPT2Tokenizer, generationConfig: GenerationConfigFile = GenerationConfigFile(),
                tokenizerFiles: [(name: String, data: Data)] = []) {
        self.model = model
        self.tokenizer = tokenizer
        self.generationConfig = generationConfig
        self.tokenizerFiles = tokenizerFiles
        generationConfigData = nil
        source = "gpt2"
    }

    // MARK: - Tokens

    /// The token ids of `text`.
    public func encode(_ text: String) -> [TokenID] { tokenizer.encode(text) }

    /// The text of `ids`. Throws `TokenizerError.unknownTokenID` for an id outside the vocabulary.
    public func decode(_ ids: [TokenID]) throws -> String { try tokenizer.decode(ids) }

    // MARK: - Loss

    /// The mean cross-entropy of `label`'s tokens given `context` (the context's labels masked, no dropout),
    /// as transformers computes it for `labels` with the context set to -100.
    public func loss(context: String, label: String) throws -> Double {
        try evaluate([.pair(context: context, label: label)]).loss
    }

    /// The mean next-token cross-entropy over `text` (every token after the first is a label).
    public func loss(text: String) throws -> Double {
        try evaluate([.text(text)]).loss
    }

    /// Loss, label-token count and perplexity over `examples`, `batchSize` at a time (padded on the right).
    public func evaluate(_ examples: [TrainingRecord], batchSize: Int = 8) throws -> Evaluation {
        try Trainer.evaluation(model: model, data: try trainingExamples(examples, source: "evaluation example"),
                               batchSize: batchSize, padTokenID: tokenizer.eosTokenID)
    }

    // MARK: - Fine-tuning

    /// Fine-tunes in memory with AdamW on `examples` (context/label pairs learn the label; texts learn every
    /// token) and returns the run's progress (losses, evaluation points). `progress` sees every optimizer step.
    /// The weights (or, with an adapter, the adapter alone) change in place; gradients and optimizer moments
    /// exist only during the call. To save checkpoints, resume or train from corpus files, use `FineTuningRun`
    /// (what `gpt2kit finetune` runs).
    @discardableResult
    public func finetune(examples: [TrainingRecord], evalExamples: [TrainingRecord] = [], options: TrainingOptions = TrainingOptions(),
                         progress: (StepReport) throws -> Void = { _ in }) throws -> TrainerProgress {
        try finetune(data: try trainingExamples(examples, source: "training example"),
                     evalData: try trainingExamples(evalExamples, source: "evaluation example"), options: options, progress: progress)
    }

    /// Fine-tunes in memory on corpus data: JSONL files, text files or folders of them, or llm.c token shards
    /// (see `TrainingDataSet.load`); text and shards are packed into blocks of `blockSize` tokens (default: the
    /// context length).
    @discardableResult
    public func finetune(files: [String], evalFiles: [String] = [], blockSize: Int? = nil, options: TrainingOptions = TrainingOptions(),
                         progress: (StepReport) throws -> Void = { _ in }) throws -> TrainerProgress {
        func load(_ paths: [String]) throws -> any TrainingDataSource {
            try TrainingDataSet.load(paths: paths, tokenizer: tokenizer, maximumLength: config.maxPositions,
                                     vocabularySize: config.vocabularySize, blockSize: blockSize).source
        }
        return try finetune(data: try load(files), evalData: evalFiles.isEmpty ? [TrainingExample]() : try load(evalFiles),
                            options: options, progress: progress)
    }

    private func finetune(data: any TrainingDataSource, evalData: any TrainingDataSource, options: TrainingOptions,
                          progress: (StepReport) throws -> Void) throws -> TrainerProgress {
        let parameters = model.parameters, adapter = model.adapter
        let trained = try GPT2Model(parameters: parameters, trainable: adapter == nil ? nil : .none(parameters.layout), adapter: adapter)
        let trainer = try Trainer(model: trained, examples: data, evalExamples: evalData, options: options,
                                  padTokenID: tokenizer.eosTokenID)
        // Back to a model without gradients whatever happens (the weights are shared, so training shows).
        defer { if let frozen = try? GPT2Model(parameters: parameters, trainable: .none(parameters.layout), adapter: adapter) { model = frozen } }
        try trainer.run { report in
            try progress(report)
            return true
        }
        return trainer.progress
    }

    // MARK: - Adapters

    /// Adds a new LoRA adapter (PEFT's initialisation: the model's outputs are unchanged until it trains);
    /// `finetune` then trains it alone. Replaces an adapter already there.
    public func addAdapter(_ configuration: LoRAConfiguration, seed: UInt64 = 0) throws {
        let adapter = try LoRAAdapter(configuration: configuration, modelConfig: config)
        adapter.initialize(seed: seed)
        model = try GPT2Model(parameters: model.parameters, trainable: .none(model.parameters.layout), adapter: adapter)
    }

    /// Writes the adapter in PEFT's format (`adapter_model.safetensors`, `adapter_config.json`) into `folder`.
    /// Throws `LanguageModelError.noAdapter` without one.
    @discardableResult
    public func saveAdapter(to folder: String) throws -> [String] {
        guard let adapter else { throw LanguageModelError.noAdapter }
        return try AdapterFiles.write(adapter, to: folder, baseModel: source)
    }

    // MARK: - Generation

    /// Continues `prompt` and returns the whole text, prompt included (as transformers' `decode` of the
    /// output ids), ended before a stop string. Greedy unless `options.sample` or the generation config says so.
    public func generate(prompt: String, options: GenerationOverrides = GenerationOverrides()) throws -> String {
        var single = options
        single.numReturnSequences = 1
        return try generate(prompts: [prompt], options: single)[0]
    }

    /// Continues every prompt (decoded together as one left-padded batch) and returns
    /// `prompts.count × options.numReturnSequences` texts, prompt by prompt.
    public func generate(prompts: [String], options: GenerationOverrides = GenerationOverrides()) throws -> [String] {
        let generator = try Generator(model: model, prompts: prompts.map { tokenizer.encode($0) }, options: generationOptions(options),
                                      tokenizer: tokenizer)
        let rows = generator.run()
        return try rows.indices.map { try generator.text(row: $0) }
    }

    /// The options `generate` uses for `overrides` (this model's generation config filling the gaps).
    public func generationOptions(_ overrides: GenerationOverrides = GenerationOverrides()) -> GenerationOptions {
        generationConfig.options(overrides, modelConfig: config)
    }

    // MARK: - Saving

    /// Writes a folder transformers loads: weights in `format` and `dtype`, `config.json`,
    /// `generation_config.json` and the tokenizer files. With an adapter, the weights are merged
    /// (PEFT's `merge_and_unload`); the model itself stays unmerged. Returns the paths written.
    @discardableResult
    public func save(to folder: String, format: ExportFormat = .safetensors, dtype: DType = .f32) throws -> [String] {
        var weights = parameters
        if let adapter {
            weights = parameters.copy()
            adapter.merge(into: weights)
        }
        return try ModelIO.writeFolder(weights, to: folder, format: format, dtype: dtype, tokenizerData: tokenizerFiles,
                                       generationConfigData: generationConfigData)
    }

    // MARK: - Helpers

    private func trainingExamples(_ records: [TrainingRecord], source: String) throws -> [TrainingExample] {
        try records.enumerated().map { i, record in
            try record.example(encode: { tokenizer.encode($0) }, maximumLength: config.maxPositions, truncation: nil,
                               source: source, line: i + 1)
        }
    }

    private static func readFiles(_ paths: [String]) throws -> [(name: String, data: Data)] {
        try paths.map { path in
            ((path as NSString).lastPathComponent, Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumTokenizerFileBytes)))
        }
    }
}

/// What `LanguageModel` refuses.
public enum LanguageModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `saveAdapter` on a model without an adapter.
    case noAdapter

    /// The message `gpt2kit` prints.
    public var description: String {
        switch self {
        case .noAdapter: return "the model has no LoRA adapter to save (load one with adapter: or add one with addAdapter)"
        }
    }
}
