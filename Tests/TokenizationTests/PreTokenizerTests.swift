import Testing
@testable import Tokenization

/// The pieces the scanner cuts `text` into.
func pieces(_ text: String) -> [String] {
    var text = text
    return text.withUTF8 { buffer in
        var scanner = PreTokenizer(buffer)
        var result: [String] = []
        var start = 0
        while let end = scanner.next() {
            result.append(String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self))
            start = end
        }
        return result
    }
}

@Suite("Pre-tokenizer")
struct PreTokenizerTests {
    /// Expected pieces from Python `regex` 2026.5.9 `findall` with GPT-2's pattern.
    @Test("splits as the reference regex", arguments: [
        ("Hello  world", ["Hello", " ", " world"]),
        ("   x", ["  ", " x"]),
        ("a\n\n b", ["a", "\n\n", " b"]),
        ("x'sy !'s", ["x", "'s", "y", " !'", "s"]),
        ("it's I'M we'll", ["it", "'s", " I", "'", "M", " we", "'ll"]),
        ("\t\t\tx", ["\t\t", "\t", "x"]),
        ("a \u{A0}b", ["a", " ", "\u{A0}", "b"]),
        ("12ab 3.5", ["12", "ab", " 3", ".", "5"]),
        ("  ", ["  "]),
        (" \n", [" \n"]),
        ("a\u{3000}\u{3000}b", ["a", "\u{3000}", "\u{3000}", "b"]),
        ("x\u{1C}y", ["x", "\u{1C}", "y"]),
        ("\u{301}a", ["\u{301}", "a"]),
        ("a  ", ["a", "  "]),
        ("?!  ?!", ["?!", " ", " ?!"]),
        ("", []),
    ])
    func splits(_ text: String, _ expected: [String]) {
        #expect(pieces(text) == expected)
    }

    @Test("white space is exactly Unicode White_Space, as Python regex's \\s")
    func whiteSpaceSet() {
        let listed: Set<UInt32> = [0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
        let expected = listed.union(UInt32(0x2000)...UInt32(0x200A))
        var found: Set<UInt32> = []
        for value in UInt32(0)..<0x10000 where CharacterClass.table.pointer[Int(value)] == CharacterClass.space {
            found.insert(value)
        }
        #expect(found == expected)
        #expect(found.count == 25)
    }

    @Test("letters and numbers follow the general categories, astral scalars included")
    func categories() {
        #expect(CharacterClass.classify("a") == CharacterClass.letter)
        #expect(CharacterClass.classify("ǅ") == CharacterClass.letter)  // Lt
        #expect(CharacterClass.classify("ʰ") == CharacterClass.letter)  // Lm
        #expect(CharacterClass.classify("\u{301}") == CharacterClass.other)  // Mn
        #expect(CharacterClass.classify("½") == CharacterClass.number)  // No
        #expect(CharacterClass.classify("Ⅻ") == CharacterClass.number)  // Nl
        #expect(CharacterClass.supplementaryClass(of: 0x1D7D9) == CharacterClass.number)  // 𝟙
        #expect(CharacterClass.supplementaryClass(of: 0x10400) == CharacterClass.letter)  // 𐐀
        #expect(CharacterClass.supplementaryClass(of: 0x1F600) == CharacterClass.other)  // 😀
        #expect(pieces("x𝟙𝟙 𐐀y") == ["x", "𝟙𝟙", " 𐐀y"])
    }
}
