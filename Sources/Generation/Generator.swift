import GPT2
import Tokenization

/// Decodes one prompt into `numReturnSequences` continuations as one batch, a token per row at a time,
/// with a key/value cache, following transformers' `generate` (`_sample`): each step picks a token per
/// unfinished row (logits processors, then argmax or warped multinomial draw), writes the pad id into rows
/// that already finished (an EOS id, or a stop string in their new text), and stops when every row has
/// finished or the sequences reach the max length.
///
/// ```swift
/// let generator = try Generator(model: model, promptIDs: ids, options: options)
/// while let step = generator.next() { … }   // step[b]: the new id of row b
/// let sequences = generator.sequences       // prompt ids then new ids, per row
/// ```
public final class Generator: IteratorProtocol, Sequence {
    /// The prompt every row starts from (its end only, when `.left` truncation shortened it).
    public let promptIDs: [Int]
    /// The validated options.
    public let options: GenerationOptions
    /// Total length at which decoding stops (prompt included).
    public let maxLength: Int
    /// Rows decoded together (`numReturnSequences`).
    public var batchSize: Int { options.numReturnSequences }
    /// Prompt ids followed by the ids generated so far, per row.
    public private(set) var sequences: [[Int]]
    /// Whether each row has finished (an EOS id or a stop string).
    public private(set) var isFinished: [Bool]
    /// Why each row stopped; nil while it runs.
    public private(set) var finishReasons: [FinishReason?]
    /// Spells the new tokens (stop strings, `text(row:)`, `takeNewText(row:)`); nil when none was given.
    public let tokenizer: GPT2Tokenizer?
    /// Each row's new text so far (empty without a tokenizer); it stops growing when the row finishes.
    public internal(set) var newTexts: [IncrementalDetokenizer]
    /// The stop strings of the options, ready to search.
    public let stopStrings: StopStrings
    /// Repetition penalty and no-repeat n-gram ban, applied before `sampler`.
    public let processor: LogitsProcessor
    /// The decoder behind the steps.
    public let decoder: KVCacheDecoder
    /// Chooses each row's token.
    public let sampler: TokenSampler

    private var pending: [Int32]  // (B, T) tokens not yet fed to the decoder
    private var isDone = false

    /// Prepares decoding of `promptIDs` (its end only, with `.left` truncation and a prompt too long for the
    /// new tokens). Throws on an empty prompt, ids outside the vocabulary, lengths that pass the model's
    /// positions, options out of range, or stop strings without a `tokenizer`.
    public init(model: GPT2Model, promptIDs: [Int], options: GenerationOptions, tokenizer: GPT2Tokenizer? = nil) throws(GenerationError) {
        let options = try options.validated()
        let config = model.config
        if !options.stopStrings.isEmpty && tokenizer == nil { throw .stopStringsNeedTokenizer }
        let promptIDs = try options.truncatedPrompt(promptIDs, contextLength: config.maxPositions)
        let maxLength = try options.resolvedMaxLength(promptLength: promptIDs.count, contextLength: config.maxPositions)
        for id in promptIDs where id < 0 || id >= config.vocabularySize {
            throw .tokenOutOfRange(id: id, vocabularySize: config.vocabularySize)
        }
        // The pad id is fed back for finished rows, so it must be a real id whenever some EOS id can be
        // produced; an EOS id outside the vocabulary (a config default on a small vocabulary) never is.
        let canFinish = !options.stopStrings.isEmpty || options.eosTokenIDs.contains { $0 >= 0 && $0 < config.vocabularySize }
        if canFinish, let pad = options.effectivePadTokenID, pad < 0 || pad >= config.vocabularySize {
            throw .invalidOption(name: "pad token id", value: "\(pad)", expected: "an id in 0..<\(config.vocabularySize)")
        }
        let B = options.numReturnSequences
        self.promptIDs = promptIDs
        self.options = options
        self.maxLength = maxLength
        sequences = Array(repeating: promptIDs, count: B)
        for b in 0..<B { sequences[b].reserveCapacity(maxLength) }
        isFinished = Array(repeating: false, count: B)
        finishReasons = Array(repeating: nil, count: B)
        self.tokenizer = tokenizer
        newTexts = tokenizer.map { Array(repeating: IncrementalDetokenizer(tokenizer: $0), count: B) } ?? []
        stopStrings = StopStrings(options.stopStrings)
        processor = try LogitsProcessor(vocabularySize: config.vocabularySize, repetitionPenalty: options.repetitionPenalty,
                                        noRepeatNGramSize: options.noRepeatNGramSize)
        // The last token is chosen from the logits at position maxLength - 2 and never fed back.
        decoder = try KVCacheDecoder(model: model, batchSize: B, capacity: maxLength - 1)
        sampler = try TokenSampler(vocabularySize: config.vocabularySize, strategy: options.strategy, seed: options.seed)
        pending = []
        pending.reserveCapacity(B * promptIDs.count)
        for _ in 0..<B { pending.append(contentsOf: promptIDs.map { Int32($0) }) }
    }

    /// Runs one step: feeds the previous tokens (the prompt on the first call) and returns the new id of
    /// every row (the pad id for finished rows), or nil once decoding has stopped.
    public func next() -> [Int]? {
        if isDone { return nil }
        let B = batchSize, V = sampler.vocabularySize
        let T = pending.count / B
        let logits = pending.withUnsafeBufferPointer { decoder.append($0, T: T) }
        var step = [Int](repeating: 0, count: B)
        for b in 0..<B {
            if isFinished[b], let pad = options.effectivePadTokenID {
                step[b] = pad
            } else { // unfinished, or stopped by a stop string with no pad id to write: decodes on, as in transformers
                let row = UnsafeMutableBufferPointer(rebasing: logits[b * V ..< (b + 1) * V])
                if processor.isActive { processor.process(row, ids: sequences[b]) }
                step[b] = sampler.chooseToken(from: row)
            }
        }
        if pending.count != B { pending = Array(repeating: 0, count: B) }
        for b in 0..<B {
            sequences[b].append(step[b])
            pending[b] = Int32(step[b])
            if isFinished[b] { continue }
            let match = appendNewText(row: b, id: step[b])
            if options.eosTokenIDs.contains(step[b]) {
                isFinished[b] = true
                finishReasons[b] = .endOfSequence
            } else if let match {
                isFinished[b] = true
                finishReasons[b] = .stopString(match)
            }
        }
        if isFinished.allSatisfy({ $0 }) || sequences[0].count >= maxLength {
            isDone = true
            for b in 0..<B where finishReasons[b] == nil { finishReasons[b] = .length }
        }
        return step
    }

    /// Decodes to the end and returns every row's ids (prompt then new ids).
    public func run() -> [[Int]] {
        while next() != nil {}
        return sequences
    }
}
