import Tensors
import GPT2
import Tokenization

/// Decodes one or more prompts as one batch, `numReturnSequences` rows per prompt, a token per row at a time,
/// with a key/value cache, following transformers' `generate` (`_sample`): each step picks a token per
/// unfinished row (logits processors, then argmax or warped multinomial draw), writes the pad id into rows
/// of a prompt that already finished (an EOS id, or a stop string in their new text), and stops a prompt's
/// rows when all of them have finished or they reach the max length.
///
/// Prompts of different lengths are left-padded with an attention mask and per-row position ids, as
/// transformers does for GPT-2, so every row gets exactly what decoding its prompt alone gives: the same
/// greedy ids, and with sampling the same draws (each prompt has its own sampler, seeded with `seed`, drawing
/// for its rows in order). A row that finishes leaves the batch, so it costs no more work.
///
/// ```swift
/// let generator = try Generator(model: model, prompts: [idsA, idsB], options: options)
/// while let step = generator.next() { … }   // step[row]: the new id of each row
/// let sequences = generator.sequences       // per row: its prompt's ids, then new ids
/// ```
public final class Generator: IteratorProtocol, Sequence {
    /// The prompts, in input order (each its end only, when `.left` truncation shortened it); rows
    /// `i·n ..< (i+1)·n` continue prompt `i` (n = `numReturnSequences`).
    public let prompts: [[TokenID]]
    /// The first prompt (the only one for single-prompt generators).
    public var promptIDs: [TokenID] { prompts[0] }
    /// The validated options.
    public let options: GenerationOptions
    /// Total length at which each prompt's rows stop (its prompt included).
    public let maxLengths: [Int]
    /// The largest of `maxLengths`.
    public var maxLength: Int { maxLengths.max() ?? 0 }
    /// Rows decoded together: prompts × `numReturnSequences`.
    public var batchSize: Int { prompts.count * options.numReturnSequences }
    /// Prompt ids followed by the ids generated so far, per row.
    public private(set) var sequences: [[TokenID]]
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
    /// Repetition penalty and no-repeat n-gram ban, applied before the samplers.
    public let processor: LogitsProcessor
    /// The decoder behind the steps (its rows are the rows still decoding).
    public let decoder: KVCacheDecoder
    /// Chooses each row's token: one sampler per prompt.
    public let samplers: [TokenSampler]
    /// The first prompt's sampler.
    public var sampler: TokenSampler { samplers[0] }

    /// Rows still decoding, in the decoder's row order.
    private var active: [Int]
    private var promptDone: [Bool]
    /// Per row: the position id of the next token fed.
    private var nextPosition: [Int32]
    private let isPadded: Bool
    private var pending: [Int32]  // (active rows, T) tokens not yet fed to the decoder
    private var pendingMask: [Int32]?
    private var isDone = false

    /// Prepares decoding of one prompt. Throws on an empty prompt, ids outside the vocabulary, lengths that
    /// pass the model's positions, options out of range, or stop strings without a `tokenizer`.
    public convenience init(model: GPT2Model, promptIDs: [TokenID], options: GenerationOptions, tokenizer: GPT2Tokenizer? = nil) throws(GenerationError) {
        try self.init(model: model, prompts: [promptIDs], options: options, tokenizer: tokenizer)
    }

    /// Prepares decoding of `prompts` (at least one) as one batch. Each prompt is checked as if it were
    /// decoded alone: the errors name its length. With `.left` truncation, a prompt too long for the new
    /// tokens keeps its end. `tokenizer` spells the new tokens for stop strings and text.
    public init(model: GPT2Model, prompts: [[TokenID]], options: GenerationOptions, tokenizer: GPT2Tokenizer? = nil) throws(GenerationError) {
        let options = try options.validated()
        let config = model.config
        guard !prompts.isEmpty else { throw .emptyPrompt }
        if !options.stopStrings.isEmpty && tokenizer == nil { throw .stopStringsNeedTokenizer }
        var truncated: [[Int]] = []
        for prompt in prompts { truncated.append(try options.truncatedPrompt(prompt, contextLength: config.maxPositions)) }
        let prompts = truncated
        let n = options.numReturnSequences
        guard prompts.count <= GenerationOptions.maximumNumReturnSequences / n else {
            throw .invalidOption(name: "prompts", value: "\(prompts.count) × \(n) rows",
                                 expected: "at most \(GenerationOptions.maximumNumReturnSequences) rows in one batch")
        }
        var maxLengths: [Int] = []
        for prompt in prompts {
            maxLengths.append(try options.resolvedMaxLength(promptLength: prompt.count, contextLength: config.maxPositions))
            for id in prompt where id < 0 || id >= config.vocabularySize {
                throw .tokenOutOfRange(id: id, vocabularySize: config.vocabularySize)
            }
        }
        // The pad id is fed back for finished rows, so it must be a real id whenever some EOS id can be
        // produced; an EOS id outside the vocabulary (a config default on a small vocabulary) never is.
        let canFinish = options.eosTokenIDs.contains { $0 >= 0 && $0 < config.vocabularySize }
        if canFinish, let pad = options.effectivePadTokenID, pad < 0 || pad >= config.vocabularySize {
            throw .invalidOption(name: "pad token id", value: "\(pad)", expected: "an id in 0..<\(config.vocabularySize)")
        }
        let longest = prompts.map(\.count).max() ?? 0
        let B = prompts.count * n
        self.prompts = prompts
        self.options = options
        self.maxLengths = maxLengths
        isPadded = prompts.contains { $0.count != longest }
        sequences = []
        nextPosition = []
        for (i, prompt) in prompts.enumerated() {
            for _ in 0..<n {
                var row = prompt
                row.reserveCapacity(maxLengths[i])
                sequences.append(row)
                nextPosition.append(Int32(prompt.count))
            }
        }
        isFinished = Array(repeating: false, count: B)
        finishReasons = Array(repeating: nil, count: B)
        self.tokenizer = tokenizer
        newTexts = tokenizer.map { Array(repeating: IncrementalDetokenizer(tokenizer: $0), count: B) } ?? []
        stopStrings = StopStrings(options.stopStrings)
        processor = try LogitsProcessor(vocabularySize: config.vocabularySize, repetitionPenalty: options.repetitionPenalty,
                                        noRepeatNGramSize: options.noRepeatNGramSize)
        promptDone = Array(repeating: false, count: prompts.count)
        active = Array(0..<B)
        // The last token of a row is chosen from the logits of its position maxLength - 2 and never fed back:
        // a row feeds `longest` padded prompt slots, then (new tokens − 1) more.
        let slots = longest + (zip(prompts, maxLengths).map { $1 - $0.count }.max() ?? 1) - 1
        decoder = try KVCacheDecoder(model: model, batchSize: B, capacity: slots, leftPadded: isPadded, weights: options.weights)
        var samplers: [TokenSampler] = []
        for _ in prompts { samplers.append(try TokenSampler(vocabularySize: config.vocabularySize, strategy: options.strategy, seed: options.seed)) }
        self.samplers = samplers
        // Left-padded prompt matrix (B, longest) and its mask.
        // Padded slots are masked out, so any id of the vocabulary does; the pad id itself may lie outside it
        // (an EOS default on a small vocabulary, which the check above lets through) and must not reach wte.
        let pad = Int32(options.effectivePadTokenID.flatMap { $0 >= 0 && $0 < config.vocabularySize ? $0 : nil } ?? 0)
        pending = []
        pending.reserveCapacity(B * longest)
        var mask: [Int32] = []
        for prompt in prompts {
            for _ in 0..<n {
                pending.append(contentsOf: repeatElement(pad, count: longest - prompt.count))
                pending.append(contentsOf: prompt.map { Int32($0) })
                mask.append(contentsOf: repeatElement(0, count: longest - prompt.count))
                mask.append(contentsOf: repeatElement(1, count: prompt.count))
            }
        }
        pendingMask = isPadded ? mask : nil
    }

