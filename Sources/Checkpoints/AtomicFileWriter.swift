#if canImport(Glibc)
import Glibc
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let posixWrite = Darwin.write
#endif

/// Why an atomic write failed; callers wrap it in their module's error.
public struct FileWriteFailure: Error, Sendable, CustomStringConvertible {
    /// What failed and the system's reason, e.g. "cannot write '…': No space left on device".
    public var reason: String
    /// The reason.
    public var description: String { reason }
    static func system(_ what: String) -> FileWriteFailure {
        FileWriteFailure(reason: "\(what): \(String(cString: strerror(errno)))")
    }
}

/// Writes all of `bytes` to `descriptor`, retrying short and interrupted writes.
func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(FileWriteFailure) {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = posixWrite(descriptor, base + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw FileWriteFailure(reason: String(cString: strerror(errno)))
        }
        done += n
    }
}

/// Writes a file through a temporary sibling, then fsyncs and renames it over the destination, so a
/// crash leaves either the old file or the complete new one. Small writes are buffered.
///
/// This is GPT2Kit's one atomic writer: every file the library writes goes through it (the HDF5 writer
/// names its libhdf5 temporary the same way). Temporaries are named `.NAME.tmp-XXXXXX` beside the
/// destination; `AtomicFileWriter.isTemporaryName` recognises them so a later run can remove what a killed
/// one left behind.
public final class AtomicFileWriter {
    /// The destination, which appears only when `finish` renames the temporary over it.
    public let path: String
    /// The temporary sibling being written, `.NAME.tmp-XXXXXX` beside `path`.
    public private(set) var temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// Bytes written so far (including buffered ones).
    public private(set) var offset = 0
    private var isFinished = false

    /// Creates the temporary file beside `path` (mode 0666 less the umask, as a plain create).
    public init(path: String) throws(FileWriteFailure) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = ((dir.isEmpty ? "/" : dir) + "/." + base + ".tmp-XXXXXX").utf8CString
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .system("cannot create a temporary file in '\(dir)'") }
        // mkstemp creates 0600; give the file the mode a plain create would (0666 less the umask).
        let mask = umask(0)
        umask(mask)
        fchmod(fd, 0o666 & ~mask)
        self.fd = fd
        self.temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        buffer.reserveCapacity(1 << 20)
    }

    deinit { if !isFinished { abandon() } }

    /// Appends `bytes` (buffered; written out in pieces of about 1 MiB).
    public func write(_ bytes: [UInt8]) throws(FileWriteFailure) {
        buffer += bytes
        offset += bytes.count
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Appends `bytes`: small writes are buffered, 64 KiB or more are written out directly after the buffer.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileWriteFailure) {
        if bytes.count < 1 << 16 {
            buffer.append(contentsOf: bytes)
            offset += bytes.count
            if buffer.count >= 1 << 20 { try flush() }
            return
        }
        try flush()
        try writeAll(bytes)
        offset += bytes.count
    }

    private func flush() throws(FileWriteFailure) {
        if buffer.isEmpty { return }
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        try pending.withUnsafeBytes { raw in Result { () throws(FileWriteFailure) in try writeAll(raw) } }.get()
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(FileWriteFailure) {
        do { try Checkpoints.writeAll(fd, bytes) } catch { throw FileWriteFailure(reason: "cannot write '\(temporaryPath)': \(error.reason)") }
    }

    /// Overwrites bytes already written at `offset` (a header whose counts are known only at the end), after
    /// writing out what is buffered. `offset + bytes.count` must not pass the bytes written so far.
    public func rewrite(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileWriteFailure) {
        precondition(offset >= 0 && offset + bytes.count <= self.offset, "rewrite of \(bytes.count) bytes at \(offset) past \(self.offset)")
        try flush()
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, base + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("cannot write '\(temporaryPath)'")
            }
            done += n
        }
    }

    /// Flushes, fsyncs, renames over `path` and fsyncs the folder.
    public func commit() throws(FileWriteFailure) {
        try flush()
        guard fsync(fd) == 0 else { throw .system("cannot fsync '\(temporaryPath)'") }
        guard close(fd) == 0 else { fd = -1; throw .system("cannot close '\(temporaryPath)'") }
        fd = -1
        guard rename(temporaryPath, path) == 0 else { throw .system("cannot rename '\(temporaryPath)' to '\(path)'") }
        isFinished = true
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Removes the temporary file; the destination is untouched.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
        isFinished = true
    }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws(FileWriteFailure) {
        let writer = try AtomicFileWriter(path: path)
        try writer.write(bytes)
        try writer.commit()
    }

    /// Whether a directory entry name is a temporary file of an atomic write (ours, the HDF5 writer's, or
    /// Foundation's `Data.write(options: .atomic)`, which earlier versions used).
    public static func isTemporaryName(_ name: String) -> Bool {
        (name.hasPrefix(".") && name.contains(".tmp-")) || name.hasPrefix(".dat.nosync")
    }
}
