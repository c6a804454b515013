/// GPT-2's reversible map between the 256 byte values and 256 printable Unicode scalars.
///
/// Bytes that are already printable Latin-1 (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) map to themselves;
/// the other 68 map, in byte order, to U+0100, U+0101, …. Derived, not tabulated, as in
/// OpenAI's `bytes_to_unicode`.
public enum ByteEncoder {
    /// `scalars[b]` is the stand-in for byte `b`.
    public static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let isPrintable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            let value = isPrintable ? UInt32(byte) : next
            if !isPrintable { next += 1 }
            // All values are below 0x200, hence valid scalars.
            table[byte] = Unicode.Scalar(value) ?? " "
        }
        return table
    }()

    /// The byte a stand-in scalar encodes, or `nil` if the scalar is not one of the 256.
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = Int(scalar.value)
        guard value < inverse.count else { return nil }
        let byte = inverse[value]
        return byte < 0 ? nil : UInt8(byte)
    }

    /// Indexed by scalar value (all stand-ins are below 0x144); −1 where no byte maps.
    private static let inverse: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x200)
        for (byte, scalar) in scalars.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The stand-in string for raw bytes (how tokens are spelled in `vocab.json`).
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var result = String.UnicodeScalarView()
        for byte in bytes { result.append(scalars[Int(byte)]) }
        return String(result)
    }

    /// The raw bytes a stand-in string spells, or `nil` if it holds any other character.
    public static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard let byte = byte(for: scalar) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
