import Foundation

/// One checkpoint as `verify` read it.
public struct CheckpointSummary: Codable, Sendable, Equatable {
    /// The path given.
    public var path: String
    /// The weights file read.
    public var weights: String
    /// Its format (`safetensors`, `pytorch`, `h5`, `gguf`, `llmc`, sharded indexes).
    public var format: String
    /// The PEFT adapter applied unmerged in the forward pass, if any (the tensors compared are the base's).
    public var adapter: String?
    /// How many parameter tensors are stored in each element type (`F32`, `F16`, `BF16`, `Q8_0`, …).
    public var storedTypes: [String: Int]
    /// Why the weights could not be loaded as a model (no forward pass then), if they could not.
    public var loadError: String?

    /// Every key is always written (null when absent), so the JSON's keys are stable.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path); try c.encode(weights, forKey: .weights); try c.encode(format, forKey: .format)
        try c.encode(adapter, forKey: .adapter); try c.encode(storedTypes, forKey: .storedTypes); try c.encode(loadError, forKey: .loadError)
    }
}

/// One parameter tensor of two checkpoints, under its canonical GPT-2 name (`transformer.h.1.attn.c_attn.weight`).
public struct TensorComparison: Codable, Sendable, Equatable {
    /// What the comparison found.
    public enum Status: String, Codable, Sendable {
        /// The float32 values are bit for bit the same.
        case identical
        /// Every element is within the tolerance of the two stored types.
        case withinTolerance = "within_tolerance"
        /// Some element differs by more than the tolerance (see `worst`).
        case differs
        /// The shapes differ (after mapping TensorFlow's (1, n) biases to (n)).
        case shapeMismatch = "shape_mismatch"
        /// A GPT-2 parameter that only B holds.
        case missingInA = "missing_in_a"
        /// A GPT-2 parameter that only A holds.
        case missingInB = "missing_in_b"
        /// A tensor of A that is no GPT-2 parameter of its config (named as stored).
        case extraInA = "extra_in_a"
        /// A tensor of B that is no GPT-2 parameter of its config (named as stored).
        case extraInB = "extra_in_b"
        /// One side stores integers, not floating-point values.
        case notFloat = "not_float"

        /// Whether the tensor passes.
        public var passes: Bool { self == .identical || self == .withinTolerance }
    }

    /// The element that exceeds its tolerance by the most (or, when none does, comes closest).
    public struct Element: Codable, Sendable, Equatable {
        /// Row-major index into the tensor.
        public var index: Int
        /// A's value there, decoded to float32 and widened.
        public var a: Double
        /// B's value there.
        public var b: Double
        /// The difference allowed there.
        public var allowed: Double
    }

    /// The canonical Hugging Face name (`transformer.h.1.attn.c_attn.weight`), or an extra tensor's name as stored.
    public var name: String
    /// What the comparison found.
    public var status: Status
    /// A's element type as stored (`F32`, `F16`, `BF16`, `Q8_0`, …); nil when A lacks the tensor.
    public var storedTypeA: String?
    /// B's element type as stored; nil when B lacks the tensor.
    public var storedTypeB: String?
    /// A's shape (TensorFlow's (1, n) biases as (n)); nil when A lacks the tensor.
    public var shapeA: [Int]?
    /// B's shape; nil when B lacks the tensor.
    public var shapeB: [Int]?
    /// max |a − b| over the elements (infinite when only one side is NaN or infinite there).
    public var maxAbsDiff: Double?
    /// max |a − b| / max(|a|, |b|) over the elements (0 where both are 0).
    public var maxRelDiff: Double?
    /// Whether the float32 values are bit-identical.
    public var bitIdentical: Bool?
    /// The tolerance of the two stored types (`VerificationTolerance.weights`).
    public var tolerance: WeightTolerance?
    /// The element that exceeds its tolerance by the most, or comes closest (nil when the values are bit-identical or
    /// were not compared).
    public var worst: Element?

    /// Every key is always written (null when absent), so the JSON's keys are stable.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(status, forKey: .status)
        try c.encode(storedTypeA, forKey: .storedTypeA); try c.encode(storedTypeB, forKey: .storedTypeB)
        try c.encode(shapeA, forKey: .shapeA); try c.encode(shapeB, forKey: .shapeB)
        try c.encode(maxAbsDiff, forKey: .maxAbsDiff); try c.encode(maxRelDiff, forKey: .maxRelDiff)
        try c.encode(bitIdentical, forKey: .bitIdentical); try c.encode(tolerance, forKey: .tolerance); try c.encode(worst, forKey: .worst)
    }
}

