/// The element type of a tensor's bytes, named as safetensors names them.
public enum DType: String, Sendable, CaseIterable, Codable {
    /// 64-bit IEEE float (`torch.float64`).
    case f64 = "F64"
    /// 32-bit IEEE float (`torch.float32`).
    case f32 = "F32"
    /// 16-bit IEEE half float (`torch.float16`).
    case f16 = "F16"
    /// bfloat16: float32's exponent with 8 significant bits (`torch.bfloat16`).
    case bf16 = "BF16"
    /// 64-bit signed integer (`torch.int64`).
    case i64 = "I64"
    /// 32-bit signed integer (`torch.int32`).
    case i32 = "I32"
    /// 16-bit signed integer (`torch.int16`).
    case i16 = "I16"
    /// 8-bit signed integer (`torch.int8`).
    case i8 = "I8"
    /// 8-bit unsigned integer (`torch.uint8`).
    case u8 = "U8"
    /// Boolean, one byte per element (`torch.bool`).
    case bool = "BOOL"

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
