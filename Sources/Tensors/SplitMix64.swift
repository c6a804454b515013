/// SplitMix64 (Steele, Lea & Flood, 2014): GPT2Kit's one seeded stream for initialisation, data order and
/// seeding other generators (sampling uses `Xoshiro256StarStar`, seeded from this). Deterministic across
/// platforms.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    /// The generator's 64-bit state; it advances by the golden-ratio constant on every `next()`.
    public var state: UInt64

    /// A generator started at `state` (the seed).
    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in the open interval (0, 1) (never 0, so its logarithm is finite).
    @inline(__always)
    public mutating func nextOpenUnit() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }
}
