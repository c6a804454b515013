/// The global L2 norm of `gradients`, accumulated in Double.
public func gradientNorm(_ gradients: UnsafeBufferPointer<Float>) -> Double {
    var s = 0.0
    for g in gradients { let d = Double(g); s += d * d }
    return s.squareRoot()
}

/// Scales `gradients` so their global L2 norm is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`:
/// `coef = min(maxNorm / (norm + 1e-6), 1)`. Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Double) -> Double {
    let norm = gradientNorm(UnsafeBufferPointer(gradients))
    let coef = min(maxNorm / (norm + 1e-6), 1)
    if coef < 1 {
        let c = Float(coef)
        for i in gradients.indices { gradients[i] *= c }
    }
    return norm
}
