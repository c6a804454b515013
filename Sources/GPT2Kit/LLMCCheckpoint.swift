#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// llm.c's GPT-2 checkpoint (`train_gpt2.py` `write_model`, read by `train_gpt2.c` `gpt2_build_from_checkpoint`):
/// a header of 256 little-endian int32 (magic 20240326, version 3 = fp32 or 5 = bf16, max_seq_len, vocab_size,
/// num_layers, num_heads, channels, padded_vocab_size), then wte padded to the padded vocabulary, wpe, and per
/// kind stacked over layers: ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb,
/// then lnfw, lnfb. Linear weights are (out, in): Hugging Face's Conv1D (in, out) transposed.
public enum LLMCCheckpoint {
    /// The header's first int32, which marks an llm.c model checkpoint.
    public static let magic: Int32 = 20240326
    /// The header's length in int32 (1024 bytes).
    public static let headerInts = 256

    /// The element type of the weights.
    public enum Precision: String, Sendable, CaseIterable {
        /// 32-bit floats (header version 3).
        case f32
        /// bfloat16 (header version 5): half the bytes of f32.
        case bf16
        var version: Int32 { self == .f32 ? 3 : 5 }
        var dtype: DType { self == .f32 ? .f32 : .bf16 }
    }

    /// The tensors in file order: (role, transposed from HF's layout). Layer tensors are stacked over layers.
    static let order: [(kind: GPT2ParameterLayout.LayerTensor?, global: GPT2ParameterLayout.GlobalTensor?, transposed: Bool)] = [
        (nil, .wte, false), (nil, .wpe, false),
        (.ln1Weight, nil, false), (.ln1Bias, nil, false), (.attnWeight, nil, true), (.attnBias, nil, false),
        (.attnProjWeight, nil, true), (.attnProjBias, nil, false), (.ln2Weight, nil, false), (.ln2Bias, nil, false),
        (.fcWeight, nil, true), (.fcBias, nil, false), (.fcProjWeight, nil, true), (.fcProjBias, nil, false),
        (nil, .lnfWeight, false), (nil, .lnfBias, false),
    ]

    /// llm.c pads the vocabulary to a multiple of 128 (50257 → 50304).
    public static func paddedVocabularySize(_ v: Int) -> Int { (v + 127) / 128 * 128 }

