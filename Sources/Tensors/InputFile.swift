#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an input file could not be opened or read.
public struct InputFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file named.
    public var path: String
    /// Why it could not be used: the system's message, "not a regular file (…)", or "… bytes, more than the … allowed
    /// for this file".
    public var reason: String

    /// An error about `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// "path: reason", as `gpt2kit` prints it.
    public var description: String { "\(path): \(reason)" }
}

/// The one way GPT2Kit opens a file it reads: only regular files (after following symlinks) are accepted,
/// and opening never blocks. A FIFO, socket or device where a weights, config or tokenizer file is expected
/// is refused at once instead of waiting for a writer or reading forever.
public enum InputFile {
    /// Opens `path` read-only without blocking and checks that the opened object is a regular file.
    /// Returns the descriptor (blocking mode restored, close-on-exec) and the file's size; the caller closes it.
    public static func openRegular(_ path: String) throws(InputFileError) -> (descriptor: Int32, size: Int) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw InputFileError(path: path, reason: systemReason()) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = systemReason()
            close(fd)
            throw InputFileError(path: path, reason: reason)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw InputFileError(path: path, reason: "not a regular file (\(kindName(st.st_mode)))")
        }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return (fd, Int(st.st_size))
    }

    /// Throws unless `path` names a regular file (after following symlinks). For APIs that open the file
    /// themselves (libhdf5); everything else should use `openRegular` or `readBytes`.
    public static func checkRegular(_ path: String) throws(InputFileError) {
        let (fd, _) = try openRegular(path)
        close(fd)
    }

    /// Reads a whole regular file, refusing one larger than `maximumBytes`.
    public static func readBytes(_ path: String, maximumBytes: Int = Int.max) throws(InputFileError) -> [UInt8] {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= maximumBytes else {
            throw InputFileError(path: path, reason: "\(size) bytes, more than the \(maximumBytes) allowed for this file")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw InputFileError(path: path, reason: systemReason())
            }
            if n == 0 { break }  // the file shrank while being read: keep what is there
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Whether `path` exists and is a regular file (after following symlinks), without opening it.
    public static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func systemReason() -> String {
        String(cString: strerror(errno))
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "not a file"
        }
    }
}

/// Limits on input files that have no natural bound (a JSON config or tokenizer is read whole into memory).
public enum InputLimits {
    /// `config.json`, `generation_config.json`, `added_tokens.json`, index files, `trainer_state.json`.
    public static let maximumConfigBytes = 64 << 20
    /// `vocab.json`, `merges.txt`, `tokenizer.json`.
    public static let maximumTokenizerFileBytes = 512 << 20
    /// Longest tensor name any reader accepts (GPT-2's longest is under 100 bytes; the safetensors header
    /// alone may hold 100 MB, and a long name must not make loading slow).
    public static let maximumTensorNameBytes = 4096
}
