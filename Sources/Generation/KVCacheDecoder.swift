import Tensors
import GPT2
import Kernels

/// Runs a `GPT2Model` incrementally through the model's own blocks (`GPT2Model.forwardBlock` with cached
/// attention): each call feeds the next tokens of every batch row, keeps their keys
/// and values per layer, and returns the logits of the last new position. The prefix is never recomputed.
///
/// One allocation holds the cache, (L, 2, B, NH, capacity, hs); another the work buffers, sized for the
/// largest step so far. A decode step (one token per row) allocates nothing. Not thread-safe.
public final class KVCacheDecoder {
    /// The model whose weights are read (not modified).
    public let model: GPT2Model
    /// Rows decoded together (fewer after `keepRows`).
    public private(set) var batchSize: Int
    /// Slots the cache holds per row: at most the model's `maxPositions`, or twice that for left-padded rows
    /// (padding takes slots but no positions).
    public let capacity: Int
    /// Rows the cache was allocated for.
    private let allocatedRows: Int
    /// The precision projections are read in.
    public let precision: WeightPrecision
    private let encoded: DecodingWeights?
    /// Positions already cached.
    public private(set) var position = 0

    private let cache: FloatBuffer
    private var work: FloatBuffer
    private var workTokens = 0 // T the work buffers are sized for
    private var tokenIDs: UnsafeMutableBufferPointer<Int32>
    /// (B, capacity): 0 where a cached position is padding; consulted only once some padding was fed.
    private var keyMask: [Int32]
    private var isPadded = false

    private let C: Int, NH: Int, L: Int, V: Int, F: Int, hs: Int

    /// The most floats one buffer (the cache, a work buffer) may hold: 2³³ (32 GiB).
    public static let maximumBufferFloats = 1 << 33

    /// A decoder for `batchSize` rows of up to `capacity` cache slots (`leftPadded`: rows will be fed padding, so
    /// slots may reach twice `maxPositions`), reading the projections in `weights` precision (re-encoded once,
    /// see `GPT2Model.decodingWeights`). Throws when a buffer would exceed `maximumBufferFloats` or the model's
    /// shapes cannot take the precision.
    public init(model: GPT2Model, batchSize: Int, capacity: Int, leftPadded: Bool = false,
                weights: WeightPrecision = .f32) throws(GenerationError) {
        let config = model.config
        if let format = weights.matrixFormat, let reason = DecodingWeights.unsupportedReason(format, config: config) {
            throw .invalidOption(name: "weights", value: weights.rawValue, expected: "usable here: \(reason)")
        }
        guard batchSize >= 1 else { throw .invalidOption(name: "batch size", value: "\(batchSize)", expected: "an integer >= 1") }
        let slotLimit = leftPadded ? 2 * config.maxPositions : config.maxPositions
        guard capacity >= 1, capacity <= slotLimit else { throw .lengthExceedsContext(maxLength: capacity, contextLength: config.maxPositions) }
        // Sizes come from the caller's batch size: check every buffer's float count before allocating.
        func product(_ xs: Int...) -> Int? {
            var p = 1
            for x in xs {
                let r = p.multipliedReportingOverflow(by: x)
                if r.overflow { return nil }
                p = r.partialValue
            }
            return p
        }
        let limit = Self.maximumBufferFloats
        let inner = config.feedForwardSize
        for (what, count) in [("key/value cache", product(config.layerCount, 2, batchSize, capacity, config.embeddingSize)),
                              ("hidden-state work buffer", product(batchSize, capacity, max(inner, 3 * config.embeddingSize))),
                              ("logits buffer", product(batchSize, config.vocabularySize))] {
            if count.map({ $0 > limit }) ?? true { throw .batchTooLarge(what: what, floats: count, limit: limit) }
        }
        let workFloats = Workspace(B: batchSize, T: capacity, C: config.embeddingSize, F: config.feedForwardSize,
                                   V: config.vocabularySize, capacity: capacity, rank: model.adapter?.configuration.rank ?? 0).count
        do {
            try MemoryBudget.check(bytes: MemoryBudget.total([[config.layerCount, 2, batchSize, capacity, config.embeddingSize, 4],
                                                              [workFloats, 4]]),
                                   for: "the key/value cache and work buffers of \(batchSize) sequences of \(capacity) tokens")
        } catch {
            throw .insufficientMemory(error)
        }
        self.model = model
        self.batchSize = batchSize
        self.allocatedRows = batchSize
        self.precision = weights
        self.encoded = weights.matrixFormat.flatMap { model.decodingWeights($0) }
        self.capacity = capacity
        C = config.embeddingSize; NH = config.headCount; L = config.layerCount
        V = config.vocabularySize; F = config.feedForwardSize; hs = config.headSize
        cache = FloatBuffer(count: L * 2 * batchSize * capacity * C)
        work = FloatBuffer(count: 0)
        tokenIDs = .allocate(capacity: 1)
        keyMask = [Int32](repeating: 1, count: batchSize * capacity)
    }

