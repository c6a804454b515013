import Testing
import TestSupport
@testable import Tensors

@Suite struct HalfPrecisionTests {
    @Test func f16RoundTripsEveryBitPattern() {
        for bits in 0...UInt16.max {
            let f = HalfPrecision.float(fromF16: bits)
            if f.isNaN { continue }
            #expect(HalfPrecision.f16(from: f) == bits, "bits \(bits)")
        }
    }

    @Test func f16MatchesSwiftFloat16Rounding() {
        var g = SeededGenerator(state: 42)
        for _ in 0..<200_000 {
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))
            if f.isNaN { continue }
            #if arch(x86_64) || arch(arm64)
            let expected = Float16(f).bitPattern
            #expect(HalfPrecision.f16(from: f) == expected, "value \(f)")
            #endif
        }
    }

    @Test func bf16RoundsToNearestEven() {
        #expect(HalfPrecision.bf16(from: 1.0) == 0x3F80)
        // 1 + 2^-8 is exactly halfway between 1 and 1+2^-7: ties to even (1.0)
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(HalfPrecision.bf16(from: Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfPrecision.float(fromBF16: 0x3F80) == 1.0)
        #expect(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: .nan)).isNaN)
    }

    @Test func tensorConversionAndCopyOnWrite() {
        let t = Tensor(floats: [1, 2.5, -3, 65504], shape: [2, 2])
        let h = t.converted(to: .f16)
        #expect(h.floats() == [1, 2.5, -3, 65504])
        var c = t
        c.withUnsafeMutableBytes { $0.storeBytes(of: Float(9), as: Float.self) }
        #expect(t.floats()[0] == 1)
        #expect(c.floats()[0] == 9)
    }
}
