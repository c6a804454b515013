import Kernels
import Tensors

/// GPT-2 with a language-model head tied to the token embedding (`GPT2LMHeadModel`): forward with loss,
/// backward into one flat gradient buffer laid out like the parameters.
///
/// Typical step: `zeroGradients()`, `forward(… labels:, training: true)`, `backward()`, optimizer step on
/// `parameters.storage` / `gradients`. Activations are allocated once per shape and reused; they grow
/// only when a larger (B, T) arrives.
public final class GPT2Model {
    /// Hyper-parameters.
    public let config: GPT2Config
    /// The weights (one flat buffer).
    public let parameters: GPT2Parameters
    /// d(loss)/d(trained parameters): the trained base tensors packed in layout order (the same layout as
    /// `parameters.storage` when everything is trained), then the adapter's A and B. `backward()` accumulates.
    package let gradients: FloatBuffer
    /// Which base parameters are trained (frozen ones get no gradient and no weight product in backward).
    public let trainable: TrainableParameters
    /// The LoRA adapter applied beside the base projections, if any (its matrices are always trained).
    public let adapter: LoRAAdapter?
    /// The MLP activation named by the config.
    public let activation: Activation

    /// Batch size of the last forward.
    public private(set) var batchSize = 0
    /// Sequence length of the last forward.
    public private(set) var sequenceLength = 0
    /// Mean loss of the last forward with labels.
    public private(set) var lastLoss: Float?

    private var table: ActivationTable?
    private var acts: FloatBuffer?
    private var gradActs: FloatBuffer?
    private var ids: UnsafeMutablePointer<Int32>
    private var idCapacity = 0
    private var hasMask = false, hasTargets = false, targetCount = 0
    /// Whether `acts.logits` holds all N rows (else only the scored rows listed in `scoredRows`).
    private var logitsAreComplete = false, wantsAllLogits = true
    private var scoredRows: [Int] = []
    private var wasTraining = false, seed: UInt64 = 0
    /// The loss scale a forward was given: the output layer's backward then already ran (see `forward`).
    private var requestedLossScale: Float?, fusedHeadScale: Float?
    /// Adapter activations: h = x·Aᵀ of every module (N, r), then scratch dh (N, r), dropped x and its gradient (N, max(C, F)).
    private var adapterActs: FloatBuffer?
    /// Packed gradient range of each global tensor and of each layer tensor (nil: frozen).
    private let globalGradients: [Range<Int>?]
    private let layerGradients: [[Range<Int>?]]
    /// Blocks below this one need no backward (nothing trained there or below).
    private let lowestTrainedLayer: Int

    /// A model over existing parameters (the config must be the one they were made for), training `trainable`
    /// (default: everything) and, when given, an adapter beside the base projections.
    public init(parameters: GPT2Parameters, trainable: TrainableParameters? = nil, adapter: LoRAAdapter? = nil) throws(ConfigError) {
        try parameters.config.validate()
        self.config = parameters.config
        self.parameters = parameters
        self.activation = try parameters.config.activation()
        let layout = parameters.layout
        let trainable = trainable ?? .all(layout)
        precondition(trainable.packedRanges.count == layout.entries.count, "trainable set of another layout")
        self.trainable = trainable
        self.adapter = adapter
        self.gradients = FloatBuffer(count: trainable.count + (adapter?.parameterCount ?? 0))
        var globals = [Range<Int>?](repeating: nil, count: GPT2ParameterLayout.GlobalTensor.allCases.count)
        var layers = [[Range<Int>?]](repeating: [Range<Int>?](repeating: nil, count: GPT2ParameterLayout.LayerTensor.allCases.count),
                                     count: parameters.config.layerCount)
        var lowest = parameters.config.layerCount
        for (e, packed) in zip(layout.entries, trainable.packedRanges) {
            switch e.role {
            case .global(let g):
                globals[g.rawValue] = packed
                if packed != nil, g == .wte || g == .wpe { lowest = 0 }
            case .layer(let l, let t):
                layers[l][t.rawValue] = packed
                if packed != nil { lowest = min(lowest, l) }
            }
        }
        for m in adapter?.modules ?? [] { lowest = min(lowest, m.layer) }
        globalGradients = globals
        layerGradients = layers
        lowestTrainedLayer = lowest
        self.ids = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    }

    /// A model from a config and a state dict in any supported naming (see `GPT2Parameters.init(config:stateDict:)`).
    public convenience init(config: GPT2Config, stateDict: StateDict) throws {
        try config.validate()
        try self.init(parameters: GPT2Parameters(config: config, stateDict: stateDict))
    }

    deinit { ids.deallocate() }

    /// Parameter table (names, shapes, offsets).
    public var layout: GPT2ParameterLayout { parameters.layout }

    private var encodedWeights: [QuantizedMatrix.Format: DecodingWeights] = [:]

    /// The projections re-encoded in `format` for decoding, built on first use and kept (they do not follow later
    /// changes of the parameters: call after training). Nil when the shapes cannot take the format (see
    /// `DecodingWeights.unsupportedReason`).
    package func decodingWeights(_ format: QuantizedMatrix.Format) -> DecodingWeights? {
        if let w = encodedWeights[format] { return w }
        guard DecodingWeights.unsupportedReason(format, config: config) == nil else { return nil }
        let w = DecodingWeights(parameters: parameters, format: format)
        encodedWeights[format] = w
        return w
    }

    /// Bytes of activation buffers a forward of (B, T) with labels allocates (the logits a chunk of rows at a
    /// time), plus their gradients when `training`: linear in T (no T×T or N×V buffer). Nil if it overflows.
    public static func activationBytes(config: GPT2Config, batchSize B: Int, sequenceLength T: Int, training: Bool) -> Int? {
        let widest = Double(max(config.vocabularySize, config.feedForwardSize, 3 * config.embeddingSize))
        // Every buffer is at most (B·T)·widest per layer; refuse what could overflow before building the table.
        guard B > 0, T > 0, Double(B) * Double(T) * widest * Double(config.layerCount + 8) * 4 < 0x1p52 else { return nil }
        let table = ActivationTable(config: config, B: B, T: T, allLogits: false)
        return (table.forwardCount + (training ? table.gradCount : 0)) * 4
    }