/// Two forward passes on the same token ids: model A against model B, or a model against PyTorch's numbers.
public struct ForwardComparison: Codable, Sendable, Equatable {
    /// The logit that exceeds its tolerance by the most (or comes closest).
    public struct Logit: Codable, Sendable, Equatable {
        /// The position in the prompt (0-based row of the (T, V) logits).
        public var position: Int
        /// The token id (column of the logits).
        public var token: Int
        /// The logit of A (of GPT2Kit, against a reference).
        public var a: Double
        /// The logit of B (of PyTorch, against a reference).
        public var b: Double
        /// The difference allowed there (`ForwardTolerance.allowedLogitDifference`).
        public var allowed: Double
    }

    /// The prompt run through both models.
    public var prompt: String
    /// The prompt's token ids (both sides).
    public var ids: [TokenID]
    /// A's language-model loss of the prompt (mean cross-entropy of each next token, `GPT2LMHeadModel`'s loss with
    /// labels = ids).
    public var lossA: Double
    /// B's language-model loss of the prompt.
    public var lossB: Double
    /// |lossA − lossB|.
    public var lossDiff: Double
    /// The loss difference the tolerance allows (`ForwardTolerance.allowedLossDifference`).
    public var lossAllowed: Double
    /// max |a − b| over every logit of every position.
    public var maxAbsLogitDiff: Double
    /// max |a − b| / max(|a|, |b|) over every logit (0 where both are 0).
    public var maxRelLogitDiff: Double
    /// The logit that exceeds its tolerance by the most (or comes closest).
    public var worstLogit: Logit
    /// A's greedy next token (first argmax, `torch.argmax`) at every position.
    public var greedyA: [TokenID]
    /// B's greedy next token at every position.
    public var greedyB: [TokenID]
    /// Whether the greedy tokens agree at every position.
    public var greedyEqual: Bool
    /// The tolerance applied (`VerificationTolerance.forward` of the coarsest stored type).
    public var tolerance: ForwardTolerance
    /// What exceeds the tolerance (empty: the passes agree).
    public var failures: [String]
}

/// A config field that differs between two checkpoints (in `config.json` naming).
public struct ConfigDifference: Codable, Sendable, Equatable {
    /// The field's `config.json` name (`n_embd`, `layer_norm_epsilon`, …).
    public var key: String
    /// A's value, as text (ε in float32).
    public var a: String
    /// B's value, as text.
    public var b: String
}

/// What `verify A B` found: tensor by tensor, config, then one forward pass; `passed` when everything is within
/// the tolerances of the stored types (`VerificationTolerance`).
public struct ModelComparison: Codable, Sendable, Equatable {
    /// What was read as A.
    public var a: CheckpointSummary
    /// What was read as B.
    public var b: CheckpointSummary
    /// The coarsest stored type of either checkpoint: it picks the forward tolerance.
    public var precision: StoredPrecision
    /// The config fields that change the forward pass and differ.
    public var configDifferences: [ConfigDifference]
    /// Every parameter of either side in canonical order (A's, then B's own), then extra tensors.
    public var tensors: [TensorComparison]
    /// The forward pass on the prompt, nil when a side did not load (see `forwardSkipped`).
    public var forward: ForwardComparison?
    /// Why there was no forward pass (a side did not load, or the vocabularies differ); nil when it ran.
    public var forwardSkipped: String?
    /// One line per problem, most basic first; empty when the checkpoints agree.
    public var failures: [String]
    /// Whether `failures` is empty.
    public var passed: Bool
    /// `verified: A and B agree within f32 tolerances`, or `FAILED: ` and the first failure.
    public var verdict: String

    /// Every key is always written (null when absent), so the JSON's keys are stable.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(a, forKey: .a); try c.encode(b, forKey: .b); try c.encode(precision, forKey: .precision)
        try c.encode(configDifferences, forKey: .configDifferences); try c.encode(tensors, forKey: .tensors)
        try c.encode(forward, forKey: .forward); try c.encode(forwardSkipped, forKey: .forwardSkipped)
        try c.encode(failures, forKey: .failures); try c.encode(passed, forKey: .passed); try c.encode(verdict, forKey: .verdict)
    }

    /// The report as one JSON object with sorted snake_case keys; infinities and NaN as the strings `inf`, `-inf`,
    /// `nan`.
    public func jsonData() throws -> Data { try VerificationJSON.encode(self) }
}

/// The one JSON encoding of verification reports.
enum VerificationJSON {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(value)
    }

    /// `FAILED: <first> (and N more)`, or the success line.
    static func verdict(failures: [String], success: String) -> String {
        guard let first = failures.first else { return success }
        return "FAILED: " + first + (failures.count > 1 ? " (and \(failures.count - 1) more)" : "")
    }
}
