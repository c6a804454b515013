import Foundation

/// PyTorch's forward pass of a model on a prompt, as `scripts/reference.py` writes it (`format`
/// `gpt2kit-reference`, `version` 1): transformers' `GPT2LMHeadModel` in float32 on the CPU.
public struct PyTorchReference: Codable, Sendable, Equatable {
    /// The file's format tag, `gpt2kit-reference`.
    public var format: String
    /// The format's version, 1.
    public var version: Int
    /// The model folder the script was given.
    public var model: String
    /// The tokenizer folder the script was given.
    public var tokenizer: String
    /// The prompt the ids were made from.
    public var prompt: String
    /// The tokenizer's ids of `prompt`.
    public var inputIds: [TokenID]
    /// `GPT2LMHeadModel(input_ids, labels=input_ids).loss`: mean cross-entropy of each next token.
    public var loss: Double
    /// The logits of every position, (T, V).
    public var logits: [[Float]]
    /// The version of torch that computed it.
    public var torch: String
    /// The version of transformers that computed it.
    public var transformers: String

    /// The largest reference file read (a 1024-token prompt on the 50257-token vocabulary is about 600 MB of JSON).
    public static let maximumBytes = 1 << 31

    /// Reads and checks a reference file.
    public static func read(path: String) throws -> PyTorchReference {
        func invalid(_ problem: String) -> VerificationError { .invalidReference(path: path, problem: problem) }
        let bytes: [UInt8]
        do { bytes = try InputFile.readBytes(path, maximumBytes: maximumBytes) } catch {
            throw invalid("cannot read: \(error.reason)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let reference: PyTorchReference
        do { reference = try decoder.decode(PyTorchReference.self, from: Data(bytes)) } catch {
            throw invalid("not a reference file from scripts/reference.py: " + Self.reason(error))
        }
        guard reference.format == "gpt2kit-reference", reference.version == 1 else {
            throw invalid("format '\(reference.format)' version \(reference.version); expected 'gpt2kit-reference' version 1")
        }
        guard reference.inputIds.count >= 2, reference.logits.count == reference.inputIds.count else {
            throw invalid("\(reference.inputIds.count) input ids and \(reference.logits.count) rows of logits; expected the same number, at least 2")
        }
        guard reference.inputIds.allSatisfy({ $0 >= 0 }) else { throw invalid("input_ids holds a negative id") }
        let width = reference.logits[0].count
        guard width > 0, reference.logits.allSatisfy({ $0.count == width }) else {
            throw invalid("the rows of logits are not all of one positive length")
        }
        return reference
    }

    /// A decoding error in one line: the key path and what was wrong.
    static func reason(_ error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error as? DecodingError {
        case let .keyNotFound(key, _)?: return "missing key '\(key.stringValue)'"
        case let .typeMismatch(type, context)?: return "'\(path(context))' is not \(type)"
        case let .valueNotFound(type, context)?: return "'\(path(context))' is null, expected \(type)"
        case let .dataCorrupted(context)?: return context.codingPath.isEmpty ? "invalid JSON" : "'\(path(context))': \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}

/// What `verify A --reference ref.json` found: token ids, loss and logits of the model against PyTorch's.
public struct ReferenceComparison: Codable, Sendable, Equatable {
    /// The model checked.
    public var model: CheckpointSummary
    /// The reference file.
    public var reference: String
    /// The version of torch that made the reference.
    public var torch: String
    /// The version of transformers that made the reference.
    public var transformers: String
    /// The model's coarsest stored type: it picks the tolerance (`VerificationTolerance.forward`).
    public var precision: StoredPrecision
    /// The prompt's ids from the model's tokenizer.
    public var ids: [TokenID]
    /// The prompt's ids in the reference (PyTorch's tokenizer); the forward pass runs on these.
    public var referenceIds: [TokenID]
    /// Whether the two tokenizers gave the same ids.
    public var idsEqual: Bool
    /// The model (`a`) against PyTorch (`b`) on the reference's ids; nil when the vocabularies differ.
    public var forward: ForwardComparison?
    /// One line per problem (ids, logits, loss, greedy tokens); empty when the model agrees with PyTorch.
    public var failures: [String]
    /// Whether `failures` is empty.
    public var passed: Bool
    /// `verified: A agrees with PyTorch … within f32 tolerances`, or `FAILED: ` and the first failure.
    public var verdict: String

    /// Every key is always written (`forward` null when absent), so the JSON's keys are stable.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model); try c.encode(reference, forKey: .reference)
        try c.encode(torch, forKey: .torch); try c.encode(transformers, forKey: .transformers); try c.encode(precision, forKey: .precision)
        try c.encode(ids, forKey: .ids); try c.encode(referenceIds, forKey: .referenceIds); try c.encode(idsEqual, forKey: .idsEqual)
        try c.encode(forward, forKey: .forward); try c.encode(failures, forKey: .failures)
        try c.encode(passed, forKey: .passed); try c.encode(verdict, forKey: .verdict)
    }

    /// The report as one JSON object (the encoding of `ModelComparison.jsonData()`).
    public func jsonData() throws -> Data { try VerificationJSON.encode(self) }
}

extension ModelVerification {
    /// Checks `model`'s forward pass against PyTorch's in the file `reference` (`scripts/reference.py`): the
    /// prompt's token ids (the model's tokenizer: `tokenizer`, else its folder's or GGUF's), the loss and every
    /// logit, within the forward tolerance of the model's coarsest stored type (`VerificationTolerance`).
    /// `prompt`, when given, must be the reference's.
    public static func check(_ model: Checkpoint, reference path: String, prompt: String? = nil,
                             tokenizer: String? = nil) throws -> ReferenceComparison {
        let reference = try PyTorchReference.read(path: path)
        if let prompt, prompt != reference.prompt {
            throw VerificationError.promptDiffersFromReference(prompt: prompt, reference: reference.prompt)
        }
        let side = try LoadedCheckpoint(model, side: "A")
        guard let gpt2 = side.model else { throw side.loadFailure ?? ModelLocationError.noWeights(folder: model.path) }
        let tokenizer = try Self.tokenizer(override: tokenizer, sides: [side])
        let ids = tokenizer.encode(reference.prompt)
        let precision = side.precisions.max() ?? .f32
        var failures: [String] = []
        if ids != reference.inputIds { failures.append("token ids \(ids) differ from PyTorch's \(reference.inputIds)") }
        var forward: ForwardComparison?
        let width = reference.logits[0].count
        if width != gpt2.config.vocabularySize {
            failures.append("the reference has \(width) logits per position; the model's vocabulary has \(gpt2.config.vocabularySize) tokens")
        } else {
            let ours = try ForwardRun(model: gpt2, ids: reference.inputIds, path: side.location.weightsPath)
            let theirs = ForwardRun(ids: reference.inputIds, loss: reference.loss, logits: reference.logits.flatMap { $0 }, vocabularySize: width)
            let result = ForwardRun.compare(ours, theirs, prompt: reference.prompt, tolerance: VerificationTolerance.forward(precision),
                                            names: ("GPT2Kit", "PyTorch"))
            forward = result
            failures += result.failures
        }
        let success = "verified: A agrees with PyTorch \(reference.torch) / transformers \(reference.transformers) within \(precision.rawValue) tolerances"
        return ReferenceComparison(model: side.summary, reference: path, torch: reference.torch, transformers: reference.transformers,
                                   precision: precision, ids: ids, referenceIds: reference.inputIds, idsEqual: ids == reference.inputIds,
                                   forward: forward, failures: failures, passed: failures.isEmpty,
                                   verdict: VerificationJSON.verdict(failures: failures, success: success))
    }
}
