#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Learning-rate multipliers as transformers' `get_*_schedule_with_warmup` (a `LambdaLR`): the update
/// numbered `step` (0 for the first optimizer step) uses `base · multiplier(step:)`.
public enum LearningRateSchedule: Sendable, Equatable {
    /// Always 1.
    case constant
    /// Linear warm-up from 0, then 1 (`get_constant_schedule_with_warmup`).
    case constantWithWarmup(warmupSteps: Int)
    /// Linear warm-up from 0, then linear decay to 0 at `totalSteps` (`get_linear_schedule_with_warmup`).
    case linear(warmupSteps: Int, totalSteps: Int)
    /// Linear warm-up, then cosine decay (`get_cosine_schedule_with_warmup`, default 0.5 cycles).
    case cosine(warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5)

    /// The multiplier of the base learning rate at `step`.
    public func multiplier(step: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case let .constantWithWarmup(warmup):
            return step < warmup ? Double(step) / Double(max(1, warmup)) : 1
        case let .linear(warmup, total):
            if step < warmup { return Double(step) / Double(max(1, warmup)) }
            return max(0, Double(total - step) / Double(max(1, total - warmup)))
        case let .cosine(warmup, total, cycles):
            if step < warmup { return Double(step) / Double(max(1, warmup)) }
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            return max(0, 0.5 * (1 + cos(Double.pi * cycles * 2 * progress)))
        }
    }

    /// `base · multiplier(step:)`.
    public func learningRate(base: Double, step: Int) -> Double { base * multiplier(step: step) }
}
