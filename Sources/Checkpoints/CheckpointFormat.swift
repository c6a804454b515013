import Foundation
import Tensors

/// A weight file format, recognised by its first bytes.
public enum CheckpointFormat: String, Sendable, CaseIterable {
    /// safetensors: a little-endian header length, then a JSON header starting with `{`.
    case safetensors
    /// `torch.save`'s zip archive (PyTorch 1.6 and later): a zip archive (`PK\x03\x04`).
    case pytorchZip
    /// `torch.save`'s legacy format (`_use_new_zipfile_serialization=False`): pickles after a magic number.
    case pytorchLegacy
    /// HDF5 (`\x89HDF\r\n\x1a\n`): Keras/TensorFlow weights such as `tf_model.h5`.
    case kerasHDF5
    /// llama.cpp's GGUF: starts with `GGUF`.
    case gguf

    /// Identifies the file at `path` from its magic bytes (not its name).
    public static func detect(path: String) throws -> CheckpointFormat {
        let fd: Int32
        do { fd = try InputFile.openRegular(path).descriptor } catch {
            throw CheckpointError.cannotOpen(path: path, reason: error.reason)
        }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 16)
        let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 16) }
        head = Array(head.prefix(max(n, 0)))
        guard let format = detect(head) else { throw CheckpointError.unrecognizedFormat(path: path) }
        return format
    }

    /// Identifies a format from a file's first (up to 16) bytes.
    public static func detect(_ head: [UInt8]) -> CheckpointFormat? {
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return .pytorchZip }
        if head.starts(with: TorchCheckpointReader.legacyMagic) { return .pytorchLegacy }
        if head.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .kerasHDF5 }
        if head.starts(with: Array("GGUF".utf8)) { return .gguf }
        // safetensors: little-endian header length, then '{'.
        if head.count >= 9, head[8] == UInt8(ascii: "{") { return .safetensors }
        return nil
    }
}

/// Reads any supported weight file into a state dict with the names stored in it.
public enum CheckpointReader {
    /// Reads `path`, choosing the reader from the file's magic bytes.
    public static func read(path: String) throws -> StateDict {
        switch try CheckpointFormat.detect(path: path) {
        case .safetensors: return try SafetensorsReader.read(path: path)
        case .pytorchZip, .pytorchLegacy: return try TorchCheckpointReader.read(path: path)
        case .kerasHDF5: return try KerasHDF5.read(path: path)
        case .gguf: return try GGUF.read(path: path).stateDict()
        }
    }
}