    /// Writes `parameters` as an llm.c checkpoint.
    public static func write(_ parameters: GPT2Parameters, to path: String, precision: Precision = .f32) throws {
        let c = parameters.config
        guard c.innerSize == nil || c.innerSize == 4 * c.embeddingSize else {
            throw LLMCError(path: path, problem: "llm.c's GPT-2 has n_inner = 4·n_embd; this model has \(c.feedForwardSize)")
        }
        guard c.activationFunction == "gelu_new" || c.activationFunction == "gelu_pytorch_tanh" else {
            throw LLMCError(path: path, problem: "llm.c's GPT-2 uses the tanh GELU; this model uses \(c.activationFunction)")
        }
        let vp = paddedVocabularySize(c.vocabularySize)
        var header = [Int32](repeating: 0, count: headerInts)
        header[0] = magic; header[1] = precision.version; header[2] = Int32(c.maxPositions); header[3] = Int32(c.vocabularySize)
        header[4] = Int32(c.layerCount); header[5] = Int32(c.headCount); header[6] = Int32(c.embeddingSize); header[7] = Int32(vp)
        let file: AtomicFileWriter
        do { file = try AtomicFileWriter(path: path) } catch { throw LLMCError(path: path, problem: "cannot write: \(error.reason)") }
        do {
            try header.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try file.write(raw) } }.get()
            let layout = parameters.layout
            func emit(_ values: UnsafeBufferPointer<Float>, shape: Shape, transposed: Bool, padRows: Int = 0) throws(FileWriteFailure) {
                var t = Tensor(floats: values, shape: shape)
                if transposed { t = t.transposed() }
                t = t.converted(to: precision.dtype)
                try t.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try file.write(raw) } }.get()
                if padRows > 0 { try file.write([UInt8](repeating: 0, count: padRows * c.embeddingSize * precision.dtype.byteSize)) }
            }
            for entry in order {
                if let g = entry.global {
                    let e = layout.entries.first { $0.role == .global(g) }
                    guard let e else { continue }
                    try emit(UnsafeBufferPointer(parameters.storage[e.range]), shape: e.shape, transposed: false,
                             padRows: g == .wte ? vp - c.vocabularySize : 0)
                } else if let kind = entry.kind {
                    for l in 0..<c.layerCount {
                        let e = layout.entries.first { $0.role == .layer(l, kind) }
                        guard let e else { continue }
                        try emit(UnsafeBufferPointer(parameters.view(layer: l, kind)), shape: e.shape, transposed: entry.transposed)
                    }
                }
            }
            try file.commit()
        } catch {
            file.abandon()
            throw LLMCError(path: path, problem: "cannot write: \(error.reason)")
        }
    }

    /// Whether the first bytes are an llm.c model header.
    public static func hasMagic(path: String) -> Bool {
        guard let (fd, size) = try? InputFile.openRegular(path) else { return false }
        defer { close(fd) }
        guard size >= 4 else { return false }
        var value: Int32 = 0
        let n = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 4) }
        return n == 4 && Int32(littleEndian: value) == magic
    }

    /// Reads an llm.c checkpoint: the config from its header and the tensors under Hugging Face names.
    public static func read(path: String) throws -> (config: GPT2Config, stateDict: StateDict) {
        let storage: ByteStorage
        do { storage = try ByteStorage.mapRegularFile(atPath: path) } catch { throw LLMCError(path: path, problem: "cannot open: \(error.reason)") }
        let bytes = storage.bytes
        func fail(_ problem: String) -> LLMCError { LLMCError(path: path, problem: problem) }
        guard bytes.count >= headerInts * 4 else { throw fail("truncated: \(bytes.count) bytes, less than the 1024-byte header") }
        let header = (0..<headerInts).map { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        guard header[0] == magic else { throw fail("bad magic \(header[0]) (an llm.c model file starts with \(magic))") }
        let precision: Precision
        switch header[1] {
        case 3: precision = .f32
        case 5: precision = .bf16
        default: throw fail("version \(header[1]) (3 = fp32 and 5 = bf16 are llm.c's model versions)")
        }
        let (maxT, V, L, NH, C, Vp) = (Int(header[2]), Int(header[3]), Int(header[4]), Int(header[5]), Int(header[6]), Int(header[7]))
        guard maxT > 0, V > 0, L > 0, NH > 0, C > 0, Vp >= V, C % NH == 0 else {
            throw fail("header sizes max_seq_len \(maxT), vocab \(V), layers \(L), heads \(NH), channels \(C), padded vocab \(Vp) do not describe a GPT-2")
        }
        var config = GPT2Config(vocabularySize: V, maxPositions: maxT, embeddingSize: C, layerCount: L, headCount: NH)
        config.extraKeys = [:]
        do { try config.validate(path: path) } catch { throw error }
        // The element count the header implies, checked against the file before anything is read.
        let perLayer = MemoryBudget.total([[2, C], [3 * C, C], [3 * C], [C, C], [C], [2, C], [4 * C, C], [4 * C], [C, 4 * C], [C]])
        let total = perLayer.flatMap { MemoryBudget.total([[Vp, C], [maxT, C], [L, $0], [2, C]]) }
        let size = precision.dtype.byteSize
        guard let total, let dataBytes = MemoryBudget.total([[total, size]]), dataBytes == bytes.count - headerInts * 4 else {
            throw fail("the header's sizes need \(total.map { "\($0 * size)" } ?? "an overflowing count of") bytes of weights; the file has \(bytes.count - headerInts * 4)")
        }
        let layout = GPT2ParameterLayout(config: config)
        var dict = StateDict()
        var offset = headerInts * 4
        for entry in order {
            let count = { (e: GPT2ParameterLayout.Entry) in e.shape.elementCount }
            if let g = entry.global {
                guard let e = layout.entries.first(where: { $0.role == .global(g) }) else { continue }
                let rows = g == .wte ? Vp : e.shape.dims[0]
                let full = Tensor(dtype: precision.dtype, shape: g == .wte ? [Vp, C] : e.shape, storage: storage, byteOffset: offset)
                offset += (g == .wte ? rows * C : count(e)) * size
                // Padded vocabulary rows are dropped.
                let kept = g == .wte ? Tensor(dtype: precision.dtype, shape: [V, C], storage: storage, byteOffset: full.byteOffset) : full
                dict[e.name] = kept
            } else if let kind = entry.kind {
                for l in 0..<L {
                    guard let e = layout.entries.first(where: { $0.role == .layer(l, kind) }) else { continue }
                    let storedShape = entry.transposed ? Shape(e.shape.dims.reversed()) : e.shape
                    let t = Tensor(dtype: precision.dtype, shape: storedShape, storage: storage, byteOffset: offset)
                    offset += count(e) * size
                    dict[e.name] = entry.transposed ? t.transposed() : t
                }
            }
        }
        return (config, dict)
    }
}

/// An llm.c checkpoint that cannot be read or written.
public struct LLMCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The checkpoint file.
    public var path: String
    /// What is wrong with it, or what llm.c's GPT-2 cannot represent.
    public var problem: String
    /// "path: problem", as `gpt2kit` prints it.
    public var description: String { "\(path): \(problem)" }
}
