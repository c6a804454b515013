/// Open-addressing map from byte strings (at most `maximumKeyLength` bytes) to a 32-bit value;
/// keys live in one byte arena. Slots are 12 bytes and the load factor may reach 0.8, so GPT-2's
/// 50 257 tokens fit 65 536 slots (768 KiB, inside a core's L2): the lookup is memory-bound.
struct PieceTable {
    static let maximumKeyLength = Int(UInt16.max)

    private struct Slot {
        var keyOffset: UInt32 = UInt32.max  // max: empty
        var keyLength: UInt16 = 0
        var tag: UInt16 = 0
        var value: UInt32 = 0
    }

    private var slots: [Slot]
    private var keys: [UInt8] = []
    private var mask: Int
    private(set) var count = 0

    init(minimumCapacity: Int = 1024) {
        var capacity = 16
        while capacity * 4 < minimumCapacity * 5 { capacity <<= 1 }
        slots = [Slot](repeating: Slot(), count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    static func hash(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<length { h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3 }
        return h ^ (h >> 29)
    }

    /// The value stored for `bytes[0..<length]`, if any.
    @inline(__always)
    func value(for bytes: UnsafePointer<UInt8>, _ length: Int, hash: UInt64) -> UInt32? {
        let tag = UInt16(truncatingIfNeeded: hash >> 48)
        return slots.withUnsafeBufferPointer { slots in
            keys.withUnsafeBufferPointer { keys in
                var index = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let slot = slots[index]
                    if slot.keyOffset == UInt32.max { return nil }
                    if slot.tag == tag, Int(slot.keyLength) == length,
                       let keyBase = keys.baseAddress,
                       Self.equal(keyBase + Int(slot.keyOffset), bytes, length) {
                        return slot.value
                    }
                    index = (index + 1) & mask
                }
            }
        }
    }

    @inline(__always)
    private static func equal(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        for i in 0..<length where a[i] != b[i] { return false }
        return true
    }

    /// Stores `value` for the key; the key must not be present yet.
    mutating func insert(_ bytes: UnsafePointer<UInt8>, _ length: Int, hash: UInt64, value: UInt32) {
        precondition(length <= Self.maximumKeyLength, "piece of \(length) bytes exceeds \(Self.maximumKeyLength)")
        if (count + 1) * 5 > slots.count * 4 { grow() }
        let offset = UInt32(keys.count)
        keys.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index].keyOffset != UInt32.max { index = (index + 1) & mask }
        slots[index] = Slot(keyOffset: offset, keyLength: UInt16(length), tag: UInt16(truncatingIfNeeded: hash >> 48),
                            value: value)
        count += 1
    }

    @inline(never)
    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        mask = slots.count - 1
        keys.withUnsafeBufferPointer { keys in
            guard let keyBase = keys.baseAddress else { return }
            for slot in old where slot.keyOffset != UInt32.max {
                let hash = Self.hash(keyBase + Int(slot.keyOffset), Int(slot.keyLength))
                var index = Int(truncatingIfNeeded: hash) & mask
                while slots[index].keyOffset != UInt32.max { index = (index + 1) & mask }
                slots[index] = slot
            }
        }
    }
}

/// Open-addressing map from a token-id pair packed as `left << 32 | right` to the merge's
/// rank and resulting id packed as `rank << 32 | merged`.
struct MergeTable {
    private static let empty = UInt64.max
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private let shift: UInt64

