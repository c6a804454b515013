import Testing
@testable import Tokenization

@Suite("Byte encoder")
struct ByteEncoderTests {
    @Test("covers all 256 bytes with distinct printable scalars and inverts")
    func coversAndInverts() {
        let scalars = ByteEncoder.scalars
        #expect(scalars.count == 256)
        #expect(Set(scalars).count == 256)
        for byte in 0..<256 {
            let scalar = scalars[byte]
            #expect(ByteEncoder.byte(for: scalar) == UInt8(byte), "byte \(byte)")
            #expect(!scalar.properties.isWhitespace, "byte \(byte) maps to white space")
            #expect(scalar.properties.generalCategory != .control, "byte \(byte) maps to a control")
        }
        let all = (0..<256).map { UInt8($0) }
        #expect(ByteEncoder.decode(ByteEncoder.encode(all)) == all)
    }

    @Test("matches GPT-2's bytes_to_unicode at known points")
    func knownPoints() {
        #expect(ByteEncoder.scalars[0x21] == "!")
        #expect(ByteEncoder.scalars[0x20] == "\u{120}")  // Ġ
        #expect(ByteEncoder.scalars[0x0A] == "\u{10A}")  // Ċ
        #expect(ByteEncoder.scalars[0x00] == "\u{100}")
        #expect(ByteEncoder.scalars[0xAD] == "\u{143}")  // the last stand-in
        #expect(ByteEncoder.scalars[0xAE] == "\u{AE}")
    }

    @Test("rejects characters outside the table")
    func rejectsOthers() {
        #expect(ByteEncoder.byte(for: " ") == nil)
        #expect(ByteEncoder.byte(for: "\u{144}") == nil)
        #expect(ByteEncoder.decode("a b") == nil)
        #expect(ByteEncoder.decode("ab") == [0x61, 0x62])
    }
}