    /// Runs one step: feeds the previous tokens (the prompts on the first call) and returns the new id of
    /// every row (the pad id for rows that finished), or nil once decoding has stopped.
    public func next() -> [TokenID]? {
        if isDone { return nil }
        let n = options.numReturnSequences, V = samplers[0].vocabularySize, pad = options.effectivePadTokenID ?? 0
        let rows = active.count, T = pending.count / rows
        var positions: [Int32]?
        if isPadded {
            var p = [Int32](repeating: 0, count: rows * T)
            for (i, r) in active.enumerated() {
                if let mask = pendingMask {
                    // transformers: position ids = cumsum(mask) − 1, padding at 1
                    var real: Int32 = 0
                    for t in 0..<T {
                        let m = mask[i * T + t]
                        p[i * T + t] = m == 0 ? 1 : real
                        real += m
                    }
                } else {
                    for t in 0..<T { p[i * T + t] = nextPosition[r] - Int32(T) + Int32(t) }
                }
            }
            positions = p
        }
        let logits = pending.withUnsafeBufferPointer { tokens in
            pendingMask.withUnsafeBufferPointerIfPresent { mask in
                positions.withUnsafeBufferPointerIfPresent { pos in
                    decoder.append(tokens, T: T, attentionMask: mask, positionIDs: pos)
                }
            }
        }
        pendingMask = nil
        var step = [Int](repeating: pad, count: batchSize)
        for (i, r) in active.enumerated() {
            let row = UnsafeMutableBufferPointer(rebasing: logits[i * V ..< (i + 1) * V])
            if processor.isActive { processor.process(row, ids: sequences[r]) }
            step[r] = samplers[r / n].chooseToken(from: row)
        }
        for r in 0..<batchSize where !promptDone[r / n] {
            sequences[r].append(step[r])
            if isFinished[r] { continue }
            let match = appendNewText(row: r, id: step[r])
            if options.eosTokenIDs.contains(step[r]) {
                isFinished[r] = true
                finishReasons[r] = .endOfSequence
            } else if let match {
                isFinished[r] = true
                finishReasons[r] = .stopString(match)
            }
        }
        for g in prompts.indices where !promptDone[g] {
            let rowsOfPrompt = g * n ..< (g + 1) * n
            if rowsOfPrompt.allSatisfy({ isFinished[$0] }) || sequences[g * n].count >= maxLengths[g] {
                promptDone[g] = true
                for r in rowsOfPrompt where finishReasons[r] == nil { finishReasons[r] = .length }
            }
        }
        let stillActive = active.filter { !isFinished[$0] && !promptDone[$0 / n] }
        if stillActive.isEmpty {
            isDone = true
            return step
        }
        if stillActive.count != active.count {
            let keep = active.indices.filter { !isFinished[active[$0]] && !promptDone[active[$0] / n] }
            decoder.keepRows(keep)
            active = stillActive
        }
        pending = active.map { Int32(step[$0]) }
        for r in active { nextPosition[r] += 1 }
        return step
    }

    /// Decodes to the end and returns every row's ids (prompt then new ids), in input order.
    public func run() -> [[TokenID]] {
        while next() != nil {}
        return sequences
    }
}

extension Optional where Wrapped == [Int32] {
    /// Calls `body` with a buffer over the array, or nil.
    func withUnsafeBufferPointerIfPresent<R>(_ body: (UnsafeBufferPointer<Int32>?) -> R) -> R {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0) }
        case .none: return body(nil)
        }
    }
}
