import Foundation

/// `gpt2kit verify`: whether two checkpoints (any format GPT2Kit reads, any naming) hold the same GPT-2 within what
/// their stored types allow, tensor by tensor and through one forward pass; or whether one model's forward pass
/// matches PyTorch's (`scripts/reference.py`). Tolerances: `VerificationTolerance`.
public enum ModelVerification {
    /// A checkpoint to verify: a model folder or weights file, its config (default: `config.json` beside it) and
    /// optionally a PEFT adapter applied unmerged in the forward pass.
    public struct Checkpoint: Sendable, Equatable {
        /// The model folder or weights file.
        public var path: String
        /// The `config.json` to use (nil: the one beside the weights; a GGUF or llm.c file carries its own).
        public var configPath: String?
        /// A PEFT adapter folder applied unmerged in the forward pass (nil: none).
        public var adapter: String?

        /// A checkpoint at `path`, with an optional config and adapter.
        public init(path: String, configPath: String? = nil, adapter: String? = nil) {
            self.path = path; self.configPath = configPath; self.adapter = adapter
        }
    }

    /// The prompt of the forward pass when none is given.
    public static let defaultPrompt = "Harry Potter is a series of"

    /// Compares `a` and `b`: every parameter under its canonical name (missing, extra, shape, stored types, max
    /// abs/rel difference, bit-identical), the config fields that change the forward pass, then `prompt` through
    /// both models (logits, loss, greedy tokens). The tokenizer is the folder `tokenizer` when given, else A's
    /// (its folder's files or a GGUF's embedded vocabulary), else B's. Throws for unreadable input; differences
    /// are reported, not thrown.
    public static func compare(_ a: Checkpoint, _ b: Checkpoint, prompt: String = defaultPrompt,
                               tokenizer: String? = nil) throws -> ModelComparison {
        let sideA = try LoadedCheckpoint(a, side: "A"), sideB = try LoadedCheckpoint(b, side: "B")
        let tokenizer = try Self.tokenizer(override: tokenizer, sides: [sideA, sideB])
        let tensors = compareTensors(sideA, sideB)
        let precision = (sideA.precisions + sideB.precisions).max() ?? .f32
        let configDifferences = Self.configDifferences(sideA.config, sideB.config)

        var failures = configDifferences.map { "config \($0.key): \($0.a) in A, \($0.b) in B" }
        failures += tensors.compactMap(Self.failure)
        var forward: ForwardComparison?
        var skipped: String?
        if let modelA = sideA.model, let modelB = sideB.model, modelA.config.vocabularySize != modelB.config.vocabularySize {
            skipped = "the vocabularies differ (\(modelA.config.vocabularySize) tokens in A, \(modelB.config.vocabularySize) in B)"
            failures.append("no forward pass: " + (skipped ?? ""))
        } else if let modelA = sideA.model, let modelB = sideB.model {
            let ids = try promptIDs(prompt, tokenizer: tokenizer)
            let runA = try ForwardRun(model: modelA, ids: ids, path: sideA.location.weightsPath)
            let runB = try ForwardRun(model: modelB, ids: ids, path: sideB.location.weightsPath)
            let result = ForwardRun.compare(runA, runB, prompt: prompt, tolerance: VerificationTolerance.forward(precision))
            forward = result
            failures += result.failures
        } else {
            let reasons = [("A", sideA.loadError), ("B", sideB.loadError)].compactMap { side, error in error.map { "\(side) does not load (\($0))" } }
            skipped = reasons.joined(separator: "; ")
            failures.append("no forward pass: " + (skipped ?? ""))
        }
        let success = "verified: A and B agree within \(precision.rawValue) tolerances"
        return ModelComparison(a: sideA.summary, b: sideB.summary, precision: precision, configDifferences: configDifferences,
                               tensors: tensors, forward: forward, forwardSkipped: skipped, failures: failures,
                               passed: failures.isEmpty, verdict: VerificationJSON.verdict(failures: failures, success: success))
    }

    /// The tokenizer: `override`, else the first side that has one.
    static func tokenizer(override: String?, sides: [LoadedCheckpoint]) throws -> GPT2Tokenizer {
        if let override { return try ModelIO.loadTokenizer(folder: override) }
        for side in sides where side.location.weightsKind == .gguf || side.location.hasTokenizer {
            return try ModelIO.loadTokenizer(for: side.location)
        }
        throw VerificationError.noTokenizer(folders: sides.map(\.location.folder))
    }

