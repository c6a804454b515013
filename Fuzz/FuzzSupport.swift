// Shared by every harness (compiled into each harness's module). Not part of the SwiftPM package.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum FuzzSupport {
    /// A fixed per-harness scratch path in $GPT2KIT_FUZZ_TMP, else /dev/shm, else $TMPDIR or /tmp. Not per
    /// process: fork mode (hdf5) starts a child per job, and one file per child would pile up in /dev/shm.
    /// scripts/fuzz.sh runs one harness at a time and removes the file afterwards.
    static func scratchPath(_ harness: String, suffix: String) -> String {
        var directory = "/tmp"
        if let env = getenv("GPT2KIT_FUZZ_TMP"), env.pointee != 0 {
            directory = String(cString: env)
        } else if access("/dev/shm", W_OK) == 0 {
            directory = "/dev/shm"
        } else if let env = getenv("TMPDIR"), env.pointee != 0 {
            directory = String(cString: env)
        }
        return "\(directory)/gpt2kit-fuzz-\(harness)\(suffix)"
    }

    /// Replaces the file at `path` with `bytes`.
    static func write(_ bytes: UnsafeRawBufferPointer, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
    }

    /// Reads every byte of `bytes` so AddressSanitizer checks the whole range.
    @inline(never)
    static func touch(_ bytes: UnsafeRawBufferPointer) -> UInt8 {
        var x: UInt8 = 0
        for b in bytes { x ^= b }
        return x
    }

    static var sink: UInt8 = 0
}
