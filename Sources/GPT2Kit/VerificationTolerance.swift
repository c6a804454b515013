/// The element types a checkpoint stores its weights in, as far as verification tells them apart, finest first.
/// F64 counts as F32 (the models compute in float32); Q8_0 is GGUF's 8-bit block format.
public enum StoredPrecision: String, Codable, Sendable, CaseIterable, Comparable {
    /// 32-bit floats (F64 counts as F32).
    case f32
    /// IEEE half floats (11 significant bits).
    case f16
    /// bfloat16 (8 significant bits).
    case bf16
    /// GGUF's Q8_0: 8-bit integers in blocks of 32 with one f16 scale.
    case q8_0

    /// The precision of a stored element type name (`F32`, `F64`, `F16`, `BF16`, `Q8_0`); nil for integer types.
    public init?(storedType: String) {
        switch storedType.uppercased() {
        case "F32", "F64": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "Q8_0": self = .q8_0
        default: return nil
        }
    }

    /// Finer before coarser, in case order (`f32` < `f16` < `bf16` < `q8_0`): `max()` is the coarsest.
    public static func < (a: StoredPrecision, b: StoredPrecision) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }
}

/// How far two weights may differ: |a − b| ≤ `atol` + `rtol`·max(|a|, |b|) + `scaleRelative`·M, where M is the
/// largest magnitude in either tensor (Q8_0 rounds each value to a step of its block's largest magnitude / 127).
public struct WeightTolerance: Codable, Sendable, Equatable {
    /// The absolute part of the allowed difference.
    public var atol: Double
    /// The part relative to max(|a|, |b|).
    public var rtol: Double
    /// The part relative to the largest magnitude M in either tensor (Q8_0's step).
    public var scaleRelative: Double

    /// The largest difference allowed between `a` and `b` in a pair of tensors whose largest magnitude is `scale`.
    public func allowed(_ a: Double, _ b: Double, scale: Double) -> Double {
        atol + rtol * max(abs(a), abs(b)) + scaleRelative * scale
    }

    /// Both bounds at once: the difference one rounding, then the other, can make.
    static func + (x: WeightTolerance, y: WeightTolerance) -> WeightTolerance {
        WeightTolerance(atol: x.atol + y.atol, rtol: x.rtol + y.rtol, scaleRelative: x.scaleRelative + y.scaleRelative)
    }
}

/// How far two forward passes on the same token ids may differ: each logit by `logitsAtol` +
/// `logitsRtol`·max(|x|, |y|) + `logitsScaleRelative`·M, where M is the largest |logit| at that position on either
/// side (rounded weights move every logit of a position by about the same amount, whatever its own size); the loss
/// by `lossRtol`·max(|x|, |y|). A greedy token may differ only where the first model's two candidates are closer
/// than their two logit tolerances together (a near-tie).
public struct ForwardTolerance: Codable, Sendable, Equatable {
    /// The absolute part of the allowed logit difference.
    public var logitsAtol: Double
    /// The logit difference allowed relative to max(|x|, |y|).
    public var logitsRtol: Double
    /// The logit difference allowed relative to the largest |logit| M at the position, on either side.
    public var logitsScaleRelative: Double
    /// The loss difference allowed relative to max(|x|, |y|).
    public var lossRtol: Double

    /// The largest difference allowed between two logits `x` and `y` at a position whose largest |logit| is `scale`.
    public func allowedLogitDifference(_ x: Double, _ y: Double, scale: Double) -> Double {
        logitsAtol + logitsRtol * max(abs(x), abs(y)) + logitsScaleRelative * scale
    }
    /// The largest difference allowed between two losses `x` and `y`.
    public func allowedLossDifference(_ x: Double, _ y: Double) -> Double { lossRtol * max(abs(x), abs(y)) }
}

