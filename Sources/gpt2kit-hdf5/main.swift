// gpt2kit-hdf5: runs libhdf5 for GPT2Kit in a process of its own, so that a file that crashes or hangs
// libhdf5 takes down only this process. `KerasHDF5` in Checkpoints starts it; the protocol is described
// at `HDF5Helper`. Not meant to be run by hand.
//
//   gpt2kit-hdf5 read  [--memory-limit BYTES] [--file-size-limit BYTES] -- PATH            (weights out on fd 3)
//   gpt2kit-hdf5 write [--memory-limit BYTES] [--file-size-limit BYTES] -- PATH TEMPORARY  (weights in on fd 3)
import Checkpoints
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func fail(_ message: String) -> Never {
    let text = "gpt2kit-hdf5: \(message)\nusage: gpt2kit-hdf5 read|write [--memory-limit BYTES] [--file-size-limit BYTES] -- PATH [TEMPORARY]\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(HDF5Helper.usageExitStatus)
}

/// Sets a soft and hard resource limit, or stops.
func limit(_ resource: Int32, _ value: rlim_t, _ name: String) {
    var limits = rlimit(rlim_cur: value, rlim_max: value)
    #if os(Linux)
    let status = setrlimit(__rlimit_resource_t(resource), &limits)
    #else
    let status = setrlimit(resource, &limits)
    #endif
    guard status == 0 else { fail("cannot set \(name): \(String(cString: strerror(errno)))") }
}

#if os(Linux)
let (addressSpace, fileSize, coreSize) = (Int32(RLIMIT_AS.rawValue), Int32(RLIMIT_FSIZE.rawValue), Int32(RLIMIT_CORE.rawValue))
#else
let (addressSpace, fileSize, coreSize) = (RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_CORE)
#endif

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first, command == "read" || command == "write" else { fail("expected read or write") }
arguments.removeFirst()
// A crash must not leave a core dump of a hostile file behind.
limit(coreSize, 0, "the core file size")
var memoryLimit: Int?
while let option = arguments.first, option != "--" {
    guard arguments.count >= 2, let value = rlim_t(arguments[1]), value > 0 else { fail("bad option \(option)") }
    switch option {
    case "--memory-limit":
        limit(addressSpace, value, "the memory limit")
        memoryLimit = Int(clamping: value)
    case "--file-size-limit":
        limit(fileSize, value, "the file size limit")
        signal(SIGXFSZ, SIG_IGN) // writes past the limit fail with EFBIG, as on a full disk
    default:
        fail("unknown option \(option)")
    }
    arguments.removeFirst(2)
}
guard arguments.first == "--" else { fail("expected -- before the operands") }
arguments.removeFirst()

do {
    switch (command, arguments.count) {
    case ("read", 1):
        try HDF5Helper.serveRead(path: arguments[0], to: HDF5Helper.channelDescriptor, memoryLimit: memoryLimit)
    case ("write", 2):
        try HDF5Helper.serveWrite(path: arguments[0], temporary: arguments[1], from: HDF5Helper.channelDescriptor)
    default:
        fail("wrong number of operands for \(command)")
    }
} catch {
    print(HDF5Helper.errorRecord(error))
    exit(HDF5Helper.errorExitStatus)
}
exit(0)
