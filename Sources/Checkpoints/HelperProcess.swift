import CPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a helper executable with `posix_spawn` (no shell): standard input from `/dev/null`, standard output
/// and error collected through pipes, one extra descriptor shared as descriptor 3, every other descriptor
/// closed; the process is killed with SIGKILL when it outlives its wall-clock limit.
struct HelperProcess {
    /// How the process ended.
    enum Termination: Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Killed by us at the wall-clock limit.
        case timedOut
    }

    /// The termination and the first `outputLimit` bytes of each output stream.
    struct Outcome {
        var termination: Termination
        var standardOutput: [UInt8]
        var standardError: [UInt8]
    }

    /// The process could not be started (or waited for).
    struct Failure: Error {
        var reason: String
        static func system(_ what: String, _ code: Int32 = errno) -> Failure {
            Failure(reason: "\(what): \(String(cString: strerror(code)).lowercased())")
        }
    }

    var executable: String
    var arguments: [String]
    /// Becomes descriptor 3 in the child.
    var sharedDescriptor: Int32
    /// Wall-clock limit in seconds.
    var timeout: Double
    /// Bytes kept of each output stream; the rest is read and dropped. (An error record names objects of the
    /// file, whose names can be up to 64 KiB each.)
    var outputLimit = 1 << 22

    func run() throws(Failure) -> Outcome {
        // Pipes and the shared descriptor are close-on-exec, and the descriptors the child gets are moved to 10
        // and above, so that the dup2 actions below never read a descriptor an earlier one replaced (a host
        // with closed standard streams gets pipes as 0-2) or target their own source (dup2 onto itself would
        // keep close-on-exec set).
        var output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard gpt2kit_pipe_cloexec(&output) == 0 else { throw .system("pipe") }
        defer { output.forEach { if $0 >= 0 { close($0) } } }
        guard gpt2kit_pipe_cloexec(&errors) == 0 else { throw .system("pipe") }
        defer { errors.forEach { if $0 >= 0 { close($0) } } }
        output[1] = Self.movedHigh(output[1])
        errors[1] = Self.movedHigh(errors[1])
        guard output[1] >= 0, errors[1] >= 0 else { throw .system("dup") }
        let shared = fcntl(sharedDescriptor, F_DUPFD_CLOEXEC, 10)
        guard shared >= 0 else { throw .system("dup") }
        defer { close(shared) }

        var actions = posix_spawn_file_actions_t()
        guard posix_spawn_file_actions_init(&actions) == 0 else { throw .system("posix_spawn_file_actions_init") }
        defer { posix_spawn_file_actions_destroy(&actions) }
        var status = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if status == 0 { status = posix_spawn_file_actions_adddup2(&actions, output[1], 1) }
        if status == 0 { status = posix_spawn_file_actions_adddup2(&actions, errors[1], 2) }
        if status == 0 { status = posix_spawn_file_actions_adddup2(&actions, shared, 3) }
        if status == 0 {
            let closing = gpt2kit_spawn_add_close_from(&actions, 4)
            status = closing == ENOSYS ? 0 : closing
        }
        guard status == 0 else { throw .system("posix_spawn_file_actions", status) }

        // Default signal dispositions and an empty mask in the child, whatever the host process set.
        var attributes = posix_spawnattr_t()
        guard posix_spawnattr_init(&attributes) == 0 else { throw .system("posix_spawnattr_init") }
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), empty = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        sigemptyset(&empty)
        status = posix_spawnattr_setsigdefault(&attributes, &defaults)
        if status == 0 { status = posix_spawnattr_setsigmask(&attributes, &empty) }
        if status == 0 { status = posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) }
        guard status == 0 else { throw .system("posix_spawnattr", status) }

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        guard argv.allSatisfy({ $0 != nil }) else { throw .system("strdup", ENOMEM) }
        let start = Self.now()
        var pid: pid_t = 0
        status = posix_spawn(&pid, executable, &actions, &attributes, argv + [nil], environ)
        guard status == 0 else { throw .system("cannot start '\(executable)'", status) }
        close(output[1]); output[1] = -1
        close(errors[1]); errors[1] = -1

        let deadline = start + max(timeout, 0)
        var collected: [[UInt8]] = [[], []]
        var pending = [output[0], errors[0]]
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        // Drain both pipes until they close or the deadline passes.
        while pending.contains(where: { $0 >= 0 }) {
            let remaining = deadline - Self.now()
            guard remaining > 0 else { return Self.killed(pid, collected) }
            var polled = pending.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polled, nfds_t(polled.count), Int32(min(remaining * 1000 + 1, 60_000)))
            if ready < 0 {
                if errno == EINTR { continue }
                let failure = Failure.system("poll")
                _ = Self.killed(pid, collected)
                throw failure
            }
            for index in polled.indices where polled[index].fd >= 0 && polled[index].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { read(polled[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    let room = max(0, outputLimit - collected[index].count)
                    collected[index] += chunk.prefix(min(count, room))
                } else if count == 0 || errno != EINTR && errno != EAGAIN {
                    pending[index] = -1
                }
            }
        }
        // Both pipes closed: the process is exiting (or closed them and carries on until the deadline).
        var delay: UInt32 = 200
        while true {
            var waitStatus: Int32 = 0
            let reaped = waitpid(pid, &waitStatus, WNOHANG)
            if reaped == pid {
                return Outcome(termination: Self.termination(waitStatus), standardOutput: collected[0], standardError: collected[1])
            }
            if reaped < 0, errno != EINTR {
                let failure = Failure.system("waitpid")
                _ = Self.killed(pid, collected)
                throw failure
            }
            if Self.now() >= deadline { return Self.killed(pid, collected) }
            usleep(delay)
            delay = min(delay * 2, 20_000)
        }
    }

    /// A close-on-exec copy of `descriptor` numbered 10 or above, or -1 with `errno` set; `descriptor` is
    /// closed either way.
    private static func movedHigh(_ descriptor: Int32) -> Int32 {
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 10)
        let error = errno
        close(descriptor)
        errno = error
        return copy
    }

    /// Kills and reaps `pid`, which ran out of time.
    private static func killed(_ pid: pid_t, _ collected: [[UInt8]]) -> Outcome {
        _ = kill(pid, SIGKILL)
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0, errno == EINTR {}
        return Outcome(termination: .timedOut, standardOutput: collected[0], standardError: collected[1])
    }

    /// Decodes a `waitpid` status (the WIFEXITED/WTERMSIG macros Swift does not import).
    private static func termination(_ status: Int32) -> Termination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
