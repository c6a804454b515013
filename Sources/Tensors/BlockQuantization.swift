/// GGUF's Q8_0 block quantization, shared by the GGUF reader/writer and the decoding kernels: each block of
/// 32 floats is stored as an f16 scale d = max|x|/127 and 32 int8 q = round(x/d), half away from zero
/// (ggml's `quantize_row_q8_0_ref`); 34 bytes per block, little-endian.
public enum Q8_0 {
    /// Floats per block.
    public static let blockSize = 32
    /// Bytes per block: the f16 scale, then 32 int8.
    public static let bytesPerBlock = 34

    /// The blocks of `values` (count a multiple of 32) written to `out` (values.count / 32 · 34 bytes).
    public static func quantize(_ values: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawBufferPointer) {
        let n = values.count / blockSize
        precondition(values.count % blockSize == 0 && out.count >= n * bytesPerBlock, "Q8_0: \(values.count) floats, \(out.count) bytes")
        for b in 0..<n {
            var amax: Float = 0
            for j in 0..<blockSize { amax = max(amax, abs(values[b * blockSize + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            out.storeBytes(of: HalfPrecision.f16(from: d).littleEndian, toByteOffset: b * bytesPerBlock, as: UInt16.self)
            for j in 0..<blockSize {
                let q = (values[b * blockSize + j] * id).rounded(.toNearestOrAwayFromZero)
                out[b * bytesPerBlock + 2 + j] = UInt8(bitPattern: Int8(max(-128, min(127, q))))
            }
        }
    }

    /// The blocks of `values` as bytes.
    public static func quantize(_ values: UnsafeBufferPointer<Float>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count / blockSize * bytesPerBlock)
        out.withUnsafeMutableBytes { quantize(values, into: $0) }
        return out
    }

    /// ggml's `dequantize_row_q8_0`: x = d·q for every block of `blocks` into `out` (32 floats per block).
    public static func dequantize(_ blocks: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>) {
        let n = blocks.count / bytesPerBlock
        for b in 0..<n {
            let d = HalfPrecision.float(fromF16: blocks.loadUnaligned(fromByteOffset: b * bytesPerBlock, as: UInt16.self).littleEndian)
            for j in 0..<blockSize { out[b * blockSize + j] = d * Float(Int8(bitPattern: blocks[b * bytesPerBlock + 2 + j])) }
        }
    }
}
