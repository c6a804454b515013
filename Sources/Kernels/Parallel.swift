import CKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
