#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kernels
import Tensors

/// Which parameters receive weight decay, as ranges of the flat parameter buffer.
public struct WeightDecayMask: Sendable, Equatable {
    /// Ranges of the flat buffer exempt from decay, sorted and disjoint.
    public private(set) var exemptRanges: [Range<Int>]

    /// Decay every parameter (`torch.optim.AdamW`'s behaviour when given all parameters in one group).
    public static let all = WeightDecayMask(exemptRanges: [])

    /// Exempts the given ranges.
    public init(exemptRanges: [Range<Int>]) {
        self.exemptRanges = exemptRanges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        for i in self.exemptRanges.indices.dropFirst() {
            precondition(self.exemptRanges[i - 1].upperBound <= self.exemptRanges[i].lowerBound, "overlapping exempt ranges")
        }
    }

    /// Exempts every named parameter for which `isExempt(name)` holds.
    public init(parameters: [(name: String, range: Range<Int>)], exempting isExempt: (String) -> Bool) {
        self.init(exemptRanges: parameters.filter { isExempt($0.name) }.map(\.range))
    }

    /// Exempts biases and LayerNorm weights (transformers' Trainer and llm.c's `configure_optimizers`):
    /// names ending in `.bias`, and weights of modules named `ln_*` or containing `norm`.
    public static func exemptingBiasesAndNorms(_ parameters: [(name: String, range: Range<Int>)]) -> WeightDecayMask {
        WeightDecayMask(parameters: parameters, exempting: isBiasOrNorm)
    }

    /// Whether `name` is a bias or a normalisation weight.
    public static func isBiasOrNorm(_ name: String) -> Bool {
        if name.hasSuffix(".bias") { return true }
        let parts = name.lowercased().split(separator: ".")
        return parts.dropLast().contains { $0.hasPrefix("ln_") || $0.contains("norm") }
    }

    /// (range, decays) segments covering 0..<count.
    func segments(count: Int) -> [(range: Range<Int>, decays: Bool)] {
        var out: [(Range<Int>, Bool)] = []
        var cursor = 0
        for r in exemptRanges where r.lowerBound < count {
            if r.lowerBound > cursor { out.append((cursor ..< r.lowerBound, true)) }
            out.append((r.lowerBound ..< min(r.upperBound, count), false))
            cursor = min(r.upperBound, count)
        }
        if cursor < count { out.append((cursor ..< count, true)) }
        return out
    }
}

/// A saved optimizer state that does not fit the optimizer.
public enum OptimizerStateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The state lacks `step`, `exp_avg` or `exp_avg_sq`.
    case missingTensor(name: String)
    /// A tensor of another shape than the optimizer's (`step` [1], the moments [n] floating point).
    case wrongShape(name: String, expected: Shape, found: Shape)
    /// A `step` that is negative, NaN or too large (-1 when not finite).
    case invalidStep(Int)

    /// The message `gpt2kit` prints.
    public var description: String {
        switch self {
        case let .missingTensor(name): return "optimizer state: missing tensor '\(name)'"
        case let .wrongShape(name, expected, found): return "optimizer state tensor '\(name)': expected \(expected), found \(found)"
        case let .invalidStep(step): return "optimizer state: step \(step) is negative"
        }
    }
}

/// AdamW with PyTorch semantics (`torch.optim.AdamW`, `_single_tensor_adam`): decoupled weight decay
/// `p ← p·(1 − lr·wd)`, then `m ← lerp(m, g, 1 − β1)`, `v ← β2·v + (1 − β2)·g²`, and
/// `p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)`, in that operation order.
public final class AdamW {
    /// Hyper-parameters. The defaults are GPT2Kit's everywhere (this type, `TrainingOptions` and
    /// `gpt2kit finetune`): transformers' `TrainingArguments` (lr 5e-5, betas 0.9/0.999, eps 1e-8, no weight
    /// decay). `torch.optim.AdamW` itself defaults to lr 1e-3 and weight decay 1e-2: pass them to match it.
    public struct Options: Sendable, Equatable {
        /// Learning rate (`lr`) used when `step` is not given one.
        public var learningRate: Double
        /// β₁: decay of the first moment m.
        public var beta1: Double
        /// β₂: decay of the second moment v.
        public var beta2: Double
        /// ε added to √v̂ in the denominator.
        public var eps: Double
        /// Decoupled weight decay wd: p ← p·(1 − lr·wd) on the ranges `decayMask` leaves decaying.
        public var weightDecay: Double
        /// transformers' defaults unless given.
        public init(learningRate: Double = 5e-5, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0) {
            self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        }
    }

