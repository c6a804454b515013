import Kernels

/// The forward activations of one (B, T) shape, as one allocation with a view per buffer (llm.c's
/// `ActivationTensors`). Shapes use llm.c letters: N = B·T rows, F the MLP width, NH heads.
///
/// Per block `l` (layer input is `encoded` for l = 0, else block l−1's `residual3`), what backward needs:
/// `ln1Mean`/`ln1Rstd` (N), `qkv` (N, 3C), `atty` (N, C) the heads' outputs before c_proj,
/// `attStatistics` (B, NH, T, 2) each attention row's maximum score and 1/Σ (the probabilities themselves are
/// recomputed in backward, see `Attention`), `residual2` (N, C), `ln2Mean`, `ln2Rstd`, `fch` (N, F) before
/// the activation, `residual3` (N, C). What backward can recompute cheaply is not kept per block: the
/// LayerNorm outputs (from the input and its mean and rstd) and the activation's output (from `fch`) live in
/// the shared `normalized` (N, C) and `activated` (N, F) while a block runs, and a projection's output before
/// the residual add (`projected`, (N, C)) is never needed again. Bitwise the same values either way.
///
/// `lnfScored` (M ≤ N, C) holds the `lnf` rows of scored positions when only those get logits; `logits` then
/// holds one chunk of `outputChunkRows` rows at a time (the output layer and loss run chunk by chunk), else
/// all (N, V). The gradient table's `dlogits` is one such chunk.
struct ActivationTable {
    enum Global: Int, CaseIterable {
        case encoded, normalized, activated, projected, lnf, lnfMean, lnfRstd, lnfScored, logits, logsumexp, losses, scratch
    }
    enum Layer: Int, CaseIterable {
        case ln1Mean, ln1Rstd, qkv, atty, attStatistics, residual2, ln2Mean, ln2Rstd, fch, residual3
    }
    /// Gradients of activations; shared by all blocks during backward.
    enum Grad: Int, CaseIterable { case dlogits, dlnf, dresidual, dtemp, dln, dqkv, datty, dfch, dfchAct }

    let B: Int, T: Int, C: Int, NH: Int, L: Int, V: Int, F: Int
    private(set) var globalOffsets: [Int] = [], globalCounts: [Int] = []
    private(set) var layerOffsets: [Int] = [], layerCounts: [Int] = []
    private(set) var layerBase = 0, layerStride = 0, forwardCount = 0
    private(set) var gradOffsets: [Int] = [], gradCounts: [Int] = [], gradCount = 0

    /// Rows of the logits held at once when not all are kept: at most about 128 MB of them.
    let outputChunkRows: Int

    /// The table of (B, T); `allLogits` keeps the whole (N, V) logits (callers that read them).
    init(config: GPT2Config, B: Int, T: Int, allLogits: Bool) {
        self.B = B; self.T = T; C = config.embeddingSize; NH = config.headCount; L = config.layerCount
        V = config.vocabularySize; F = config.feedForwardSize
        let N = B * T
        // At most about 128 MB of logits (N = 512 rows of GPT-2's vocabulary in one chunk: each chunk's product packs the
        // whole 154 MB lm head again), in near-equal chunks of a multiple of 16 rows.
        let limit = max(1, (1 << 25) / max(V, 1))
        let chunks = (N + limit - 1) / limit, even = (N + chunks - 1) / chunks
        outputChunkRows = min(N, max(1, even >= 16 ? min(limit, (even + 15) / 16 * 16) : even))
        var offset = 0
        for g in Global.allCases {
            let n: Int
            switch g {
            case .encoded, .normalized, .projected, .lnf, .lnfScored: n = N * C
            case .activated: n = N * F
            case .lnfMean, .lnfRstd, .logsumexp, .losses: n = N
            case .logits: n = (allLogits ? N : outputChunkRows) * V
            case .scratch: n = Attention.scratchCount(T: T)
            }
            globalOffsets.append(offset); globalCounts.append(n); offset += n
        }
        layerBase = offset
        var inLayer = 0
        for a in Layer.allCases {
            let n: Int
            switch a {
            case .atty, .residual2, .residual3: n = N * C
            case .ln1Mean, .ln1Rstd, .ln2Mean, .ln2Rstd: n = N
            case .qkv: n = N * 3 * C
            case .attStatistics: n = Attention.statisticsCount(B: B, T: T, NH: NH)
            case .fch: n = N * F
            }
            layerOffsets.append(inLayer); layerCounts.append(n); inLayer += n
        }
        layerStride = inLayer
        forwardCount = offset + L * inLayer
        var g = 0
        for a in Grad.allCases {
            let n: Int
            switch a {
            case .dlogits: n = outputChunkRows * V
            case .dlnf, .dresidual, .dtemp, .dln, .datty: n = N * C
            case .dqkv: n = N * 3 * C
            case .dfch, .dfchAct: n = N * F
            }
            gradOffsets.append(g); gradCounts.append(n); g += n
        }
        gradCount = g
    }

    @inline(__always) func range(_ a: Global) -> Range<Int> {
        globalOffsets[a.rawValue] ..< globalOffsets[a.rawValue] + globalCounts[a.rawValue]
    }
    @inline(__always) func range(layer l: Int, _ a: Layer) -> Range<Int> {
        let s = layerBase + l * layerStride + layerOffsets[a.rawValue]
        return s ..< s + layerCounts[a.rawValue]
    }
    @inline(__always) func range(_ a: Grad) -> Range<Int> {
        gradOffsets[a.rawValue] ..< gradOffsets[a.rawValue] + gradCounts[a.rawValue]
    }
}
