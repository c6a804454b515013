import Foundation
import Tensors

/// One training sequence in transformers' convention: `labels` are the input ids with -100 where no loss is
/// taken (context and padding); the model shifts them, so position t predicts `labels[t + 1]`.
public struct TrainingExample: Sendable, Equatable, Codable {
    /// The tokens the model reads.
    public var inputIDs: [TokenID]
    /// The input ids with `ignoreIndex` where no loss is taken.
    public var labels: [TokenID]

    /// An example from ids and labels of the same length.
    public init(inputIDs: [TokenID], labels: [TokenID]) {
        precondition(inputIDs.count == labels.count, "\(inputIDs.count) ids, \(labels.count) labels")
        self.inputIDs = inputIDs
        self.labels = labels
    }

    /// The notebook's example: the context's labels masked to -100, the label's ids learned.
    public init(contextIDs: [TokenID], labelIDs: [TokenID]) {
        inputIDs = contextIDs + labelIDs
        labels = [TokenID](repeating: ignoreIndex, count: contextIDs.count) + labelIDs
    }

    /// Plain language modelling: every token is a label.
    public init(textIDs: [TokenID]) {
        inputIDs = textIDs
        labels = textIDs
    }

    /// Number of positions whose shifted label counts toward the loss.
    public var labelTokenCount: Int { labels.dropFirst().filter { $0 != ignoreIndex }.count }
}

/// One record of a JSONL training file.
public enum TrainingRecord: Sendable, Equatable {
    /// `{"context", "label"}` or `{"prompt", "completion"}`: loss on the second part only.
    case pair(context: String, label: String)
    /// `{"text"}`: loss on every token.
    case text(String)
}

/// Which end of an over-long sequence to cut.
public enum TruncationSide: String, Sendable, Codable, CaseIterable {
    /// Cut the start, keep the last tokens (the label stays whole).
    case left
    /// Cut the end, keep the first tokens.
    case right
}

/// Why training data was refused.
public enum TrainingDataError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The JSONL file could not be opened or read (the system's reason).
    case cannotRead(path: String, reason: String)
    /// Line `line` (1-based) is not a JSON object with `context`+`label`, `prompt`+`completion` or `text` strings.
    case invalidLine(path: String, line: Int, reason: String)
    /// The file holds no records.
    case empty(path: String)
    /// Record `line` has `tokens` tokens, more than the model's `n_positions` (`limit`), and no truncation was asked
    /// for.
    case tooLong(path: String, line: Int, tokens: Int, limit: Int)
    /// Record `line` has no label token left to learn from (an empty label, or one cut away by truncation).
    case noLabelTokens(path: String, line: Int)
    /// `--block-size` outside 2...`maximum` (the model's `n_positions`).
    case invalidBlockSize(Int, maximum: Int?)
    /// A corpus with fewer tokens than one block.
    case corpusTooSmall(path: String, tokens: Int, blockSize: Int)
    /// A token id in a shard that the model's vocabulary does not have (`position` counts tokens in the file).
    case tokenOutOfRange(path: String, position: Int, id: Int, vocabularySize: Int)

    /// The message `gpt2kit` prints, as `path:line: problem` where there is a line.
    public var description: String {
        switch self {
        case let .cannotRead(p, r): return "\(p): cannot read: \(r)"
        case let .invalidLine(p, l, r): return "\(p):\(l): \(r)"
        case let .empty(p): return "\(p): no training records"
        case let .tooLong(p, l, n, m):
            return "\(p):\(l): sequence of \(n) tokens is longer than n_positions \(m); pass --truncate left|right to cut it"
        case let .noLabelTokens(p, l): return "\(p):\(l): no label tokens left to learn from"
        case let .invalidBlockSize(b, m):
            return "--block-size: \(b) is not " + (m.map { "an integer in 2...\($0) (the model's n_positions)" } ?? "an integer >= 2")
        case let .corpusTooSmall(p, n, b):
            return "\(p): \(n) tokens, fewer than one block of \(b) (give a larger corpus or a smaller --block-size)"
        case let .tokenOutOfRange(p, i, id, v):
            return "\(p): token \(i) is id \(id), outside the model's vocabulary of \(v) (a shard of another tokenizer, or corrupt)"
        }
    }
}

