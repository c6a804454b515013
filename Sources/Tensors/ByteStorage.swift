#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A block of raw bytes that tensors view: owned heap memory or a read-only memory-mapped file.
///
/// Storage is immutable once shared; `Tensor` copies on write.
public final class ByteStorage: @unchecked Sendable {
    /// Where the bytes live.
    public enum Backing: Sendable {
        /// Memory this storage allocated and frees.
        case heap
        /// A memory-mapped file (or shared memory), unmapped when the storage is freed.
        case mapped
    }

    package let baseAddress: UnsafeRawPointer?
    /// Number of bytes.
    public let byteCount: Int
    /// Whether the bytes are owned heap memory or a mapping.
    public let backing: Backing
    private let mappedLength: Int
    /// A shared read-write mapping (`mapWritable(descriptor:length:)`), which `mutableBytes` may write.
    private let isWritable: Bool

    /// Allocates `byteCount` zeroed bytes (64-byte aligned).
    public init(zeroedByteCount byteCount: Int) {
        precondition(byteCount >= 0, "negative byte count \(byteCount)")
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.baseAddress = UnsafeRawPointer(p)
        self.byteCount = byteCount
        self.backing = .heap
        self.mappedLength = 0
        self.isWritable = true
    }

    /// Copies `bytes` into new owned storage.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(zeroedByteCount: bytes.count)
        if bytes.count > 0, let src = bytes.baseAddress {
            UnsafeMutableRawPointer(mutating: baseAddress!).copyMemory(from: src, byteCount: bytes.count)
        }
    }

    /// Copies an array of bytes into new owned storage.
    public convenience init(bytes: [UInt8]) {
        self.init(zeroedByteCount: bytes.count)
        bytes.withUnsafeBytes { src in
            if src.count > 0 { UnsafeMutableRawPointer(mutating: self.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: src.count) }
        }
    }

    private init(mapped: UnsafeRawPointer?, length: Int, isWritable: Bool = false) {
        self.baseAddress = mapped
        self.byteCount = length
        self.backing = .mapped
        self.mappedLength = length
        self.isWritable = isWritable
    }

    /// Maps the first `length` bytes of the file open as `descriptor` read-write and shared, so that what is
    /// written through `mutableBytes` lands in the file (the libhdf5 helper reads datasets straight into the
    /// anonymous file it hands back). The file must already be at least `length` bytes long. Returns nil and
    /// sets `errno` when it cannot be mapped.
    package static func mapWritable(descriptor fd: Int32, length: Int) -> ByteStorage? {
        precondition(length >= 0, "negative length \(length)")
        if length == 0 { return ByteStorage(mapped: nil, length: 0, isWritable: true) }
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else { return nil }
        return ByteStorage(mapped: UnsafeRawPointer(p), length: length, isWritable: true)
    }

    /// Maps a whole file read-only. Returns nil and sets `errno` when the file cannot be opened or mapped
    /// (a FIFO, device or folder is refused without blocking; see `InputFile`).
    public static func mapFile(atPath path: String) -> ByteStorage? {
        try? mapRegularFile(atPath: path)
    }

    /// Maps a whole regular file read-only, or throws why not.
    public static func mapRegularFile(atPath path: String) throws(InputFileError) -> ByteStorage {
        let (fd, _) = try InputFile.openRegular(path)
        defer { close(fd) }
        guard let storage = mapFile(descriptor: fd) else {
            throw InputFileError(path: path, reason: "cannot map: " + InputFile.systemReason())
        }
        return storage
    }

    /// Maps the whole regular file open as `descriptor` read-only (the descriptor may be closed afterwards).
    /// `prefault` asks the kernel to map every page at once (Linux `MAP_POPULATE`): faster than faulting them in
    /// one by one when all will be read and they are already in memory. Returns nil and sets `errno` when it is
    /// not a regular file or cannot be mapped.
    public static func mapFile(descriptor fd: Int32, prefault: Bool = false) -> ByteStorage? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else { errno = EISDIR; return nil }
        let size = Int(st.st_size)
        if size == 0 { return ByteStorage(mapped: nil, length: 0) }
        #if os(Linux)
        let flags = MAP_PRIVATE | (prefault ? MAP_POPULATE : 0)
        #else
        let flags = MAP_PRIVATE
        #endif
        guard let p = mmap(nil, size, PROT_READ, flags, fd, 0), p != MAP_FAILED else { return nil }
        return ByteStorage(mapped: UnsafeRawPointer(p), length: size)
    }

    /// Calls `body` with the bytes, keeping the storage alive for the call.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
    }

    /// The bytes, valid while `self` is alive.
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: baseAddress, count: byteCount) }

    /// Mutable access for owned storage that is not yet shared. Precondition: heap-backed, or a writable
    /// mapping.
    package var mutableBytes: UnsafeMutableRawBufferPointer {
        precondition(isWritable, "mapped storage is read-only")
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: baseAddress), count: byteCount)
    }

    deinit {
        switch backing {
        case .heap: UnsafeMutableRawPointer(mutating: baseAddress)?.deallocate()
        case .mapped: if let p = baseAddress { munmap(UnsafeMutableRawPointer(mutating: p), mappedLength) }
        }
    }
}