/// The tolerances of `gpt2kit verify`, all in this one table (README "Verify" repeats it).
///
/// **Weights** (after decoding both sides to float32, tensor by tensor): each stored type contributes the error
/// its rounding can make, and a pair of types allows the sum of both (each side may have been rounded from a
/// common float32 original):
///
/// | stored type | atol | rtol | × largest magnitude | why |
/// | --- | --- | --- | --- | --- |
/// | F32 (F64) | 5e-8 | 5e-7 | 0 | a few float32 ulps: what two float32 computations of the same value differ by |
/// | F16 | 2⁻²⁵ ≈ 3.0e-8 | 2⁻¹¹ ≈ 4.9e-4 | 0 | half an f16 ulp (11 significant bits); half the subnormal step |
/// | BF16 | 0 | 2⁻⁸ ≈ 3.9e-3 | 0 | half a bf16 ulp (8 significant bits) |
/// | Q8_0 | 127·2⁻²⁵ ≈ 3.8e-6 | 0 | 4.5e-3 | half a step (max/127 / 2) plus the f16 scale's rounding (127·2⁻¹¹ steps): 0.5625/127 ≤ 4.5e-3; atol: a scale in f16's subnormal range (block max < 7.8e-3) is rounded by up to 2⁻²⁵, times \|q\| ≤ 127 |
///
/// So F32/F32 allows atol 1e-7, rtol 1e-6; F32/F16 atol 8e-8, rtol 4.9e-4; F32/Q8_0 atol 3.8e-6, rtol 5e-7, plus
/// 4.5e-3 of the tensor's largest magnitude.
///
/// **Forward** (the prompt through both models; the row of the coarsest stored type of either model). M is the
/// largest |logit| of the position:
///
/// | coarsest type | logits | loss rtol |
/// | --- | --- | --- |
/// | F32 | 1e-5 + 1e-5·\|x\| | 1e-5 |
/// | F16 | 1e-5 + 1e-5·\|x\| + 5e-3·M | 2e-4 |
/// | BF16 | 1e-5 + 1e-5·\|x\| + 4e-2·M | 2e-3 |
/// | Q8_0 | 1e-5 + 1e-5·\|x\| + 5e-2·M | 3e-3 |
///
/// The F32 row is the shared reference's (`fixtures/REFERENCE.md`, the copy of the acceptance data's README: about 1e-5 relative on losses and
/// logits, with an atol of 1e-5 for logits near zero); `verify --reference` checks against PyTorch with the row of
/// the model's coarsest stored type. The other rows are measured with PyTorch on the bundled models (tiny-gpt2,
/// micro-gpt2, long-context; 4 random prompts of 6 to 60 tokens each) against their weights rounded to the type,
/// then given 2.4–4× margin. Largest logit difference / M, and largest relative loss difference: F16 1.7e-3 and
/// 5.4e-5; BF16 1.5e-2 and 5.1e-4; Q8_0 2.1e-2 and 7.4e-4. Not measured on a trained 124M model (none is
/// bundled): a low-precision copy of one that fails narrowly deserves a second look before it is called broken.
public enum VerificationTolerance {
    /// The rounding error one stored type can make.
    public static func rounding(_ precision: StoredPrecision) -> WeightTolerance {
        switch precision {
        case .f32: return WeightTolerance(atol: 5e-8, rtol: 5e-7, scaleRelative: 0)
        case .f16: return WeightTolerance(atol: 0x1p-25, rtol: 0x1p-11, scaleRelative: 0)
        case .bf16: return WeightTolerance(atol: 0, rtol: 0x1p-8, scaleRelative: 0)
        case .q8_0: return WeightTolerance(atol: 127 * 0x1p-25, rtol: 0, scaleRelative: 4.5e-3)
        }
    }

    /// The tolerance between a weight stored as `a` and one stored as `b`.
    public static func weights(_ a: StoredPrecision, _ b: StoredPrecision) -> WeightTolerance {
        rounding(a) + rounding(b)
    }

    /// The tolerance between two forward passes whose weights are at worst `precision`.
    public static func forward(_ precision: StoredPrecision) -> ForwardTolerance {
        switch precision {
        case .f32: return ForwardTolerance(logitsAtol: 1e-5, logitsRtol: 1e-5, logitsScaleRelative: 0, lossRtol: 1e-5)
        case .f16: return ForwardTolerance(logitsAtol: 1e-5, logitsRtol: 1e-5, logitsScaleRelative: 5e-3, lossRtol: 2e-4)
        case .bf16: return ForwardTolerance(logitsAtol: 1e-5, logitsRtol: 1e-5, logitsScaleRelative: 4e-2, lossRtol: 2e-3)
        case .q8_0: return ForwardTolerance(logitsAtol: 1e-5, logitsRtol: 1e-5, logitsScaleRelative: 5e-2, lossRtol: 3e-3)
        }
    }
}