extension TrainingRecord {
    /// Reads a JSONL file of `{"context","label"}`, `{"prompt","completion"}` or `{"text"}` objects (blank lines skipped).
    public static func readJSONL(path: String) throws -> [TrainingRecord] {
        let data: Data
        do { data = Data(try InputFile.readBytes(path)) } catch {
            throw TrainingDataError.cannotRead(path: path, reason: error.reason)
        }
        var records: [TrainingRecord] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(line)) } catch {
                throw TrainingDataError.invalidLine(path: path, line: lineNumber, reason: "not valid JSON")
            }
            guard let dict = object as? [String: Any] else {
                throw TrainingDataError.invalidLine(path: path, line: lineNumber, reason: "not a JSON object")
            }
            func string(_ key: String) throws -> String? {
                guard let v = dict[key] else { return nil }
                guard let s = v as? String else {
                    throw TrainingDataError.invalidLine(path: path, line: lineNumber, reason: "'\(key)' is not a string")
                }
                return s
            }
            if let c = try string("context") {
                guard let l = try string("label") else {
                    throw TrainingDataError.invalidLine(path: path, line: lineNumber, reason: "'context' without 'label'")
                }
                records.append(.pair(context: c, label: l))
            } else if let p = try string("prompt") {
                guard let c = try string("completion") else {
                    throw TrainingDataError.invalidLine(path: path, line: lineNumber, reason: "'prompt' without 'completion'")
                }
                records.append(.pair(context: p, label: c))
            } else if let t = try string("text") {
                records.append(.text(t))
            } else {
                throw TrainingDataError.invalidLine(path: path, line: lineNumber,
                                                    reason: "expected keys context+label, prompt+completion or text")
            }
        }
        guard !records.isEmpty else { throw TrainingDataError.empty(path: path) }
        return records
    }

    /// Tokenizes the record into an example, enforcing `maximumLength` (cutting `truncation`'s side when given).
    public func example(encode: (String) -> [TokenID], maximumLength: Int, truncation: TruncationSide?,
                        source: String = "<input>", line: Int = 0) throws -> TrainingExample {
        var example: TrainingExample
        switch self {
        case let .pair(c, l): example = TrainingExample(contextIDs: encode(c), labelIDs: encode(l))
        case let .text(t): example = TrainingExample(textIDs: encode(t))
        }
        if example.inputIDs.count > maximumLength {
            guard let truncation else {
                throw TrainingDataError.tooLong(path: source, line: line, tokens: example.inputIDs.count, limit: maximumLength)
            }
            switch truncation {
            case .left:
                example = TrainingExample(inputIDs: Array(example.inputIDs.suffix(maximumLength)),
                                          labels: Array(example.labels.suffix(maximumLength)))
            case .right:
                example = TrainingExample(inputIDs: Array(example.inputIDs.prefix(maximumLength)),
                                          labels: Array(example.labels.prefix(maximumLength)))
            }
        }
        guard example.labelTokenCount > 0 else { throw TrainingDataError.noLabelTokens(path: source, line: line) }
        return example
    }
}

/// A right-padded batch in row-major (B, T) layout.
public struct TrainingBatch: Sendable, Equatable {
    /// Rows B: the examples in the batch.
    public var batchSize: Int
    /// Columns T: the longest example's token count.
    public var sequenceLength: Int
    /// Token ids, (B, T); padding holds the pad id.
    public var inputIDs: [TokenID]
    /// (B, T): 1 on tokens, 0 on padding (transformers' `attention_mask`).
    public var attentionMask: [Int32]
    /// (B, T): the ids to predict, -100 on context and padding (transformers' `labels`, unshifted).
    public var labels: [TokenID]

    /// Right-pads `examples` to the longest one with `padTokenID` (labels -100, mask 0 on padding).
    public init(examples: [TrainingExample], padTokenID: TokenID) {
        precondition(!examples.isEmpty, "empty batch")
        batchSize = examples.count
        sequenceLength = examples.map(\.inputIDs.count).max() ?? 0
        inputIDs = []; attentionMask = []; labels = []
        inputIDs.reserveCapacity(batchSize * sequenceLength)
        for e in examples {
            let pad = sequenceLength - e.inputIDs.count
            inputIDs += e.inputIDs + [TokenID](repeating: padTokenID, count: pad)
            attentionMask += [Int32](repeating: 1, count: e.inputIDs.count) + [Int32](repeating: 0, count: pad)
            labels += e.labels + [TokenID](repeating: ignoreIndex, count: pad)
        }
    }

    /// Whether every position is a real token (no mask needed).
    public var isUnpadded: Bool { !attentionMask.contains(0) }

    /// Number of positions whose shifted label counts toward the loss.
    public var labelTokenCount: Int {
        var n = 0
        for b in 0..<batchSize {
            for t in 1..<max(sequenceLength, 1) where labels[b * sequenceLength + t] != ignoreIndex { n += 1 }
        }
        return n
    }
}