    /// The prompt's ids; the loss needs at least two.
    static func promptIDs(_ prompt: String, tokenizer: GPT2Tokenizer) throws -> [TokenID] {
        let ids = tokenizer.encode(prompt)
        guard ids.count >= 2 else { throw VerificationError.promptTooShort(prompt: prompt, tokens: ids.count) }
        return ids
    }

    /// The failure line of a tensor, nil when it passes.
    static func failure(_ t: TensorComparison) -> String? {
        switch t.status {
        case .identical, .withinTolerance: return nil
        case .differs:
            let w = t.worst
            let types = "\(t.storedTypeA ?? "?")/\(t.storedTypeB ?? "?")"
            return "\(t.name) max abs diff \(format(t.maxAbsDiff ?? .infinity)) > \(format(w?.allowed ?? 0)) allowed (\(types); element \(w?.index ?? 0): \(w?.a ?? 0) vs \(w?.b ?? 0))"
        case .shapeMismatch: return "\(t.name) shape \(t.shapeA ?? []) in A, \(t.shapeB ?? []) in B"
        case .missingInA: return "\(t.name) missing in A"
        case .missingInB: return "\(t.name) missing in B"
        case .extraInA: return "\(t.name) in A is no GPT-2 parameter"
        case .extraInB: return "\(t.name) in B is no GPT-2 parameter"
        case .notFloat: return "\(t.name) is stored as integers (\(t.storedTypeA ?? "?") in A, \(t.storedTypeB ?? "?") in B)"
        }
    }

    /// A number in 3 significant digits (`0.5`, `1.2e-06`).
    static func format(_ x: Double) -> String { String(format: "%.3g", x) }

    /// The config fields that change the forward pass and differ (`config.json` names). ε is compared in float32:
    /// GGUF stores it so.
    static func configDifferences(_ a: GPT2Config, _ b: GPT2Config) -> [ConfigDifference] {
        let fields: [(String, (GPT2Config) -> String)] = [
            ("vocab_size", { "\($0.vocabularySize)" }), ("n_positions", { "\($0.maxPositions)" }),
            ("n_embd", { "\($0.embeddingSize)" }), ("n_layer", { "\($0.layerCount)" }), ("n_head", { "\($0.headCount)" }),
            ("n_inner", { "\($0.feedForwardSize)" }), ("activation_function", { $0.activationFunction }),
            ("layer_norm_epsilon", { "\(Float($0.layerNormEpsilon))" }), ("scale_attn_weights", { "\($0.scaleAttentionWeights)" }),
            ("scale_attn_by_inverse_layer_idx", { "\($0.scaleAttentionByInverseLayerIndex)" }),
            ("reorder_and_upcast_attn", { "\($0.reorderAndUpcastAttention)" }),
        ]
        return fields.compactMap { key, value in value(a) == value(b) ? nil : ConfigDifference(key: key, a: value(a), b: value(b)) }
    }
}

/// Why `verify` could not run (differences between the models are reported, not thrown).
public enum VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A single weights file of model `side` ("A" or "B") without a config beside it.
    case noConfig(weights: String, side: String)
    /// Neither model's folder holds a tokenizer and none was named.
    case noTokenizer(folders: [String])
    /// The prompt gives fewer than two tokens, so there is no next-token loss.
    case promptTooShort(prompt: String, tokens: Int)
    /// The prompt's ids do not fit the model in `path` (vocabulary, `n_positions`).
    case promptDoesNotFit(path: String, problem: ModelInputError)
    /// The `--prompt` given differs from the one the reference was made with.
    case promptDiffersFromReference(prompt: String, reference: String)
    /// A reference file that is not what `scripts/reference.py` writes.
    case invalidReference(path: String, problem: String)

    /// The message `gpt2kit` prints, naming the file or option to fix.
    public var description: String {
        switch self {
        case let .noConfig(weights, side):
            return "\(weights): no config.json beside the weights; name one with --config-\(side.lowercased())"
        case let .noTokenizer(folders):
            return "--tokenizer: no tokenizer files (vocab.json + merges.txt, or tokenizer.json) in "
                + folders.map { "'\($0)'" }.joined(separator: " or ") + "; name a folder with --tokenizer"
        case let .promptTooShort(prompt, tokens):
            return "--prompt: '\(prompt)' is \(tokens) token\(tokens == 1 ? "" : "s"); the loss needs at least 2"
        case let .promptDoesNotFit(path, problem): return "\(path): the prompt does not fit this model: \(problem)"
        case let .promptDiffersFromReference(prompt, reference):
            return "--prompt: '\(prompt)' differs from the reference's prompt '\(reference)' (leave --prompt out)"
        case let .invalidReference(path, problem): return "\(path): \(problem)"
        }
    }
}
