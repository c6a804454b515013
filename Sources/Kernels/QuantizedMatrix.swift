import CDecode
import Tensors

/// A weight matrix held for decoding in fewer bytes than float32: IEEE half precision, or Q8_0 (GGUF's blocks
/// of 32 int8 with one f16 scale, about 8.5 bits a weight; the inputs are then quantized per block of 32 as well
/// and multiplied in integers, as llama.cpp does). Rows are outputs and columns inputs (`nn.Linear`
/// layout), so each output is one streamed row; `forward` reads every row once for all input rows, split over
/// the cores.
public final class QuantizedMatrix: @unchecked Sendable {
    /// How the weights are stored.
    public enum Format: String, Sendable, CaseIterable {
        case f16, q8_0
    }

    public let format: Format
    /// Outputs (OC).
    public let rows: Int
    /// Inputs (C).
    public let columns: Int
    private let storage: UnsafeMutableRawBufferPointer

    /// Bytes one row takes.
    public var bytesPerRow: Int { format == .f16 ? columns * 2 : columns / Q8_0.blockSize * Q8_0.bytesPerBlock }

    /// Encodes float32 weights of a C→OC projection stored in `layout` (Conv1D's (C, OC) is transposed first).
    /// Precondition for Q8_0: C is a multiple of 32.
    public init(format: Format, weight: UnsafeBufferPointer<Float>, C: Int, OC: Int, layout: MatMul.WeightLayout) {
        precondition(weight.count >= C * OC, "QuantizedMatrix: \(weight.count) floats for (\(OC), \(C))")
        precondition(format == .f16 || C % Q8_0.blockSize == 0, "Q8_0 needs inputs in whole blocks of 32, not \(C)")
        self.format = format
        rows = OC
        columns = C
        let rowBytes = format == .f16 ? C * 2 : C / Q8_0.blockSize * Q8_0.bytesPerBlock
        storage = .allocate(byteCount: max(1, OC * rowBytes), alignment: 64)
        let storage = self.storage
        Parallel.forEachChunk(count: OC, minimumCount: 64, alignment: 1) { _, range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: C) { row in
                for j in range {
                    switch layout {
                    case .outputMajor: _ = row.update(fromContentsOf: weight[j * C ..< (j + 1) * C])
                    case .inputMajor: for i in 0..<C { row[i] = weight[i * OC + j] }
                    }
                    let out = UnsafeMutableRawBufferPointer(rebasing: storage[j * rowBytes ..< (j + 1) * rowBytes])
                    switch format {
                    case .f16: for i in 0..<C { out.storeBytes(of: HalfPrecision.f16(from: row[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
                    case .q8_0: Q8_0.quantize(UnsafeBufferPointer(row), into: out)
                    }
                }
            }
        }
    }

    deinit { storage.deallocate() }

    /// out (N, OC) = inp (N, C)·Wᵀ + bias. Each weight row is read once for all N rows; rows are split over
    /// the cores when the matrix is large enough to pay for it.
    public func forward(out: UnsafeMutableBufferPointer<Float>, inp: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, N: Int) {
        let C = columns, OC = rows
        requireCount(out, N * OC, "QuantizedMatrix.forward out"); requireCount(inp, N * C, "QuantizedMatrix.forward inp")
        let o = out.ptr, x = inp.ptr
        if let bias {
            requireCount(bias, OC, "QuantizedMatrix.forward bias")
            for n in 0..<N { (o + n * OC).update(from: bias.ptr, count: OC) }
        }
        let accumulate: Int32 = bias == nil ? 0 : 1
        guard let start = storage.baseAddress else { return }
        let base = UnsafeRawPointer(start), format = self.format
        switch format {
        case .f16:
            // Split rows in multiples of 16 so each core's rows are whole cache lines of the output.
            Parallel.forEachChunk(count: OC, minimumCount: 256, alignment: 16) { _, range in
                guard !range.isEmpty else { return }
                gpt2kit_rows_f16(base.assumingMemoryBound(to: UInt16.self), x, o, C, range.lowerBound, range.upperBound, N, OC, accumulate)
            }
        case .q8_0:
            // The inputs are quantized per block of 32 too, and each block's product is an integer dot product.
            withUnsafeTemporaryAllocation(of: gpt2kit_block_q8_x.self, capacity: N * C / Q8_0.blockSize) { blocks in
                guard let xq = blocks.baseAddress else { return }
                gpt2kit_quantize_activations(x, xq, N * C)
                Parallel.forEachChunk(count: OC, minimumCount: 256, alignment: 16) { _, range in
                    guard !range.isEmpty else { return }
                    gpt2kit_rows_q8_0(base.assumingMemoryBound(to: gpt2kit_block_q8_0.self), xq, o, C, range.lowerBound, range.upperBound, N, OC, accumulate)
                }
            }
        }
    }

    /// Whether the vectorised (AVX2, FMA, F16C) kernels run on this CPU.
    public static var isVectorized: Bool { gpt2kit_decode_kernels_vectorized() != 0 }
}
