import Tensors
import Foundation

/// The fields of a `generation_config.json` that `generate` takes as defaults (transformers reads the
/// same file into `GenerationConfig`). Absent fields stay nil; unknown fields are ignored.
public struct GenerationConfigFile: Sendable, Equatable {
    /// `eos_token_id`: one id or a list; a sequence ends after generating any of them.
    public var eosTokenIDs: [TokenID]?
    /// `pad_token_id`: the id finished sequences are filled with.
    public var padTokenID: TokenID?
    /// `max_length`: total length, prompt included.
    public var maxLength: Int?
    /// `max_new_tokens`: new tokens after the prompt (takes precedence over `max_length`).
    public var maxNewTokens: Int?
    /// `do_sample`: sample (true) or decode greedily (false).
    public var doSample: Bool?
    /// `temperature`: divides the logits before sampling.
    public var temperature: Double?
    /// `top_k`: sample among the k most likely tokens (0: no limit).
    public var topK: Int?
    /// `top_p`: sample among the most likely tokens whose probability adds up to p.
    public var topP: Double?
    /// `repetition_penalty` (1: off).
    public var repetitionPenalty: Double?
    /// `no_repeat_ngram_size` (0: off).
    public var noRepeatNGramSize: Int?
    /// `stop_strings`: one string or a list.
    public var stopStrings: [String]?

    /// A file with no fields (every default is transformers').
    public init() {}

    /// Parses the file's JSON; `path` only labels errors. `eos_token_id` and `stop_strings` may be one
    /// value or a list.
    public init(jsonData: Data, path: String) throws(GenerationConfigError) {
        let object: [String: JSONValue]
        do { object = try JSONDecoder().decode([String: JSONValue].self, from: jsonData) } catch { throw .invalidJSON(path: path) }
        func int(_ key: String) throws(GenerationConfigError) -> Int? {
            switch object[key] {
            case nil, .null?: return nil
            case .int(let i)?: return i
            case .double(let d)? where d.rounded() == d && abs(d) < 9e15: return Int(d)
            default: throw .wrongType(path: path, key: key, expected: "an integer")
            }
        }
        func double(_ key: String) throws(GenerationConfigError) -> Double? {
            switch object[key] {
            case nil, .null?: return nil
            case .int(let i)?: return Double(i)
            case .double(let d)?: return d
            default: throw .wrongType(path: path, key: key, expected: "a number")
            }
        }
        if case .array(let list)? = object["eos_token_id"] {
            var ids: [Int] = []
            for v in list {
                guard case .int(let i) = v else { throw .wrongType(path: path, key: "eos_token_id", expected: "an integer or a list of integers") }
                ids.append(i)
            }
            eosTokenIDs = ids
        } else if let one = try int("eos_token_id") {
            eosTokenIDs = [one]
        }
        padTokenID = try int("pad_token_id")
        maxLength = try int("max_length")
        maxNewTokens = try int("max_new_tokens")
        switch object["do_sample"] {
        case nil, .null?: break
        case .bool(let b)?: doSample = b
        default: throw .wrongType(path: path, key: "do_sample", expected: "a boolean")
        }
        temperature = try double("temperature")
        topK = try int("top_k")
        topP = try double("top_p")
        repetitionPenalty = try double("repetition_penalty")
        noRepeatNGramSize = try int("no_repeat_ngram_size")
        switch object["stop_strings"] {
        case nil, .null?: break
        case .string(let one)?: stopStrings = [one]
        case .array(let list)?:
            stopStrings = try list.map { (v) throws(GenerationConfigError) -> String in
                guard case .string(let s) = v else { throw .wrongType(path: path, key: "stop_strings", expected: "a string or a list of strings") }
                return s
            }
        default: throw .wrongType(path: path, key: "stop_strings", expected: "a string or a list of strings")
        }
    }

    /// Reads the file at `path`.
    public init(path: String) throws {
        let data = Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumConfigBytes))
        try self.init(jsonData: data, path: path)
    }
}

/// Why a `generation_config.json` could not be read.
public enum GenerationConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not a JSON object.
    case invalidJSON(path: String)
    /// Field `key` holds a value of the wrong type; `expected` says what it should be ("an integer", …).
    case wrongType(path: String, key: String, expected: String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .invalidJSON(p): return "\(p): not a JSON object"
        case let .wrongType(p, k, e): return "\(p): '\(k)' is not \(e)"
        }
    }
}
