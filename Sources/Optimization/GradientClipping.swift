import Kernels

/// Floats per partial sum of `gradientNorm`: the sum over each block is computed separately and the
/// block sums are added in order, so the result does not depend on how many threads ran.
private let normBlock = 1 << 16

/// The global L2 norm of `gradients`: squares summed in Float over 1024-float runs per lane, runs
/// accumulated in Double, fixed-size blocks summed in order (deterministic, both cores).
public func gradientNorm(_ gradients: UnsafeBufferPointer<Float>) -> Double {
    guard let g = gradients.baseAddress, gradients.count > 0 else { return 0 }
    let n = gradients.count
    let blocks = (n + normBlock - 1) / normBlock
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { out in
        guard let o = out.baseAddress else { return }
        Parallel.forEachChunk(count: blocks, minimumCount: 4) { _, range in
            for b in range {
                let lo = b * normBlock, hi = min(n, lo + normBlock)
                o[b] = sumOfSquares(g + lo, hi - lo)
            }
        }
    }
    var s = 0.0
    for p in partial { s += p }
    return s.squareRoot()
}

@inline(__always)
private func sumOfSquares(_ x: UnsafePointer<Float>, _ count: Int) -> Double {
    let W = 16, run = 1024
    let raw = UnsafeRawPointer(x)
    var total = 0.0, i = 0
    while i + W <= count {
        let end = min(count - (count - i) % W, i + run)
        var acc = SIMD16<Float>(repeating: 0)
        while i < end { let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self); acc += v * v; i += W }
        for lane in 0..<W { total += Double(acc[lane]) }
    }
    while i < count { let d = Double(x[i]); total += d * d; i += 1 }
    return total
}

/// Scales `gradients` so their global L2 norm is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`:
/// `coef = min(maxNorm / (norm + 1e-6), 1)`. Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Double) -> Double {
    let norm = gradientNorm(UnsafeBufferPointer(gradients))
    let coef = min(maxNorm / (norm + 1e-6), 1)
    if coef < 1 { scaleGradients(gradients, by: Float(coef)) }
    return norm
}

/// gradients *= factor, on both cores.
public func scaleGradients(_ gradients: UnsafeMutableBufferPointer<Float>, by factor: Float) {
    guard let g = gradients.baseAddress else { return }
    Parallel.forEachChunk(count: gradients.count) { _, range in
        for i in range { g[i] *= factor }
    }
}