    /// The hyper-parameters; changing them affects the next step.
    public var options: Options
    /// Number of floats optimised.
    public let parameterCount: Int
    /// Which ranges decay.
    public let decayMask: WeightDecayMask
    /// Steps taken (torch's `state["step"]`).
    public private(set) var stepCount = 0
    /// First moment (`exp_avg`), same layout as the parameters.
    package let m: FloatBuffer
    /// Second moment (`exp_avg_sq`).
    package let v: FloatBuffer
    private let segments: [(range: Range<Int>, decays: Bool)]

    /// An optimizer for a flat buffer of `parameterCount` floats.
    public init(parameterCount: Int, options: Options = Options(), decayMask: WeightDecayMask = .all) {
        self.parameterCount = parameterCount
        self.options = options
        self.decayMask = decayMask
        self.m = FloatBuffer(count: parameterCount)
        self.v = FloatBuffer(count: parameterCount)
        self.segments = decayMask.segments(count: parameterCount)
    }

    /// One update of `parameters` from `gradients` at `learningRate` (default `options.learningRate`;
    /// pass a schedule's value here).
    public func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Double? = nil) {
        step(parameterSegments: [parameters], gradients: gradients, learningRate: learningRate)
    }

    /// One update of parameters held in several buffers (the trained tensors of a model with frozen ones, an
    /// adapter) whose concatenation lines up with `gradients`, `m` and `v`. Element-wise, so splitting the
    /// parameters into segments does not change any result.
    public func step(parameterSegments: [UnsafeMutableBufferPointer<Float>], gradients: UnsafeBufferPointer<Float>,
                     learningRate: Double? = nil) {
        let total = parameterSegments.reduce(0) { $0 + $1.count }
        precondition(total == parameterCount && gradients.count == parameterCount,
                     "AdamW over \(parameterCount) floats got parameters \(total), gradients \(gradients.count)")
        guard parameterCount > 0, let g = gradients.baseAddress,
              let mp = m.buffer.baseAddress, let vp = v.buffer.baseAddress else { return }
        // Packed offset where each segment starts.
        var starts: [Int] = []
        var offset = 0
        for s in parameterSegments { starts.append(offset); offset += s.count }
        stepCount += 1
        let lr = learningRate ?? options.learningRate
        let o = options
        let t = Double(stepCount)
        let biasCorrection1 = 1 - pow(o.beta1, t)
        let biasCorrection2 = 1 - pow(o.beta2, t)
        let negStepSize = Float(-(lr / biasCorrection1))
        let bc2Sqrt = Float(biasCorrection2.squareRoot())
        let eps = Float(o.eps)
        let decayFactor = Float(1 - lr * o.weightDecay)
        let w1 = Float(1 - o.beta1), b2 = Float(o.beta2), w2 = Float(1 - o.beta2)
        for (index, segment) in parameterSegments.enumerated() {
            guard let p = segment.baseAddress else { continue }
            let base = starts[index]
            let inSegment = base ..< base + segment.count
            for (range, decays) in segments where range.overlaps(inSegment) {
                let part = range.clamped(to: inSegment)
                let decay: Float = decays && o.weightDecay != 0 ? decayFactor : 1
                // One fused pass per chunk; element-wise, so results do not depend on the chunking.
                Parallel.forEachChunk(count: part.count) { _, chunk in
                    let start = part.lowerBound + chunk.lowerBound
                    Self.update(p: p + (start - base), g: g + start, m: mp + start, v: vp + start, count: chunk.count,
                                decay: decay, w1: w1, b2: b2, w2: w2, bc2Sqrt: bc2Sqrt, eps: eps, negStepSize: negStepSize)
                }
            }
        }
    }

    /// The fused update of `count` floats in 256-float blocks: moments (vectorised), square roots
    /// (scalar: Glibc's `sqrtf` keeps `errno` semantics, which stops LLVM vectorising it), parameters
    /// (vectorised). The block lives in L1, so memory is streamed once.
    @inline(never)
    private static func update(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                               v: UnsafeMutablePointer<Float>, count: Int, decay: Float, w1: Float, b2: Float, w2: Float,
                               bc2Sqrt: Float, eps: Float, negStepSize: Float) {
        let block = 256
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { scratch in
            guard let root = scratch.baseAddress else { return }
            var start = 0
            while start < count {
                let n = min(block, count - start)
                updateMoments(g: g + start, m: m + start, v: v + start, vOut: root, count: n, w1: w1, b2: b2, w2: w2)
                for j in 0..<n { root[j] = root[j].squareRoot() }
                updateParameters(p: p + start, m: m + start, root: root, count: n, decay: decay, bc2Sqrt: bc2Sqrt,
                                 eps: eps, negStepSize: negStepSize)
                start += n
            }
        }
    }

    /// m ← m + w1·(g − m) (torch's lerp for weight < 0.5), v ← β2·v + (1 − β2)·g²; vOut = v.
    @inline(never)
    private static func updateMoments(g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                                      vOut: UnsafeMutablePointer<Float>, count: Int, w1: Float, b2: Float, w2: Float) {
        for i in 0..<count {
            let gi = g[i], m0 = m[i]
            let vi = v[i] * b2 + w2 * gi * gi
            m[i] = m0 + w1 * (gi - m0)
            v[i] = vi
            vOut[i] = vi
        }
    }

    /// p ← p·decay + negStepSize · m / (√v / √(1 − β2ᵗ) + ε), given root = √v.
    @inline(never)
    private static func updateParameters(p: UnsafeMutablePointer<Float>, m: UnsafePointer<Float>, root: UnsafePointer<Float>,
                                         count: Int, decay: Float, bc2Sqrt: Float, eps: Float, negStepSize: Float) {
        for i in 0..<count {
            let denom = root[i] / bc2Sqrt + eps
            p[i] = p[i] * decay + negStepSize * m[i] / denom
        }
    }

    /// Name of the step count in the exported state (torch's `state["step"]`).
    public static let stepName = "step"
    /// Name of the first moment m in the exported state (torch's `exp_avg`).
    public static let firstMomentName = "exp_avg"
    /// Name of the second moment v in the exported state (torch's `exp_avg_sq`).
    public static let secondMomentName = "exp_avg_sq"

    /// The state (step, m, v) as a state dict: `step` (I64, [1]), `exp_avg` and `exp_avg_sq` (F32, [n]).
    public func exportState() -> StateDict {
        var dict = StateDict()
        var step = Tensor(zeros: .i64, shape: [1])
        step.withUnsafeMutableBytes { $0.storeBytes(of: Int64(stepCount).littleEndian, as: Int64.self) }
        dict[Self.stepName] = step
        dict[Self.firstMomentName] = Tensor(floats: UnsafeBufferPointer(m.buffer), shape: [parameterCount])
        dict[Self.secondMomentName] = Tensor(floats: UnsafeBufferPointer(v.buffer), shape: [parameterCount])
        return dict
    }

    /// Restores a state written by `exportState()` to resume training.
    public func importState(_ dict: StateDict) throws(OptimizerStateError) {
        guard let step = dict[Self.stepName] else { throw .missingTensor(name: Self.stepName) }
        guard step.elementCount == 1 else { throw .wrongShape(name: Self.stepName, expected: [1], found: step.shape) }
        var tensors: [Tensor] = []
        for name in [Self.firstMomentName, Self.secondMomentName] {
            guard let t = dict[name] else { throw .missingTensor(name: name) }
            guard t.shape == Shape([parameterCount]), t.dtype.isFloatingPoint else {
                throw .wrongShape(name: name, expected: [parameterCount], found: t.shape)
            }
            tensors.append(t)
        }
        // A NaN, negative or out-of-range step in the file must not trap in the conversion.
        let stored = step.floats()[0]
        guard stored.isFinite, stored >= 0, stored < 9e15, let s = Int(exactly: stored.rounded(.towardZero)) else {
            throw .invalidStep(stored.isFinite && abs(stored) < 9e15 ? Int(stored) : -1)
        }
        tensors[0].copyFloats(into: m.buffer)
        tensors[1].copyFloats(into: v.buffer)
        stepCount = s
    }

    /// Clears m, v and the step count.
    public func reset() {
        m.zero(); v.zero(); stepCount = 0
    }
}