    deinit { tokenIDs.deallocate() }

    /// Forgets every cached position (the next call starts a new prompt).
    public func reset() {
        position = 0
        if isPadded { keyMask = [Int32](repeating: 1, count: batchSize * capacity); isPadded = false }
    }

    /// The key (`kind == 0`) or value (`kind == 1`) cache of `layer`, (B, NH, capacity, hs).
    private func cacheView(layer: Int, kind: Int) -> UnsafeMutableBufferPointer<Float> {
        cache.slice((layer * 2 + kind) * allocatedRows * capacity * C, batchSize * capacity * C)
    }

    /// Keeps only the rows at `rows` (ascending indices of the current rows), in that order: their caches move
    /// down, the others are forgotten, and later calls feed `rows.count` rows.
    public func keepRows(_ rows: [Int]) {
        precondition(!rows.isEmpty && zip(rows, rows.dropFirst()).allSatisfy { $0 < $1 } && rows.allSatisfy { (0..<batchSize).contains($0) },
                     "keepRows: \(rows) of \(batchSize) rows")
        let rowFloats = capacity * C
        for layer in 0..<L {
            for kind in 0..<2 {
                let view = cacheView(layer: layer, kind: kind)
                for (to, from) in rows.enumerated() where to != from {
                    _ = view[to * rowFloats ..< (to + 1) * rowFloats].update(fromContentsOf: view[from * rowFloats ..< (from + 1) * rowFloats])
                }
            }
        }
        for (to, from) in rows.enumerated() where to != from {
            for t in 0..<capacity { keyMask[to * capacity + t] = keyMask[from * capacity + t] }
        }
        batchSize = rows.count
    }

    /// Work buffer offsets for `T` positions per row.
    private struct Workspace {
        let residual: Range<Int>, ln: Range<Int>, qkv: Range<Int>, atty: Range<Int>, proj: Range<Int>
        let fch: Range<Int>, fchAct: Range<Int>, mean: Range<Int>, rstd: Range<Int>, scratch: Range<Int>
        let lastHidden: Range<Int>, logits: Range<Int>, adapter: Range<Int>, count: Int
        init(B: Int, T: Int, C: Int, F: Int, V: Int, capacity: Int, rank: Int) {
            var offset = 0
            func take(_ n: Int) -> Range<Int> { defer { offset += n }; return offset ..< offset + n }
            let N = B * T
            residual = take(N * C); ln = take(N * C); qkv = take(N * 3 * C); atty = take(N * C); proj = take(N * C)
            fch = take(N * F); fchAct = take(N * F); mean = take(N); rstd = take(N)
            scratch = take(T * capacity); lastHidden = take(B * C); logits = take(B * V); adapter = take(N * rank)
            count = offset
        }
    }