    init(capacity minimum: Int) {
        var capacity = 16
        var bits: UInt64 = 4
        while capacity < minimum * 2 { capacity <<= 1; bits += 1 }
        keys = [UInt64](repeating: Self.empty, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
        shift = 64 - bits
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        (UInt64(UInt32(bitPattern: left)) << 32) | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func slot(for key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Inserts unless present; returns false if the pair already had a merge (the first rank wins).
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) -> Bool {
        let key = Self.key(left, right)
        var index = slot(for: key)
        while keys[index] != Self.empty {
            if keys[index] == key { return false }
            index = (index + 1) & mask
        }
        keys[index] = key
        values[index] = (UInt64(UInt32(bitPattern: rank)) << 32) | UInt64(UInt32(bitPattern: merged))
        return true
    }

    /// Every merge as (rank, left id, right id), in rank order.
    func rankedPairs() -> [(rank: Int32, left: Int32, right: Int32)] {
        var out: [(Int32, Int32, Int32)] = []
        for (key, value) in zip(keys, values) where key != Self.empty {
            out.append((Int32(truncatingIfNeeded: value >> 32), Int32(bitPattern: UInt32(truncatingIfNeeded: key >> 32)),
                        Int32(bitPattern: UInt32(truncatingIfNeeded: key))))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Runs `body` with a lookup function that is valid only inside it.
    @inline(__always)
    func withLookup<R>(_ body: (MergeLookup) -> R) -> R {
        keys.withUnsafeBufferPointer { keys in
            values.withUnsafeBufferPointer { values in
                body(MergeLookup(keys: keys, values: values, mask: mask, shift: shift))
            }
        }
    }
}

/// A borrowed view of a ``MergeTable`` for the BPE inner loop.
struct MergeLookup {
    let keys: UnsafeBufferPointer<UInt64>
    let values: UnsafeBufferPointer<UInt64>
    let mask: Int
    let shift: UInt64

    /// `rank << 32 | merged`, or `UInt64.max` when the pair does not merge.
    @inline(__always)
    func merge(_ left: Int32, _ right: Int32) -> UInt64 {
        let key = MergeTable.key(left, right)
        var index = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let k = keys[index]
            if k == key { return values[index] }
            if k == UInt64.max { return UInt64.max }
            index = (index + 1) & mask
        }
    }
}

/// One thread's memo of pre-token pieces already split by BPE, plus scratch space.
/// A value type passed `inout`, so the hot loop pays no class-property exclusivity checks.
struct WordCache {
    /// Pieces stop being added past this many (the cache then only serves what it holds).
    static let maximumEntries = 1 << 20
    /// Longer pieces (base64 blobs, long runs) are not memoized.
    static let maximumPieceLength = 256
    var table = PieceTable(minimumCapacity: 4096)
    var ids: [Int32] = []
    var parts: [Int32] = []
    var ranks: [UInt64] = []
}

/// The immutable byte-level BPE model: vocabulary, merge ranks and id → bytes table.
final class BPEModel: Sendable {
    /// Token bytes → id.
    let vocabulary: PieceTable
    let merges: MergeTable
    /// Id of each single-byte token.
    let byteIDs: [Int32]
    /// Bytes of token `i` are `tokenBytes[tokenOffsets[i]..<tokenOffsets[i + 1]]`.
    let tokenBytes: [UInt8]
    let tokenOffsets: [Int32]

    var count: Int { tokenOffsets.count - 1 }

    init(vocabulary: PieceTable, merges: MergeTable, byteIDs: [Int32], tokenBytes: [UInt8], tokenOffsets: [Int32]) {
        self.vocabulary = vocabulary
        self.merges = merges
        self.byteIDs = byteIDs
        self.tokenBytes = tokenBytes
        self.tokenOffsets = tokenOffsets
    }

    /// Appends the ids of `buffer[range]`, pre-tokenized and split by BPE, to `output`.
    func encodeOrdinary(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, cache: inout WordCache, into output: inout [Int]) {
        guard let base = buffer.baseAddress, !range.isEmpty else { return }
        merges.withLookup { lookup in
            var scanner = PreTokenizer(buffer, from: range.lowerBound, to: range.upperBound)
            var start = range.lowerBound
            while let end = scanner.next() {
                let piece = base + start
                let length = end - start
                start = end
                let hash = PieceTable.hash(piece, length)
                if let id = vocabulary.value(for: piece, length, hash: hash) {
                    output.append(Int(id))
                    continue
                }
                if let entry = cache.table.value(for: piece, length, hash: hash) {
                    // ids[entry] is the count, the ids follow.
                    cache.ids.withUnsafeBufferPointer { ids in
                        let first = Int(entry) + 1
                        for i in first..<(first + Int(ids[Int(entry)])) { output.append(Int(ids[i])) }
                    }
                    continue
                }
                if length <= Self.quadraticMergeLimit {
                    mergeBytes(piece, length, lookup: lookup, cache: &cache)
                } else {
                    cache.parts = Self.mergeLongPiece(piece, length, byteIDs: byteIDs, lookup: lookup)
                }
                for id in cache.parts { output.append(Int(id)) }
                if cache.table.count < WordCache.maximumEntries, length <= WordCache.maximumPieceLength {
                    let entry = UInt32(cache.ids.count)
                    cache.ids.append(Int32(cache.parts.count))
                    cache.ids.append(contentsOf: cache.parts)
                    cache.table.insert(piece, length, hash: hash, value: entry)
                }
            }
        }
    }

    /// Pieces up to this many bytes use the simple O(n²) scan; longer ones a heap.
    static let quadraticMergeLimit = 128

    /// Splits one piece by merge rank, lowest rank first and leftmost among equals; leaves
    /// the ids in `cache.parts`.
    @inline(never)
    func mergeBytes(_ piece: UnsafePointer<UInt8>, _ length: Int, lookup: MergeLookup, cache: inout WordCache) {
        cache.parts.removeAll(keepingCapacity: true)
        cache.ranks.removeAll(keepingCapacity: true)
        for i in 0..<length { cache.parts.append(byteIDs[Int(piece[i])]) }
        if length < 2 { return }
        for i in 0..<(length - 1) { cache.ranks.append(lookup.merge(cache.parts[i], cache.parts[i + 1])) }
        let remaining = cache.parts.withUnsafeMutableBufferPointer { parts in
            cache.ranks.withUnsafeMutableBufferPointer { ranks in
                var n = length
                while n > 1 {
                    var best = UInt64.max
                    var at = -1
                    for i in 0..<(n - 1) where ranks[i] >> 32 < best >> 32 {
                        best = ranks[i]
                        at = i
                    }
                    if at < 0 { break }
                    parts[at] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
                    // Remove parts[at + 1] and ranks[at] (the pair just merged).
                    if at + 2 < n {
                        for i in (at + 1)..<(n - 1) { parts[i] = parts[i + 1] }
                    }
                    if at + 1 < n - 2 {
                        for i in (at + 1)..<(n - 2) { ranks[i] = ranks[i + 1] }
                    }
                    n -= 1
                    if at > 0 { ranks[at - 1] = lookup.merge(parts[at - 1], parts[at]) }
                    if at < n - 1 { ranks[at] = lookup.merge(parts[at], parts[at + 1]) }
                }
                return n
            }
        }
        cache.parts.removeLast(length - remaining)
    }
}

extension BPEModel {
    /// The same merges as `mergeBytes` in O(n log n): a doubly linked list of parts and a
    /// min-heap of candidate pairs keyed by (rank, start offset of the left part), so the
    /// lowest rank and then the leftmost pair merges first. Stale heap entries are skipped.
    @inline(never)
    static func mergeLongPiece(_ piece: UnsafePointer<UInt8>, _ length: Int, byteIDs: [Int32], lookup: MergeLookup) -> [Int32] {
        var ids = (0..<length).map { byteIDs[Int(piece[$0])] }
        var next = (0..<length).map { $0 + 1 }  // `length` marks the end
        var previous = (0..<length).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: length)
        var heap = MinHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard right < length else { return }
            let merge = lookup.merge(ids[left], ids[right])
            if merge != UInt64.max { heap.push((merge >> 32) << 32 | UInt64(left)) }
        }
        for i in 0..<(length - 1) { push(i) }
        while let top = heap.pop() {
            let left = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            guard alive[left] else { continue }
            let right = next[left]
            guard right < length else { continue }
            let merge = lookup.merge(ids[left], ids[right])
            guard merge != UInt64.max, merge >> 32 == rank else { continue }
            ids[left] = Int32(truncatingIfNeeded: merge & 0xFFFF_FFFF)
            alive[right] = false
            next[left] = next[right]
            if next[right] < length { previous[next[right]] = left }
            if previous[left] >= 0 { push(previous[left]) }
            push(left)
        }
        var result: [Int32] = []
        var i = 0
        while i < length {
            result.append(ids[i])
            i = next[i]
        }
        return result
    }
}

/// A binary min-heap of packed `rank << 32 | position` keys.
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ item: UInt64) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left] < items[smallest] { smallest = left }
            if right < items.count, items[right] < items[smallest] { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
