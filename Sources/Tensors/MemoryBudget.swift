#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An allocation that input asked for and this machine (or this process's `RLIMIT_AS`) cannot hold.
public struct InsufficientMemory: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the memory was for ("parameters, gradients and AdamW moments of a 1.5B-parameter model").
    public var purpose: String
    /// Bytes needed (nil: the size overflows a 64-bit integer).
    public var neededBytes: Int?
    /// Bytes the machine or the address-space limit leaves.
    public var availableBytes: Int

    /// The message `gpt2kit` prints: what needs how much, and how much the machine gives.
    public var description: String {
        let need = neededBytes.map(MemoryBudget.formatted) ?? "more bytes than a 64-bit integer holds"
        return "\(purpose) needs \(need), more than the \(MemoryBudget.formatted(availableBytes)) this machine can give "
            + "(physical memory, and the address-space limit `ulimit -v`)"
    }
}

/// Checks a large allocation against what the machine can give before making it, so that input asking for
/// too much (a config beyond memory, a huge generation batch) is refused with the figures instead of
/// aborting in the allocator.
public enum MemoryBudget {
    /// Physical memory in bytes.
    public static var physicalBytes: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return Int.max }
        return pages.multipliedReportingOverflow(by: size).overflow ? Int.max : pages * size
    }

    /// Bytes this process may still map: physical memory, bounded by `RLIMIT_AS` less the address space in use.
    public static var availableBytes: Int {
        var available = physicalBytes
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            let cap = limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
            available = min(available, max(0, cap - addressSpaceInUse))
        }
        return available
    }

    /// The process's current virtual size (first field of `/proc/self/statm`, in pages); 0 when unknown.
    static var addressSpaceInUse: Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var pages: Int = 0
        guard withUnsafeMutablePointer(to: &pages, { p in withVaList([p]) { vfscanf(file, "%ld", $0) } }) == 1 else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Throws unless `bytes` (nil: overflowed) fit in `availableBytes`.
    public static func check(bytes: Int?, for purpose: String) throws(InsufficientMemory) {
        let available = availableBytes
        guard let bytes, bytes <= available else {
            throw InsufficientMemory(purpose: purpose, neededBytes: bytes, availableBytes: available)
        }
    }

    /// The sum of products of `terms` (each a list of factors), or nil on overflow.
    public static func total(_ terms: [[Int]]) -> Int? {
        var sum = 0
        for factors in terms {
            var p = 1
            for f in factors {
                guard f >= 0 else { return nil }
                let r = p.multipliedReportingOverflow(by: f)
                if r.overflow { return nil }
                p = r.partialValue
            }
            let s = sum.addingReportingOverflow(p)
            if s.overflow { return nil }
            sum = s.partialValue
        }
        return sum
    }

    static func formatted(_ bytes: Int) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        if gib >= 1 { return "\((gib * 10).rounded() / 10) GiB" }
        return "\((Double(bytes) / Double(1 << 20) * 10).rounded() / 10) MiB"
    }
}
