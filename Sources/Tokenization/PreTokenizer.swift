/// GPT-2's pre-tokenizer as a hand-written scanner over UTF-8 bytes.
///
/// Splits exactly as the reference pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// does under Python's `regex` module: alternatives are tried in order at each position,
/// `\p{L}`/`\p{N}` are the Unicode general categories L* and N*, and `\s` is the Unicode
/// `White_Space` property (the 25 scalars U+0009–U+000D, U+0020, U+0085, U+00A0, U+1680,
/// U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000; not U+001C–U+001F).
/// The scanner requires valid UTF-8, which every Swift `String` is.
struct PreTokenizer {
    private let base: UnsafePointer<UInt8>
    private let end: Int
    private let classes: UnsafePointer<UInt8>
    /// Byte offset where the next piece starts.
    private(set) var position: Int

    init(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int = 0, to end: Int? = nil) {
        // An empty buffer may have a nil base; any non-nil pointer is fine as it is never read.
        base = buffer.baseAddress ?? CharacterClass.table.pointer
        self.end = end ?? buffer.count
        position = start
        classes = CharacterClass.table.pointer
    }

    /// The class and UTF-8 length of the scalar starting at byte `i`.
    @inline(__always)
    private func scalar(at i: Int) -> (UInt8, Int) {
        let b0 = base[i]
        if b0 < 0x80 { return (classes[Int(b0)], 1) }
        if b0 < 0xE0 {
            let value = (Int(b0 & 0x1F) << 6) | Int(base[i + 1] & 0x3F)
            return (classes[value], 2)
        }
        if b0 < 0xF0 {
            let value = (Int(b0 & 0x0F) << 12) | (Int(base[i + 1] & 0x3F) << 6) | Int(base[i + 2] & 0x3F)
            return (classes[value], 3)
        }
        let value = (UInt32(b0 & 0x07) << 18) | (UInt32(base[i + 1] & 0x3F) << 12)
            | (UInt32(base[i + 2] & 0x3F) << 6) | UInt32(base[i + 3] & 0x3F)
        return (CharacterClass.supplementaryClass(of: value), 4)
    }

    /// The end offset of the next piece (which starts at ``position``), or `nil` at the end.
    @inline(__always)
    mutating func next() -> Int? {
        let p = position
        guard p < end else { return nil }
        let pieceEnd = scanPiece(at: p)
        position = pieceEnd
        return pieceEnd
    }

    @inline(__always)
    private func scanPiece(at p: Int) -> Int {
        let b = base[p]
        // 's|'t|'re|'ve|'m|'ll|'d
        if b == 0x27, p + 1 < end {
            let c = base[p + 1]
            if c == 0x73 || c == 0x74 || c == 0x6D || c == 0x64 { return p + 2 }  // s t m d
            if p + 2 < end {
                let d = base[p + 2]
                if (c == 0x72 && d == 0x65) || (c == 0x76 && d == 0x65) || (c == 0x6C && d == 0x6C) {  // re ve ll
                    return p + 3
                }
            }
        }
        var (cls, length) = scalar(at: p)
        var q = p
        // The optional leading space of ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+`.
        if b == 0x20, p + 1 < end {
            let (nextClass, nextLength) = scalar(at: p + 1)
            if nextClass != CharacterClass.space {
                q = p + 1
                cls = nextClass
                length = nextLength
            }
        }
        if cls != CharacterClass.space {
            q += length
            while q < end {
                let (c, l) = scalar(at: q)
                if c != cls { break }
                q += l
            }
            return q
        }
        // \s+(?!\S)|\s+
        var last = p
        q = p
        while q < end {
            let (c, l) = scalar(at: q)
            if c != CharacterClass.space { break }
            last = q
            q += l
        }
        if q == end { return q }
        // Followed by a non-space: leave the run's last scalar to the next piece, unless it is
        // the only one (then `\s+` takes it).
        return last > p ? last : q
    }
}

/// The four classes the pre-tokenizer distinguishes.
enum CharacterClass {
    static let letter: UInt8 = 0
    static let number: UInt8 = 1
    static let space: UInt8 = 2
    static let other: UInt8 = 3

    /// Classes of all Basic Multilingual Plane scalars, indexed by scalar value; built once,
    /// never freed.
    static let table = ClassTable()

    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        if properties.isWhitespace { return space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return other
        }
    }

    @inline(never)
    static func supplementaryClass(of value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return other }
        return classify(scalar)
    }

    /// A permanent 64 Ki-entry lookup table.
    final class ClassTable: @unchecked Sendable {
        let pointer: UnsafePointer<UInt8>
        init() {
            let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x10000)
            for value in 0..<0x10000 {
                if let scalar = Unicode.Scalar(UInt32(value)) {
                    table[value] = CharacterClass.classify(scalar)
                } else {
                    table[value] = CharacterClass.other  // surrogates never occur in valid UTF-8
                }
            }
            pointer = UnsafePointer(table)
        }
    }
}
