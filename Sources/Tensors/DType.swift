/// The element type of a tensor's bytes, named as safetensors names them.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether the type holds floating-point values.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }

    /// Parses a user-facing name such as `f32`, `float16`, `bf16` (case-insensitive).
    public init?(userName: String) {
        switch userName.lowercased() {
        case "f64", "float64", "double": self = .f64
        case "f32", "float32", "float": self = .f32
        case "f16", "float16", "half", "fp16": self = .f16
        case "bf16", "bfloat16": self = .bf16
        case "i64", "int64": self = .i64
        case "i32", "int32": self = .i32
        case "i16", "int16": self = .i16
        case "i8", "int8": self = .i8
        case "u8", "uint8": self = .u8
        case "bool": self = .bool
        default: return nil
        }
    }
}