    /// Feeds `tokens`, (B, T) row-major with T = `tokens.count / batchSize`, at positions
    /// `position ..< position + T` of every row and returns a copy of the logits of each row's last new
    /// position, (B, V) row-major. `attentionMask` (B, T) marks padding (0) among the new positions, as
    /// transformers' `attention_mask`; `positionIDs` (B, T) are the rows' own positions (left padding).
    /// - Throws: `GenerationError.invalidOption` for ids outside the vocabulary, counts that are not (B, T),
    ///   or positions past the cache's capacity.
    public func append(_ tokens: [TokenID], attentionMask: [Int32]? = nil, positionIDs: [Int32]? = nil) throws(GenerationError) -> [Float] {
        let B = batchSize
        guard B > 0, !tokens.isEmpty, tokens.count % B == 0 else {
            throw .invalidOption(name: "tokens", value: "\(tokens.count) ids", expected: "a multiple of the batch size \(B)")
        }
        let T = tokens.count / B
        guard position + T <= capacity else {
            throw .invalidOption(name: "tokens", value: "positions \(position)..<\(position + T)", expected: "at most the capacity \(capacity)")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= V }) {
            throw .invalidOption(name: "tokens", value: "\(bad)", expected: "ids in 0..<\(V)")
        }
        for (name, values) in [("attentionMask", attentionMask), ("positionIDs", positionIDs)] {
            guard let values else { continue }
            guard values.count == tokens.count else {
                throw .invalidOption(name: name, value: "\(values.count) values", expected: "\(tokens.count), one per token")
            }
        }
        if let positionIDs, let bad = positionIDs.first(where: { $0 < 0 || Int($0) >= model.config.maxPositions }) {
            throw .invalidOption(name: "positionIDs", value: "\(bad)", expected: "positions in 0..<\(model.config.maxPositions)")
        }
        let ids = tokens.map { Int32($0) }
        return ids.withUnsafeBufferPointer { ids in
            attentionMask.withUnsafeBufferPointerIfPresent { mask in
                positionIDs.withUnsafeBufferPointerIfPresent { positions in
                    Array(append(ids, T: T, attentionMask: mask, positionIDs: positions))
                }
            }
        }
    }

    /// Feeds `tokens`, (B, T) row-major, at positions `position ..< position + T` of every row and returns
    /// the logits of each row's last new position, (B, V); the buffer stays valid until the next call.
    /// `attentionMask` (B, T) marks padding (0) among the new positions: later positions never attend to them,
    /// as transformers' `attention_mask`; `positionIDs` (B, T) are the rows' own positions (left padding),
    /// else `position + t`. Precondition: ids in the vocabulary, positions below `n_positions` and
    /// `position + T <= capacity` (callers validate input first).
    package func append(_ tokens: UnsafeBufferPointer<Int32>, T: Int, attentionMask: UnsafeBufferPointer<Int32>? = nil,
                        positionIDs: UnsafeBufferPointer<Int32>? = nil) -> UnsafeMutableBufferPointer<Float> {
        let B = batchSize, C = C, V = V, F = F, N = B * T
        precondition(T >= 1 && tokens.count == N, "\(tokens.count) token ids for (B, T) = (\(B), \(T))")
        precondition(position + T <= capacity, "positions \(position)..<\(position + T) exceed cache capacity \(capacity)")
        let rank = model.adapter?.configuration.rank ?? 0
        if T > workTokens {
            work = FloatBuffer(count: Workspace(B: B, T: T, C: C, F: F, V: V, capacity: capacity, rank: rank).count)
            workTokens = T
            tokenIDs.deallocate()
            tokenIDs = .allocate(capacity: N)
        }
        if let attentionMask {
            precondition(attentionMask.count == N, "\(attentionMask.count) mask values for (B, T) = (\(B), \(T))")
            for b in 0..<B {
                for t in 0..<T where attentionMask[b * T + t] == 0 {
                    keyMask[b * capacity + position + t] = 0
                    isPadded = true
                }
            }
        }
        let ws = Workspace(B: B, T: T, C: C, F: F, V: V, capacity: capacity, rank: rank)
        let W = work, P = model.parameters, eps = Float(model.config.layerNormEpsilon)
        func w(_ g: GPT2ParameterLayout.GlobalTensor) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(P.view(g)) }
        let ids = UnsafeBufferPointer(rebasing: tokenIDs[0..<N])
        _ = UnsafeMutableBufferPointer(rebasing: tokenIDs[0..<N]).update(fromContentsOf: tokens)

        let residual = W[ws.residual]
        let buffers = GPT2Model.BlockBuffers(ln1Mean: W[ws.mean], ln1Rstd: W[ws.rstd], ln2Mean: W[ws.mean], ln2Rstd: W[ws.rstd],
                                             normalized: W[ws.ln], qkv: W[ws.qkv], atty: W[ws.atty], projected: W[ws.proj],
                                             residual2: residual, fch: W[ws.fch], activated: W[ws.fchAct], residual3: residual)
        let scratch = W[ws.scratch.lowerBound ..< ws.scratch.lowerBound + CachedAttention.scratchCount(T: T, position: position)]
        Encoder.forward(out: residual, tokens: ids, wte: w(.wte), wpe: w(.wpe), B: B, T: T, C: C, positionOffset: position, positions: positionIDs)
        keyMask.withUnsafeBufferPointer { mask in
            for l in 0..<L {
                model.forwardBlock(l, input: residual.readOnly, into: buffers, B: B, T: T,
                                   attention: .cached(keys: cacheView(layer: l, kind: 0), values: cacheView(layer: l, kind: 1),
                                                      keyMask: isPadded ? mask : nil, scratch: scratch, capacity: capacity, position: position),
                                   residualDropout: 0, dropoutSeed: 0, adapterScratch: W[ws.adapter], weights: encoded)
            }
        }
        // final layer norm and logits only for each row's last position
        let last = W[ws.lastHidden]
        for b in 0..<B {
            let row = (b * T + T - 1) * C
            _ = UnsafeMutableBufferPointer(rebasing: last[b * C ..< (b + 1) * C])
                .update(fromContentsOf: UnsafeBufferPointer(rebasing: residual[row ..< row + C]))
        }
        let lnLast = W[ws.ln.lowerBound ..< ws.ln.lowerBound + B * C]
        LayerNorm.forward(out: lnLast, mean: W[ws.mean.lowerBound ..< ws.mean.lowerBound + B], rstd: W[ws.rstd.lowerBound ..< ws.rstd.lowerBound + B],
                          inp: last.readOnly, weight: w(.lnfWeight), bias: w(.lnfBias), N: B, C: C, eps: eps)
        let logits = W[ws.logits]
        if let encoded {
            encoded.outputLayer(out: logits, inp: lnLast.readOnly, N: B)
        } else {
            MatMul.forwardFewRows(out: logits, inp: lnLast.readOnly, weight: w(.wte), bias: nil, N: B, C: C, OC: V, layout: .outputMajor)
        }
        position += T
        return logits
    }
}
