import Tensors

/// A `config.json` that cannot describe a GPT-2 model.
public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not a JSON object.
    case invalidJSON(path: String?, reason: String)
    /// A known key holds the wrong JSON type.
    case wrongType(key: String, expected: String, found: String, path: String?)
    /// A known key holds a value outside its domain.
    case invalidValue(key: String, value: String, reason: String, path: String?)
    /// The sizes describe more parameters than `GPT2Config.maximumParameterCount` (nil: the count overflows Int).
    case tooManyParameters(count: Int?, limit: Int, path: String?)

    /// The message `gpt2kit` prints, naming the key and the file.
    public var description: String {
        func at(_ p: String?) -> String { p.map { " in '\($0)'" } ?? "" }
        switch self {
        case let .invalidJSON(path, reason): return "config\(at(path)): \(reason)"
        case let .wrongType(key, expected, found, path): return "config key '\(key)'\(at(path)): expected \(expected), found \(found)"
        case let .invalidValue(key, value, reason, path): return "config key '\(key)'\(at(path)): \(value) \(reason)"
        case let .tooManyParameters(count, limit, path):
            let n = count.map { "\($0) parameters" } ?? "a parameter count that overflows a 64-bit integer"
            return "config\(at(path)): the sizes describe \(n), more than the supported \(limit)"
        }
    }
}

/// A state dict whose names or shapes do not match the GPT-2 parameter table.
public enum StateDictError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One tensor whose shape differs from the table's.
    public struct ShapeMismatch: Equatable, Sendable {
        /// The tensor's canonical Hugging Face name.
        public var name: String
        /// The shape the config gives it.
        public var expected: Shape
        /// The shape stored.
        public var found: Shape
        /// A mismatch of tensor `name`: `expected` by the table, `found` in the file.
        public init(name: String, expected: Shape, found: Shape) {
            self.name = name; self.expected = expected; self.found = found
        }
    }

    /// Every problem found while matching names: missing tensors, unexpected tensors, wrong shapes,
    /// and tensors whose dtype is not floating point.
    case mismatch(missing: [String], unexpected: [String], wrongShapes: [ShapeMismatch], nonFloat: [String])
    /// `lm_head.weight` is present but differs from the embedding it is tied to.
    case untiedOutputWeight(name: String, tiedTo: String)

    /// The message `gpt2kit` prints: the first few names of each kind of mismatch, then counts.
    public var description: String {
        switch self {
        case let .mismatch(missing, unexpected, wrongShapes, nonFloat):
            // Long lists (a config for another model size mismatches every tensor) show the first few and a count.
            let limit = 6
            func list(_ names: [String]) -> String {
                let shown = names.prefix(limit).map { "'\($0)'" }.joined(separator: ", ")
                return names.count > limit ? shown + " and \(names.count - limit) more" : shown
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("\(missing.count) missing: " + list(missing)) }
            if !unexpected.isEmpty { parts.append("\(unexpected.count) unexpected: " + list(unexpected)) }
            // Model-wide tensors (embeddings, final LayerNorm) first: they name the size difference most plainly.
            let ordered = wrongShapes.filter { !$0.name.contains("h.") } + wrongShapes.filter { $0.name.contains("h.") }
            for m in ordered.prefix(limit) { parts.append("tensor '\(m.name)': expected \(m.expected), found \(m.found)") }
            if wrongShapes.count > limit { parts.append("\(wrongShapes.count - limit) more tensors with other shapes") }
            if !nonFloat.isEmpty { parts.append("not floating point: " + list(nonFloat)) }
            return "state dict does not match the GPT-2 parameter table: " + parts.joined(separator: "; ")
        case let .untiedOutputWeight(name, tiedTo):
            return "tensor '\(name)' differs from '\(tiedTo)', but GPT-2 ties them"
        }
    }
}

/// Model inputs that do not fit the model (ids from outside, shapes).
public enum ModelInputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A buffer's element count is not batch × sequence length.
    case countMismatch(what: String, expected: Int, found: Int)
    /// The sequence is longer than `n_positions`.
    case sequenceTooLong(length: Int, maximum: Int)
    /// An empty batch or sequence.
    case emptyInput
    /// A token id outside the vocabulary.
    case tokenOutOfRange(index: Int, id: TokenID, vocabularySize: Int)
    /// A label that is neither -100 nor a token id.
    case labelOutOfRange(index: Int, label: TokenID, vocabularySize: Int)

    /// The message `gpt2kit` prints.
    public var description: String {
        switch self {
        case let .countMismatch(what, expected, found): return "\(what): expected \(expected) values, found \(found)"
        case let .sequenceTooLong(length, maximum): return "sequence length \(length) exceeds n_positions \(maximum)"
        case .emptyInput: return "batch size and sequence length must be positive"
        case let .tokenOutOfRange(index, id, v): return "token id \(id) at index \(index) outside vocabulary of \(v)"
        case let .labelOutOfRange(index, label, v): return "label \(label) at index \(index) is neither -100 nor inside vocabulary of \(v)"
        }
    }
}