    /// The gradient of the base parameter named `name`, or nil (unknown or frozen).
    package func gradient(named name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let i = layout.entries.firstIndex(where: { $0.name == name }), let packed = trainable.packedRanges[i] else { return nil }
        return gradients[packed]
    }

    /// A copy of the gradient of the base parameter named `name` after `backward()`, or nil (unknown or frozen).
    public func gradientValues(named name: String) -> [Float]? {
        withExtendedLifetime(self) { gradient(named: name).map { Array($0) } }
    }

    /// A copy of the adapter's gradients after `backward()`, laid out like the adapter's floats (empty without one).
    public func adapterGradientValues() -> [Float] { withExtendedLifetime(self) { Array(adapterGradients) } }

    /// The adapter's gradients, laid out like `adapter.storage`.
    package var adapterGradients: UnsafeMutableBufferPointer<Float> { gradients[trainable.count ..< gradients.count] }

    /// The trained floats, as buffers whose concatenation lines up with `gradients`.
    package var trainableSegments: [UnsafeMutableBufferPointer<Float>] {
        var segments = trainable.runs(layout).map { parameters.storage[$0.parameters] }
        if let adapter, adapter.parameterCount > 0 { segments.append(adapter.storage.buffer) }
        return segments
    }

    /// (name, range in `gradients`) of every trained tensor, for weight-decay masks.
    public var trainableNamedRanges: [(name: String, range: Range<Int>)] {
        var out: [(String, Range<Int>)] = []
        for (e, packed) in zip(layout.entries, trainable.packedRanges) { if let packed { out.append((e.name, packed)) } }
        for t in adapter?.namedTensors ?? [] {
            out.append((t.name, trainable.count + t.range.lowerBound ..< trainable.count + t.range.upperBound))
        }
        return out
    }

    /// Sets every gradient to zero (once per optimizer step; `backward()` accumulates).
    public func zeroGradients() { gradients.zero() }

    // MARK: - Forward

    /// Runs the model on `inputIDs` (B, T) and returns the mean cross-entropy when `labels` are given.
    ///
    /// - Parameters:
    ///   - inputIDs: token ids, (B, T) row-major; each must be in the vocabulary.
    ///   - B: the batch size (rows), at least 1.
    ///   - T: the sequence length (columns), 1 to `n_positions`.
    ///   - attentionMask: (B, T), 0 hides a (padding) key from every query, as transformers' `attention_mask`.
    ///   - labels: (B, T) in `GPT2LMHeadModel` convention: the input ids with -100 where ignored. Position t
    ///     is scored against `labels[t + 1]`; the loss is the mean over scored positions (NaN if none).
    ///   - training: applies dropout with `dropoutSeed` (the same seed gives the same masks).
    ///   - dropoutSeed: seeds the dropout masks when `training` (ignored otherwise).
    ///   - computeAllLogits: when false and `labels` are given, logits (and the loss terms) are computed only
    ///     for positions whose shifted label counts, a chunk of rows at a time, so the (N, V) logits are never
    ///     whole; the loss, `lastLoss` and `backward()` are unchanged, but `withLogits`/`logits(batch:position:)`
    ///     must not be called afterwards. Training and evaluation pass false; callers that read logits keep
    ///     the default. Without labels all logits are computed.
    ///   - lossScale: with labels, starts the backward pass inside this forward: each chunk of logits becomes its
    ///     gradient (scaled like `backward(lossScale:)`) as soon as its loss is taken, so no logits are kept for
    ///     backward and none are recomputed. Call `backward()` next (it then uses this scale). Without it,
    ///     `backward` recomputes the logits of scored rows chunk by chunk (one more output-layer product).
    /// - Returns: the loss, or nil without labels. Logits are then readable through `withLogits`.
    @discardableResult
    public func forward(inputIDs: [TokenID], batchSize B: Int, sequenceLength T: Int, attentionMask: [Int32]? = nil,
                        labels: [TokenID]? = nil, training: Bool = false, dropoutSeed: UInt64 = 0,
                        computeAllLogits: Bool = true, lossScale: Float? = nil) throws(ModelInputError) -> Float? {
        let V = config.vocabularySize
        guard B > 0, T > 0 else { throw .emptyInput }
        guard T <= config.maxPositions else { throw .sequenceTooLong(length: T, maximum: config.maxPositions) }
        let N = B * T
        guard inputIDs.count == N else { throw .countMismatch(what: "input ids", expected: N, found: inputIDs.count) }
        if let attentionMask, attentionMask.count != N { throw .countMismatch(what: "attention mask", expected: N, found: attentionMask.count) }
        if let labels, labels.count != N { throw .countMismatch(what: "labels", expected: N, found: labels.count) }
        for (i, id) in inputIDs.enumerated() where id < 0 || id >= V { throw .tokenOutOfRange(index: i, id: id, vocabularySize: V) }
        if let labels {
            for (i, l) in labels.enumerated() where l != ignoreIndex && (l < 0 || l >= V) {
                throw .labelOutOfRange(index: i, label: l, vocabularySize: V)
            }
        }
        wantsAllLogits = computeAllLogits || labels == nil
        prepare(B: B, T: T)
        // ids: tokens (N) | targets (N) | key mask (N) | targets of scored rows (M ≤ N)
        let tokens = UnsafeMutableBufferPointer(start: ids, count: N)
        let targets = UnsafeMutableBufferPointer(start: ids + N, count: N)
        let mask = UnsafeMutableBufferPointer(start: ids + 2 * N, count: N)
        for (i, id) in inputIDs.enumerated() { tokens[i] = Int32(id) } // checked against V above
        if let attentionMask { _ = mask.update(from: attentionMask) }
        hasMask = attentionMask != nil
        hasTargets = labels != nil
        if let labels {
            for b in 0..<B {
                for t in 0..<T { targets[b * T + t] = t + 1 < T ? Int32(labels[b * T + t + 1]) : CrossEntropy.ignoreIndex }
            }
        }
        wasTraining = training
        seed = dropoutSeed
        requestedLossScale = labels == nil ? nil : lossScale
        runForward()
        return lastLoss
    }

