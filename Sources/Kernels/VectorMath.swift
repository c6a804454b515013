import CKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise math written so LLVM vectorises the loops that call it: `exp` is the Cephes `expf`
/// polynomial (≤ 2 ulp on [−87, 88]) with branch-free range reduction (no calls, no trapping
/// conversions); a generic `SIMD` path would be scalarised by the standard library's generic
/// `min`/`max`/`replacing`, so only plain `+ − ×` on `SIMD16` are used for the vector sums.
// `@inlinable` on the tiny helpers: Optimization calls them in its hot loops (cross-module).
package enum VectorMath {
    package typealias Vector = SIMD16<Float>
    package static let width = 16

    /// e^x. Inputs below −87.3 give ≈ 1e-38 instead of 0 (harmless in every softmax here); inputs
    /// above 88.7 saturate at ≈ 2.5e38.
    @inlinable @inline(__always)
    package static func exp(_ x: Float) -> Float {
        let clamped = Swift.min(Swift.max(x, -87.3), 88.7)
        // k = round(x / ln 2) with the 1.5·2²³ trick: the low mantissa bits of `shifted` hold k.
        let magic: Float = 12_582_912
        let shifted = clamped * 1.442_695_04 + magic
        let k = shifted - magic
        let r = clamped - k * 0.693_359_375 + k * 2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let y = p * (r * r) + r + 1
        let kBits = shifted.bitPattern &- 0x4B40_0000
        return y * Float(bitPattern: (kBits &+ 127) &<< 23)
    }

    @inlinable @inline(__always)
    package static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    /// The largest of `p[0..<n]` (n ≥ 1), with eight running maxima so the loop vectorises.
    @inline(__always)
    package static func maximum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = (p[0], p[0], p[0], p[0], p[0], p[0], p[0], p[0])
        var i = 0
        while i + 8 <= n {
            m.0 = Swift.max(m.0, p[i]); m.1 = Swift.max(m.1, p[i + 1]); m.2 = Swift.max(m.2, p[i + 2]); m.3 = Swift.max(m.3, p[i + 3])
            m.4 = Swift.max(m.4, p[i + 4]); m.5 = Swift.max(m.5, p[i + 5]); m.6 = Swift.max(m.6, p[i + 6]); m.7 = Swift.max(m.7, p[i + 7])
            i += 8
        }
        var result = Swift.max(Swift.max(Swift.max(m.0, m.1), Swift.max(m.2, m.3)), Swift.max(Swift.max(m.4, m.5), Swift.max(m.6, m.7)))
        while i < n { result = Swift.max(result, p[i]); i += 1 }
        return result
    }

    /// Replaces `p[i]` by e^(p[i] − shift) for i < n.
    @inline(__always)
    package static func exponentiate(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) {
        for i in 0..<n { p[i] = exp(p[i] - shift) }
    }

    /// Σ p[i] for i < n: 16 lanes, then the lanes in order, then the tail (a fixed order, so the same
    /// inputs give the same sum).
    @inline(__always)
    package static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Vector(repeating: 0)
        var i = 0
        while i + width <= n { acc += load(p + i); i += width }
        var total: Float = 0
        for lane in 0..<width { total += acc[lane] }
        while i < n { total += p[i]; i += 1 }
        return total
    }

    /// Σ a[i]·b[i] for i < n in the same fixed order as `sum`.
    @inline(__always)
    package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Vector(repeating: 0)
        var i = 0
        while i + width <= n { acc += load(a + i) * load(b + i); i += width }
        var sum: Float = 0
        for lane in 0..<width { sum += acc[lane] }
        while i < n { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    @inlinable @inline(__always)
    package static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }
}

/// Splits element-wise work over the machine's cores in fixed chunks, so results never depend on
/// scheduling (each chunk's work and any per-chunk partial result is the same on every run).
package enum Parallel {
    /// Worker count: the active processor count.
    package static let workers = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Calls `body` with each of `chunks` near-equal ranges of `0..<count` (chunk starts are multiples of
    /// `alignment`), concurrently when `count` is at least `minimumCount`.
    package static func forEachChunk(count: Int, minimumCount: Int = 1 << 15, chunks requested: Int = workers,
                                     alignment: Int = 16, _ body: (Int, Range<Int>) -> Void) {
        let chunks = count >= minimumCount ? min(max(1, requested), count) : 1
        if chunks == 1 { body(0, 0 ..< count); return }
        let per = ((count + chunks - 1) / chunks + alignment - 1) / alignment * alignment
        withoutActuallyEscaping(body) { escapable in
            // Safe: every chunk touches a disjoint range, and concurrentPerform returns only when all are done.
            let work = UncheckedWork(run: escapable)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = min(count, c * per), hi = min(count, lo + per)
                work.run(c, lo ..< hi)
            }
        }
    }
}

private struct UncheckedWork: @unchecked Sendable {
    let run: (Int, Range<Int>) -> Void
}

/// Which code the C training kernels (`CKernels`) run: AVX2 + FMA where the CPU has them, else portable C. Tests run
/// the kernels both ways.
package enum TrainingKernelPath {
    /// Whether the AVX2/FMA code runs.
    package static var isVectorized: Bool { gpt2kit_training_kernels_vectorized() != 0 }

    /// Forces the portable code (true) or restores the CPU's choice (false). Process-wide; not while other threads
    /// run the kernels.
    package static func forcePortable(_ on: Bool) { gpt2kit_training_kernels_force_portable(on ? 1 : 0) }
}
