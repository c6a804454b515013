/// Bit-exact conversions between Float32 and the 16-bit float formats, round-to-nearest-even as PyTorch does.
public enum HalfPrecision {
    /// IEEE binary16 bits to Float.
    @inline(__always)
    public static func float(fromF16 h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            if mant == 0 { return Float(bitPattern: sign) }
            // subnormal: mant * 2^-24
            let v = Float(mant) * Float(bitPattern: 0x3380_0000) // 2^-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    /// Float to IEEE binary16 bits, round-to-nearest-even, overflow to infinity, NaN kept quiet.
    @inline(__always)
    public static func f16(from f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        var mant = x & 0x7F_FFFF
        if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0) }
        let e = exp - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            mant |= 0x80_0000
            let shift = UInt32(14 - e)
            let half = UInt32(1) << (shift - 1)
            var r = mant >> shift
            let rem = mant & ((UInt32(1) << shift) - 1)
            if rem > half || (rem == half && (r & 1) == 1) { r += 1 }
            return sign | UInt16(r)
        }
        var r = UInt32(e) << 10 | (mant >> 13)
        let rem = mant & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) { r += 1 } // may carry into exponent: correct
        return sign | UInt16(r)
    }

    /// bfloat16 bits to Float.
    @inline(__always)
    public static func float(fromBF16 b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Float to bfloat16 bits, round-to-nearest-even, NaN kept quiet.
    @inline(__always)
    public static func bf16(from f: Float) -> UInt16 {
        let x = f.bitPattern
        if f.isNaN { return UInt16(x >> 16) | 0x40 }
        let rounding = UInt32(0x7FFF) + ((x >> 16) & 1)
        return UInt16((x &+ rounding) >> 16)
    }
}