    /// Calls `body` with the logits of the last forward, (B, T, V) row-major. Precondition: that forward
    /// computed all logits (`computeAllLogits`, the default).
    public func withLogits<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        guard let table, let acts else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        precondition(logitsAreComplete, "withLogits after a forward with computeAllLogits: false")
        return try body(UnsafeBufferPointer(acts[table.range(.logits)]))
    }

    /// The logits of one position of the last forward (V floats), copied.
    public func logits(batch b: Int, position t: Int) -> [Float] {
        precondition(b < batchSize && t < sequenceLength, "position (\(b), \(t)) outside last forward (\(batchSize), \(sequenceLength))")
        let V = config.vocabularySize
        return withLogits { Array($0[(b * sequenceLength + t) * V ..< (b * sequenceLength + t + 1) * V]) }
    }

    private func prepare(B: Int, T: Int) {
        let t = ActivationTable(config: config, B: B, T: T, allLogits: wantsAllLogits)
        if acts == nil || (acts?.count ?? 0) < t.forwardCount { acts = FloatBuffer(count: t.forwardCount) }
        if let g = gradActs, g.count < t.gradCount { gradActs = nil }
        if idCapacity < 4 * B * T {
            ids.deallocate()
            ids = UnsafeMutablePointer<Int32>.allocate(capacity: 4 * B * T)
            idCapacity = 4 * B * T
        }
        table = t
        batchSize = B
        sequenceLength = T
        if let adapter {
            let N = B * T, r = adapter.configuration.rank
            let wide = adapter.configuration.dropout > 0 ? 2 * N * max(config.embeddingSize, config.feedForwardSize) : 0
            let needed = (adapter.modules.count + 1) * N * r + wide
            if (adapterActs?.count ?? -1) < needed { adapterActs = FloatBuffer(count: needed) }
        }
    }

    /// Adds the adapter's update of module `kind` in block `layer` to `out` (the base projection's output of `inp`),
    /// or with `.initialize(bias:)` writes bias + update for the base product to accumulate onto. With
    /// `inferenceScratch` (N·r floats, decoding) nothing is kept for backward and there is no dropout.
    private func adapterForward(_ layer: Int, _ kind: LoRAModuleKind, inp: UnsafeBufferPointer<Float>,
                                out: UnsafeMutableBufferPointer<Float>, N: Int, inferenceScratch: UnsafeMutableBufferPointer<Float>?,
                                output: LowRankAdapter.Output = .accumulate) {
        guard let adapter, let m = adapter.module(layer: layer, kind) else { return }
        let r = adapter.configuration.rank, C = m.inputFeatures, OC = m.outputFeatures
        let A = adapter.storage.buffer
        if let h = inferenceScratch {
            LowRankAdapter.forward(out: out, h: h, inp: inp, a: UnsafeBufferPointer(rebasing: A[m.a]), b: UnsafeBufferPointer(rebasing: A[m.b]),
                                   N: N, C: C, OC: OC, r: r, scale: adapter.configuration.scale, output: output)
            return
        }
        guard let W = adapterActs else { return }
        let index = m.index
        var x = inp
        let p = dropoutP(adapter.configuration.dropout)
        if p > 0 {
            let dropped = W.slice((adapter.modules.count + 1) * N * r, N * C)
            Dropout.forward(out: dropped, inp: inp, N: N * C, p: p, seed: adapterSeed(layer, kind))
            x = dropped.readOnly
        }
        LowRankAdapter.forward(out: out, h: W.slice(index * N * r, N * r), inp: x,
                               a: UnsafeBufferPointer(rebasing: A[m.a]), b: UnsafeBufferPointer(rebasing: A[m.b]),
                               N: N, C: C, OC: OC, r: r, scale: adapter.configuration.scale, output: output)
    }

    /// Whether block `layer`'s projection `kind` has an adapter that trains (keeps its activations).
    private func hasTrainingAdapter(_ layer: Int, _ kind: LoRAModuleKind) -> Bool {
        adapterActs != nil && adapter?.module(layer: layer, kind) != nil
    }

    /// Backward of `adapterForward`: accumulates the adapter's gradients, and adds its share to `dinp` — or writes
    /// `dinp` with it (`initializeDinp`, no adapter dropout: the base product's share then accumulates onto it).
    private func adapterBackward(_ layer: Int, _ kind: LoRAModuleKind, inp: UnsafeBufferPointer<Float>,
                                 dout: UnsafeBufferPointer<Float>, dinp: UnsafeMutableBufferPointer<Float>?, N: Int,
                                 initializeDinp: Bool = false) {
        guard let adapter, let m = adapter.module(layer: layer, kind), let W = adapterActs else { return }
        let r = adapter.configuration.rank, C = m.inputFeatures, OC = m.outputFeatures
        let index = m.index
        let M = adapter.modules.count
        let A = adapter.storage.buffer, G = adapterGradients
        let p = dropoutP(adapter.configuration.dropout)
        let a = UnsafeBufferPointer(rebasing: A[m.a]), b = UnsafeBufferPointer(rebasing: A[m.b])
        let h = W.slice(index * N * r, N * r).readOnly, dh = W.slice(M * N * r, N * r)
        if p > 0 {
            let wide = max(config.embeddingSize, config.feedForwardSize)
            let dropped = W.slice((M + 1) * N * r, N * C), ddropped = W.slice((M + 1) * N * r + N * wide, N * C)
            Dropout.forward(out: dropped, inp: inp, N: N * C, p: p, seed: adapterSeed(layer, kind))
            precondition(!initializeDinp, "an adapter with dropout adds its input gradient after the base product's")
            LowRankAdapter.backward(dinp: dinp == nil ? nil : ddropped, initializeDinp: true, da: UnsafeMutableBufferPointer(rebasing: G[m.a]), db: UnsafeMutableBufferPointer(rebasing: G[m.b]), dh: dh, dout: dout, inp: dropped.readOnly, h: h,
                                    a: a, b: b, N: N, C: C, OC: OC, r: r, scale: adapter.configuration.scale)
            if let dinp { Dropout.backward(dinp: dinp, dout: ddropped.readOnly, N: N * C, p: p, seed: adapterSeed(layer, kind)) }
        } else {
            LowRankAdapter.backward(dinp: dinp, initializeDinp: initializeDinp, da: UnsafeMutableBufferPointer(rebasing: G[m.a]), db: UnsafeMutableBufferPointer(rebasing: G[m.b]), dh: dh, dout: dout, inp: inp, h: h,
                                    a: a, b: b, N: N, C: C, OC: OC, r: r, scale: adapter.configuration.scale)
        }
    }

    /// Dropout seed of the adapter on module `kind` of block `layer` (its own sites, apart from the base model's).
    private func adapterSeed(_ layer: Int, _ kind: LoRAModuleKind) -> UInt64 {
        Dropout.siteSeed(seed ^ 0x4C6F_5241_4164_6170, site: 4 * layer + kind.rawValue)
    }

    /// Attention scale of block `layer`: 1/√(head size) if `scale_attn_weights`, times 1/(layer+1) if
    /// `scale_attn_by_inverse_layer_idx`.
    public func attentionScale(layer: Int) -> Float {
        var s: Float = 1
        if config.scaleAttentionWeights { s /= Float(config.headSize).squareRoot() }
        if config.scaleAttentionByInverseLayerIndex { s /= Float(layer + 1) }
        return s
    }

    private func dropoutP(_ p: Double) -> Float { wasTraining ? Float(p) : 0 }

    // Dropout sites: 0 embedding; per block 1 + 3l attention probabilities, 2 + 3l attention output, 3 + 3l MLP output.
    private func siteSeed(_ site: Int) -> UInt64 { Dropout.siteSeed(seed, site: site) }

    private func runForward() {
        guard let tb = table, let A = acts else { return }
        let B = tb.B, T = tb.T, C = tb.C, L = tb.L, V = tb.V, N = B * T
        let P = parameters
        let eps = Float(config.layerNormEpsilon)
        let tokens = UnsafeBufferPointer(start: ids, count: N)
        let mask: UnsafeBufferPointer<Int32>? = hasMask ? UnsafeBufferPointer(start: ids + 2 * N, count: N) : nil
        func a(_ g: ActivationTable.Global) -> UnsafeMutableBufferPointer<Float> { A[tb.range(g)] }
        func a(_ l: Int, _ x: ActivationTable.Layer) -> UnsafeMutableBufferPointer<Float> { A[tb.range(layer: l, x)] }
        func w(_ g: GPT2ParameterLayout.GlobalTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(g)) }
        func w(_ l: Int, _ x: GPT2ParameterLayout.LayerTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(layer: l, x)) }

        let encoded = a(.encoded) // (N, C)
        Encoder.forward(out: encoded, tokens: tokens, wte: w(.wte), wpe: w(.wpe), B: B, T: T, C: C)
        let pEmbd = dropoutP(config.embeddingDropout), pResid = dropoutP(config.residualDropout), pAttn = dropoutP(config.attentionDropout)
        if pEmbd > 0 { Dropout.forward(out: encoded, inp: encoded.readOnly, N: N * C, p: pEmbd, seed: siteSeed(0)) }
        var residual = encoded.readOnly // (N, C)
        for l in 0..<L {
            let buffers = BlockBuffers(ln1Mean: a(l, .ln1Mean), ln1Rstd: a(l, .ln1Rstd), ln2Mean: a(l, .ln2Mean), ln2Rstd: a(l, .ln2Rstd),
                                       normalized: a(.normalized), qkv: a(l, .qkv), atty: a(l, .atty), projected: a(.projected),
                                       residual2: a(l, .residual2), fch: a(l, .fch), activated: a(.activated), residual3: a(l, .residual3))
            forwardBlock(l, input: residual, into: buffers, B: B, T: T,
                         attention: .full(statistics: a(l, .attStatistics), keyMask: mask, scratch: a(.scratch), dropout: pAttn),
                         residualDropout: pResid, dropoutSeed: seed, adapterScratch: nil)
            residual = buffers.residual3.readOnly
        }
        let lnf = a(.lnf)
        LayerNorm.forward(out: lnf, mean: a(.lnfMean), rstd: a(.lnfRstd), inp: residual,
                          weight: w(.lnfWeight), bias: w(.lnfBias), N: N, C: C, eps: eps)
        lastLoss = nil
        targetCount = 0
        fusedHeadScale = nil
        let targets = UnsafeBufferPointer(start: ids + N, count: N)
        logitsAreComplete = wantsAllLogits
        if wantsAllLogits {
            // logits = lnf · wteᵀ   (N, V)
            let logits = a(.logits)
            MatMul.forward(out: logits, inp: lnf.readOnly, weight: w(.wte), bias: nil, N: N, C: C, OC: V, layout: .outputMajor)
            guard hasTargets else { return }
            let (sum, count) = CrossEntropy.forward(losses: a(.losses), logsumexp: a(.logsumexp), logits: logits.readOnly,
                                                    targets: targets, N: N, V: V)
            targetCount = count
            lastLoss = count > 0 ? Float(sum / Double(count)) : .nan
            if let scale = requestedLossScale, count > 0 {
                let G = gradientActivations(tb)
                outputLayer(rows: N, inp: lnf.readOnly, targets: targets, work: G[tb.range(.dlogits)], logits: logits.readOnly,
                            losses: nil, logsumexp: a(.logsumexp),
                            gradient: (scale / Float(count), G[tb.range(.dlnf)]))
                fusedHeadScale = scale
            }
        } else {
            // Only scored rows: gather their lnf rows and targets, then logits = lnfScored · wteᵀ (M, V) chunk by chunk.
            scoredRows.removeAll(keepingCapacity: true)
            for n in 0..<N where targets[n] != CrossEntropy.ignoreIndex { scoredRows.append(n) }
            let M = scoredRows.count
            guard M > 0 else { lastLoss = .nan; return }
            let gathered = a(.lnfScored), scoredTargets = UnsafeMutableBufferPointer(start: ids + 3 * N, count: M)
            for (m, n) in scoredRows.enumerated() {
                _ = gathered[m * C ..< (m + 1) * C].update(fromContentsOf: lnf[n * C ..< (n + 1) * C])
                scoredTargets[m] = targets[n]
            }
            var gradient: (Float, UnsafeMutableBufferPointer<Float>)?
            if let scale = requestedLossScale {
                gradient = (scale / Float(M), gradientActivations(tb)[tb.range(.dtemp)])
            }
            let (sum, count) = outputLayer(rows: M, inp: gathered.readOnly, targets: UnsafeBufferPointer(scoredTargets), work: a(.logits),
                                           logits: nil, losses: a(.losses), logsumexp: a(.logsumexp), gradient: gradient)
            targetCount = count
            lastLoss = Float(sum / Double(count))
            if let scale = requestedLossScale, let G = gradActs {
                scatterScoredRows(G[tb.range(.dtemp)].readOnly, into: G[tb.range(.dlnf)], C: C)
                fusedHeadScale = scale
            }
        }
    }

    /// The gradient activations of `tb` (allocated on first need, as forward-only use never needs them).
    private func gradientActivations(_ tb: ActivationTable) -> FloatBuffer {
        if let g = gradActs, g.count >= tb.gradCount { return g }
        let g = FloatBuffer(count: tb.gradCount)
        gradActs = g
        return g
    }

    /// The output layer over `rows` rows of `inp` (final-LayerNorm rows, (rows, C)), a chunk of rows at a time in
    /// `work` (whole rows of V floats): the chunk's logits (inp·wteᵀ, or copied from `logits` when the forward kept
    /// them), its loss terms into `losses`/`logsumexp` when `losses` is given (else `logsumexp` is read), and with
    /// `gradient` (d(loss)/d(row loss), dinp) the chunk's d(logits) in place, then dinp (overwritten) and the tied
    /// wte's gradient (accumulated, when wte is trained). Returns the loss sum and counted rows when `losses` is given.
    @discardableResult
    private func outputLayer(rows M: Int, inp: UnsafeBufferPointer<Float>, targets: UnsafeBufferPointer<Int32>,
                             work: UnsafeMutableBufferPointer<Float>, logits: UnsafeBufferPointer<Float>?,
                             losses: UnsafeMutableBufferPointer<Float>?, logsumexp: UnsafeMutableBufferPointer<Float>,
                             gradient: (scale: Float, dinp: UnsafeMutableBufferPointer<Float>)?) -> (sum: Double, count: Int) {
        let C = config.embeddingSize, V = config.vocabularySize
        let chunk = max(1, work.count / V)
        let wte = UnsafeBufferPointer(parameters.view(.wte))
        let dwte = globalGradients[GPT2ParameterLayout.GlobalTensor.wte.rawValue].map { gradients[$0] }
        var sum = 0.0, count = 0
        var r0 = 0
        while r0 < M {
            let n = min(chunk, M - r0)
            let block = UnsafeMutableBufferPointer(rebasing: work[0 ..< n * V])
            let x = UnsafeBufferPointer(rebasing: inp[r0 * C ..< (r0 + n) * C])
            let tg = UnsafeBufferPointer(rebasing: targets[r0 ..< r0 + n])
            let lse = UnsafeMutableBufferPointer(rebasing: logsumexp[r0 ..< r0 + n])
            if let logits {
                _ = block.update(fromContentsOf: logits[r0 * V ..< (r0 + n) * V])
            } else {
                MatMul.forward(out: block, inp: x, weight: wte, bias: nil, N: n, C: C, OC: V, layout: .outputMajor)
            }
            if let losses {
                let part = CrossEntropy.forward(losses: UnsafeMutableBufferPointer(rebasing: losses[r0 ..< r0 + n]), logsumexp: lse,
                                                logits: block.readOnly, targets: tg, N: n, V: V)
                sum += part.sum
                count += part.count
            }
            if let gradient {
                CrossEntropy.gradientInPlace(logits: block, logsumexp: lse.readOnly, targets: tg, dlossScale: gradient.scale, N: n, V: V)
                let dx = UnsafeMutableBufferPointer(rebasing: gradient.dinp[r0 * C ..< (r0 + n) * C])
                MatMul.backward(dinp: dx, dweight: dwte, dbias: nil, dout: block.readOnly, inp: x, weight: wte,
                                N: n, C: C, OC: V, layout: .outputMajor, accumulate: false)
            }
            r0 += n
        }
        return (sum, count)
    }

    /// dlnf = the scored rows' gradients (`dgathered`, in `scoredRows` order) at their positions, 0 elsewhere.
    private func scatterScoredRows(_ dgathered: UnsafeBufferPointer<Float>, into dlnf: UnsafeMutableBufferPointer<Float>, C: Int) {
        dlnf.update(repeating: 0)
        for (m, n) in scoredRows.enumerated() {
            _ = dlnf[n * C ..< (n + 1) * C].update(fromContentsOf: dgathered[m * C ..< (m + 1) * C])
        }
    }

    // MARK: - One block

    /// The buffers one block writes: views of the activation table in training and evaluation, of a decoder's
    /// work buffer when decoding (there `residual2` and `residual3` may be the block's own input: the adds run
    /// in place).
    package struct BlockBuffers {
        package var ln1Mean, ln1Rstd, ln2Mean, ln2Rstd: UnsafeMutableBufferPointer<Float> // (N)
        /// ln1's output, then ln2's (N, C).
        package var normalized: UnsafeMutableBufferPointer<Float>
        package var qkv: UnsafeMutableBufferPointer<Float>       // (N, 3C)
        package var atty: UnsafeMutableBufferPointer<Float>      // (N, C)
        /// A projection's output before the residual add (N, C).
        package var projected: UnsafeMutableBufferPointer<Float>
        package var residual2: UnsafeMutableBufferPointer<Float> // (N, C)
        package var fch: UnsafeMutableBufferPointer<Float>       // (N, F)
        package var activated: UnsafeMutableBufferPointer<Float> // (N, F)
        package var residual3: UnsafeMutableBufferPointer<Float> // (N, C)

        package init(ln1Mean: UnsafeMutableBufferPointer<Float>, ln1Rstd: UnsafeMutableBufferPointer<Float>,
                     ln2Mean: UnsafeMutableBufferPointer<Float>, ln2Rstd: UnsafeMutableBufferPointer<Float>,
                     normalized: UnsafeMutableBufferPointer<Float>, qkv: UnsafeMutableBufferPointer<Float>,
                     atty: UnsafeMutableBufferPointer<Float>, projected: UnsafeMutableBufferPointer<Float>,
                     residual2: UnsafeMutableBufferPointer<Float>, fch: UnsafeMutableBufferPointer<Float>,
                     activated: UnsafeMutableBufferPointer<Float>, residual3: UnsafeMutableBufferPointer<Float>) {
            self.ln1Mean = ln1Mean; self.ln1Rstd = ln1Rstd; self.ln2Mean = ln2Mean; self.ln2Rstd = ln2Rstd
            self.normalized = normalized; self.qkv = qkv; self.atty = atty; self.projected = projected
            self.residual2 = residual2; self.fch = fch; self.activated = activated; self.residual3 = residual3
        }
    }

    /// How a block's attention sees the keys.
    package enum BlockAttention {
        /// All T positions of every row at once, keeping per-row statistics for backward (training, evaluation).
        case full(statistics: UnsafeMutableBufferPointer<Float>, keyMask: UnsafeBufferPointer<Int32>?,
                  scratch: UnsafeMutableBufferPointer<Float>, dropout: Float)
        /// T new positions per row after `position` cached ones, appended to the layer's key/value cache
        /// (B, NH, capacity, hs) each (decoding).
        case cached(keys: UnsafeMutableBufferPointer<Float>, values: UnsafeMutableBufferPointer<Float>,
                    keyMask: UnsafeBufferPointer<Int32>?, scratch: UnsafeMutableBufferPointer<Float>, capacity: Int, position: Int)
    }

    /// Runs block `l` on `input` (B·T rows): ln_1, c_attn, attention, c_proj, dropout, residual add, ln_2, c_fc,
    /// activation, c_proj, dropout, residual add, with the adapter's update beside each targeted projection. The one
    /// block implementation behind training, evaluation, prefill and cached decoding. Dropout sites derive from
    /// `dropoutSeed` (attention 1 + 3l, its output 2 + 3l, the MLP's output 3 + 3l). `adapterScratch` (N·r
    /// floats) marks inference: the adapter keeps nothing for backward.
    package func forwardBlock(_ l: Int, input: UnsafeBufferPointer<Float>, into x: BlockBuffers, B: Int, T: Int,
                              attention: BlockAttention, residualDropout pResid: Float, dropoutSeed: UInt64,
                              adapterScratch: UnsafeMutableBufferPointer<Float>?, weights encoded: DecodingWeights? = nil) {
        let C = config.embeddingSize, NH = config.headCount, F = config.feedForwardSize, N = B * T
        let eps = Float(config.layerNormEpsilon)
        let P = parameters
        func w(_ t: GPT2ParameterLayout.LayerTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(layer: l, t)) }
        func site(_ k: Int) -> UInt64 { Dropout.siteSeed(dropoutSeed, site: k + 3 * l) }
        // A projection C→OC in float32 or in the re-encoded weights.
        func project(_ weight: GPT2ParameterLayout.LayerTensor, _ bias: GPT2ParameterLayout.LayerTensor,
                     out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, C: Int, OC: Int) {
            if let m = encoded?.matrix(layer: l, weight) {
                m.forward(out: out, inp: inp, bias: w(bias), N: N)
            } else {
                MatMul.forwardFewRows(out: out, inp: inp, weight: w(weight), bias: w(bias), N: N, C: C, OC: OC)
            }
        }
        // The projection with its adapter's update: in training the update is written first, with the bias, and the
        // base product accumulates onto it (one pass over the output); decoding adds the update afterwards.
        func project(_ kind: LoRAModuleKind, _ weight: GPT2ParameterLayout.LayerTensor, _ bias: GPT2ParameterLayout.LayerTensor,
                     out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, C: Int, OC: Int) {
            if encoded == nil, adapterScratch == nil, hasTrainingAdapter(l, kind) {
                adapterForward(l, kind, inp: inp, out: out, N: N, inferenceScratch: nil, output: .initialize(bias: w(bias)))
                MatMul.forward(out: out, inp: inp, weight: w(weight), bias: nil, N: N, C: C, OC: OC, accumulate: true)
            } else {
                project(weight, bias, out: out, inp: inp, C: C, OC: OC)
                adapterForward(l, kind, inp: inp, out: out, N: N, inferenceScratch: adapterScratch)
            }
        }
        LayerNorm.forward(out: x.normalized, mean: x.ln1Mean, rstd: x.ln1Rstd, inp: input,
                          weight: w(.ln1Weight), bias: w(.ln1Bias), N: N, C: C, eps: eps)
        project(.attention, .attnWeight, .attnBias, out: x.qkv, inp: x.normalized.readOnly, C: C, OC: 3 * C)
        switch attention {
        case let .full(statistics, keyMask, scratch, dropout):
            Attention.forward(out: x.atty, statistics: statistics, qkv: x.qkv.readOnly, keyMask: keyMask, scratch: scratch,
                              B: B, T: T, C: C, NH: NH, scale: attentionScale(layer: l), dropout: dropout, dropoutSeed: site(1))
        case let .cached(keys, values, keyMask, scratch, capacity, position):
            CachedAttention.forward(out: x.atty, qkv: x.qkv.readOnly, keyCache: keys, valueCache: values, keyMask: keyMask, scratch: scratch,
                                    B: B, T: T, C: C, NH: NH, maxT: capacity, position: position, scale: attentionScale(layer: l))
        }
        project(.attentionProjection, .attnProjWeight, .attnProjBias, out: x.projected, inp: x.atty.readOnly, C: C, OC: C)
        if pResid > 0 { Dropout.forward(out: x.projected, inp: x.projected.readOnly, N: N * C, p: pResid, seed: site(2)) }
        Residual.forward(out: x.residual2, a: input, b: x.projected.readOnly, N: N * C)
        LayerNorm.forward(out: x.normalized, mean: x.ln2Mean, rstd: x.ln2Rstd, inp: x.residual2.readOnly,
                          weight: w(.ln2Weight), bias: w(.ln2Bias), N: N, C: C, eps: eps)
        project(.feedForward, .fcWeight, .fcBias, out: x.fch, inp: x.normalized.readOnly, C: C, OC: F)
        activation.forward(out: x.activated, inp: x.fch.readOnly, N: N * F)
        project(.feedForwardProjection, .fcProjWeight, .fcProjBias, out: x.projected, inp: x.activated.readOnly, C: F, OC: C)
        if pResid > 0 { Dropout.forward(out: x.projected, inp: x.projected.readOnly, N: N * C, p: pResid, seed: site(3)) }
        Residual.forward(out: x.residual3, a: x.residual2.readOnly, b: x.projected.readOnly, N: N * C)
    }

    // MARK: - Backward

    /// Accumulates d(lossScale · mean loss)/d(parameters) of the last forward into `gradients` (the tied wte
    /// receives both the embedding's and the output layer's share). `lossScale` weights micro-batches in
    /// gradient accumulation (its label tokens over the whole step's); nil means the scale given to `forward`,
    /// or 1. Precondition: the last forward had labels (and, if it was given a loss scale, this is the same).
    public func backward(lossScale: Float? = nil) {
        precondition(hasTargets, "backward() needs a forward with labels")
        guard let tb = table, let A = acts else { return }
        let G = gradientActivations(tb)
        let B = tb.B, T = tb.T, C = tb.C, NH = tb.NH, L = tb.L, F = tb.F, N = B * T
        let P = parameters, D = gradients
        let tokens = UnsafeBufferPointer(start: ids, count: N)
        let targets = UnsafeBufferPointer(start: ids + N, count: N)
        let mask: UnsafeBufferPointer<Int32>? = hasMask ? UnsafeBufferPointer(start: ids + 2 * N, count: N) : nil
        func a(_ g: ActivationTable.Global) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(A[tb.range(g)]) }
        func a(_ l: Int, _ x: ActivationTable.Layer) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(A[tb.range(layer: l, x)]) }
        func zeroed(_ x: ActivationTable.Grad) -> UnsafeMutableBufferPointer<Float> {
            let b = G[tb.range(x)]; b.update(repeating: 0); return b
        }
        // A buffer the next kernel overwrites whole (never read before it is written).
        func overwritten(_ x: ActivationTable.Grad) -> UnsafeMutableBufferPointer<Float> { G[tb.range(x)] }
        func w(_ x: GPT2ParameterLayout.GlobalTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(x)) }
        func w(_ l: Int, _ x: GPT2ParameterLayout.LayerTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(layer: l, x)) }
        func dw(_ x: GPT2ParameterLayout.GlobalTensor) -> UnsafeMutableBufferPointer<Float>? { globalGradients[x.rawValue].map { D[$0] } }
        func dw(_ l: Int, _ x: GPT2ParameterLayout.LayerTensor) -> UnsafeMutableBufferPointer<Float>? { layerGradients[l][x.rawValue].map { D[$0] } }
        // A projection's backward with its adapter's; dinp is overwritten. Without adapter dropout the adapter writes
        // its share of dinp first and the base product accumulates onto it; with it, the other way round.
        func projectionBackward(_ l: Int, _ kind: LoRAModuleKind, _ weight: GPT2ParameterLayout.LayerTensor,
                                _ bias: GPT2ParameterLayout.LayerTensor, dinp: UnsafeMutableBufferPointer<Float>?,
                                dout: UnsafeBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, C: Int, OC: Int) {
            let adapterFirst = dinp != nil && hasTrainingAdapter(l, kind) && dropoutP(adapter?.configuration.dropout ?? 0) == 0
            if adapterFirst { adapterBackward(l, kind, inp: inp, dout: dout, dinp: dinp, N: N, initializeDinp: true) }
            MatMul.backward(dinp: dinp, dweight: dw(l, weight), dbias: dw(l, bias), dout: dout, inp: inp, weight: w(l, weight),
                            N: N, C: C, OC: OC, accumulate: adapterFirst)
            if !adapterFirst { adapterBackward(l, kind, inp: inp, dout: dout, dinp: dinp, N: N) }
        }
        guard targetCount > 0 else { return }

        let pEmbd = dropoutP(config.embeddingDropout), pResid = dropoutP(config.residualDropout), pAttn = dropoutP(config.attentionDropout)
        let scratch = A[tb.range(.scratch)]
        let dlnf = G[tb.range(.dlnf)] // (N, C)
        if let fused = fusedHeadScale {
            // The forward already turned the logits into dlnf and wte's share (see `forward(lossScale:)`).
            precondition(lossScale == nil || lossScale == fused, "backward(lossScale: \(lossScale ?? 1)) after forward(lossScale: \(fused))")
        } else {
            let scale = (lossScale ?? 1) / Float(targetCount)
            if logitsAreComplete {
                outputLayer(rows: N, inp: a(.lnf), targets: targets, work: G[tb.range(.dlogits)], logits: a(.logits),
                            losses: nil, logsumexp: A[tb.range(.logsumexp)], gradient: (scale, dlnf))
            } else {
                // Scored rows only (see runForward), their logits recomputed; the other rows' dlnf stays 0.
                let M = scoredRows.count, dgathered = G[tb.range(.dtemp)]
                outputLayer(rows: M, inp: a(.lnfScored), targets: UnsafeBufferPointer(start: ids + 3 * N, count: M), work: G[tb.range(.dlogits)],
                            logits: nil, losses: nil, logsumexp: A[tb.range(.logsumexp)], gradient: (scale, dgathered))
                scatterScoredRows(dgathered.readOnly, into: dlnf, C: C)
            }
        }
        let dres = zeroed(.dresidual) // (N, C): d(residual stream) flowing down
        let lastResidual = L > 0 ? a(L - 1, .residual3) : a(.encoded)
        LayerNorm.backward(dinp: dres, dweight: dw(.lnfWeight), dbias: dw(.lnfBias), dout: dlnf.readOnly, inp: lastResidual,
                           weight: w(.lnfWeight), mean: a(.lnfMean), rstd: a(.lnfRstd), N: N, C: C)
        for l in stride(from: L - 1, through: lowestTrainedLayer, by: -1) {
            let residual = l > 0 ? a(l - 1, .residual3) : a(.encoded)
            // MLP: residual3 = residual2 + dropout(fchAct · Wproj + b)
            var dproj = dres.readOnly
            if pResid > 0 {
                // Dropout's backward into an empty buffer is its forward: keep · scale · dout.
                let t = overwritten(.dtemp)
                Dropout.forward(out: t, inp: dres.readOnly, N: N * C, p: pResid, seed: siteSeed(3 + 3 * l))
                dproj = t.readOnly
            }
            // The activation's output, recomputed into dfch's buffer (free until dfch is formed below).
            let fchAct = G[tb.range(.dfch)]
            activation.forward(out: fchAct, inp: a(l, .fch), N: N * F)
            let dfchAct = overwritten(.dfchAct) // (N, F)
            projectionBackward(l, .feedForwardProjection, .fcProjWeight, .fcProjBias, dinp: dfchAct, dout: dproj,
                               inp: fchAct.readOnly, C: F, OC: C)
            let dfch = zeroed(.dfch) // (N, F)
            activation.backward(dinp: dfch, inp: a(l, .fch), dout: dfchAct.readOnly, N: N * F)
            // ln2's output, recomputed into dtemp (free: dproj is no longer read).
            let ln2 = G[tb.range(.dtemp)]
            LayerNorm.recompute(out: ln2, inp: a(l, .residual2), mean: a(l, .ln2Mean), rstd: a(l, .ln2Rstd),
                                weight: w(l, .ln2Weight), bias: w(l, .ln2Bias), N: N, C: C)
            let dln = overwritten(.dln) // (N, C)
            projectionBackward(l, .feedForward, .fcWeight, .fcBias, dinp: dln, dout: dfch.readOnly, inp: ln2.readOnly, C: C, OC: F)
            LayerNorm.backward(dinp: dres, dweight: dw(l, .ln2Weight), dbias: dw(l, .ln2Bias), dout: dln.readOnly,
                               inp: a(l, .residual2), weight: w(l, .ln2Weight), mean: a(l, .ln2Mean), rstd: a(l, .ln2Rstd), N: N, C: C)
            // attention: residual2 = residual + dropout(atty · Wproj + b)
            dproj = dres.readOnly
            if pResid > 0 {
                let t = overwritten(.dtemp)
                Dropout.forward(out: t, inp: dres.readOnly, N: N * C, p: pResid, seed: siteSeed(2 + 3 * l))
                dproj = t.readOnly
            }
            let datty = overwritten(.datty) // (N, C)
            projectionBackward(l, .attentionProjection, .attnProjWeight, .attnProjBias, dinp: datty, dout: dproj,
                               inp: a(l, .atty), C: C, OC: C)
            let dqkv = zeroed(.dqkv) // (N, 3C)
            Attention.backward(dqkv: dqkv, dout: datty.readOnly, qkv: a(l, .qkv), statistics: a(l, .attStatistics), keyMask: mask, scratch: scratch,
                               B: B, T: T, C: C, NH: NH, scale: attentionScale(layer: l), dropout: pAttn, dropoutSeed: siteSeed(1 + 3 * l))
            // ln1's output, recomputed into dtemp (free again after the projection's backward).
            let ln1 = G[tb.range(.dtemp)]
            LayerNorm.recompute(out: ln1, inp: residual, mean: a(l, .ln1Mean), rstd: a(l, .ln1Rstd),
                                weight: w(l, .ln1Weight), bias: w(l, .ln1Bias), N: N, C: C)
            // The gradient below ln_1 of the lowest trained block reaches only frozen tensors (unless the embeddings or
            // ln_1 itself are trained): a LoRA run skips that block's input-gradient product and ln_1's backward.
            let belowIsTrained = l > lowestTrainedLayer || (l == 0 && (dw(.wte) != nil || dw(.wpe) != nil))
            let ln1Gradient = belowIsTrained || dw(l, .ln1Weight) != nil || dw(l, .ln1Bias) != nil
            let dln1: UnsafeMutableBufferPointer<Float>? = ln1Gradient ? overwritten(.dln) : nil
            projectionBackward(l, .attention, .attnWeight, .attnBias, dinp: dln1, dout: dqkv.readOnly, inp: ln1.readOnly, C: C, OC: 3 * C)
            if let dln1 {
                LayerNorm.backward(dinp: dres, dweight: dw(l, .ln1Weight), dbias: dw(l, .ln1Bias), dout: dln1.readOnly,
                                   inp: residual, weight: w(l, .ln1Weight), mean: a(l, .ln1Mean), rstd: a(l, .ln1Rstd), N: N, C: C)
            }
        }
        guard lowestTrainedLayer == 0, dw(.wte) != nil || dw(.wpe) != nil else { return }
        var dencoded = dres.readOnly
        if pEmbd > 0 {
            let t = zeroed(.dtemp)
            Dropout.backward(dinp: t, dout: dres.readOnly, N: N * C, p: pEmbd, seed: siteSeed(0))
            dencoded = t.readOnly
        }
        Encoder.backward(dwte: dw(.wte), dwpe: dw(.wpe), dout: dencoded, tokens: tokens, B: B, T: T, C: C)
    }
}
