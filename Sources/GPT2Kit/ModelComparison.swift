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
        public var a: Double
        public var b: Double
        /// The difference allowed there.
        public var allowed: Double
    }

    public var name: String
    public var status: Status
    /// Element types as stored (`F32`, `F16`, `BF16`, `Q8_0`, …); nil on the side without the tensor.
    public var storedTypeA: String?
    public var storedTypeB: String?
    public var shapeA: [Int]?
    public var shapeB: [Int]?
    /// max |a − b| over the elements (infinite when only one side is NaN or infinite there).
    public var maxAbsDiff: Double?
    /// max |a − b| / max(|a|, |b|) over the elements (0 where both are 0).
    public var maxRelDiff: Double?
    /// Whether the float32 values are bit-identical.
    public var bitIdentical: Bool?
    /// The tolerance of the two stored types (`VerificationTolerance.weights`).
    public var tolerance: WeightTolerance?
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
        public var position: Int
        public var token: Int
        public var a: Double
        public var b: Double
        public var allowed: Double
    }

    public var prompt: String
    /// The prompt's token ids (both sides).
    public var ids: [Int]
    /// The language-model loss of the prompt (mean cross-entropy of each next token) on each side.
    public var lossA: Double
    public var lossB: Double
    /// |lossA − lossB| and what the tolerance allows.
    public var lossDiff: Double
    public var lossAllowed: Double
    /// max |a − b| over every logit of every position, and that relative to max(|a|, |b|).
    public var maxAbsLogitDiff: Double
    public var maxRelLogitDiff: Double
    public var worstLogit: Logit
    /// The greedy next token (argmax) at every position on each side.
    public var greedyA: [Int]
    public var greedyB: [Int]
    /// Whether the greedy tokens agree at every position.
    public var greedyEqual: Bool
    public var tolerance: ForwardTolerance
    /// What exceeds the tolerance (empty: the passes agree).
    public var failures: [String]
}

/// A config field that differs between two checkpoints (in `config.json` naming).
public struct ConfigDifference: Codable, Sendable, Equatable {
    public var key: String
    public var a: String
    public var b: String
}

/// What `verify A B` found: tensor by tensor, config, then one forward pass; `passed` when everything is within
/// the tolerances of the stored types (`VerificationTolerance`).
public struct ModelComparison: Codable, Sendable, Equatable {
    public var a: CheckpointSummary
    public var b: CheckpointSummary
    /// The coarsest stored type of either checkpoint: it picks the forward tolerance.
    public var precision: StoredPrecision
    public var configDifferences: [ConfigDifference]
    /// Every parameter of either side in canonical order (A's, then B's own), then extra tensors.
    public var tensors: [TensorComparison]
    /// The forward pass on the prompt, nil when a side did not load (see `forwardSkipped`).
    public var forward: ForwardComparison?
    public var forwardSkipped: String?
    /// One line per problem, most basic first; empty when the checkpoints agree.
    public var failures: [String]
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
