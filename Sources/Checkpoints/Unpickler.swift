/// A value produced by the restricted unpickler. Lists, dicts and reduced objects are reference types
/// because pickle mutates them after memoising them (`APPENDS`, `SETITEMS`, `BUILD`).
package indirect enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too wide for `Int`: little-endian two's-complement bytes as `LONG1`/`LONG4` store them.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allow-listed global, never resolved to anything executable.
    case global(module: String, name: String)
    /// The result of `REDUCE`/`NEWOBJ` on an allow-listed global: a record of the call, not its result.
    case object(PickleObject)
    /// A persistent id (`BINPERSID`/`PERSID`), left for the caller to resolve.
    case persistent(PickleValue)

    /// The string, if this is one.
    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    /// The integer, if this is one that fits `Int`.
    public var int: Int? { if case let .int(i) = self { return i } else { return nil } }
    /// The elements of a tuple or list.
    public var elements: [PickleValue]? {
        switch self {
        case let .tuple(t): return t
        case let .list(l): return l.items
        default: return nil
        }
    }
}

/// A pickled list.
package final class PickleList {
    /// The elements, in order.
    public var items: [PickleValue]
    /// Nesting depth, kept on the object so that a memoised reference sees later mutations.
    var depth = 0
    /// Set once the list is stored inside another value; it may not change afterwards.
    var contained = false
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A pickled dict (or `collections.OrderedDict`), in insertion order. Keys are kept as values.
package final class PickleDict {
    /// Key/value pairs in insertion order.
    public var entries: [(key: PickleValue, value: PickleValue)] = []
    /// State set by `BUILD` (for example an `OrderedDict`'s `_metadata`), kept but not interpreted.
    public var state: PickleValue?
    var depth = 0
    var contained = false
    init() {}
}

/// A call recorded by `REDUCE`/`NEWOBJ`: `module.name(*arguments)`, plus any `BUILD` state.
package final class PickleObject {
    /// The callable's module, e.g. `torch._utils`.
    public let module: String
    /// The callable's name, e.g. `_rebuild_tensor_v2`.
    public let name: String
    /// The positional arguments of the call.
    public let arguments: [PickleValue]
    /// State set by `BUILD`, if any (kept but not interpreted).
    public var state: PickleValue?
    var depth = 0
    var contained = false
    init(module: String, name: String, arguments: [PickleValue]) {
        self.module = module; self.name = name; self.arguments = arguments
    }
}

/// A restricted unpickler for the protocol 0–4 opcodes that `torch.save` emits.
///
/// Globals resolve only against an allow-list (as `torch.load(weights_only=True)` does); anything else throws
/// `forbiddenGlobal` naming it. Nothing is ever called: `REDUCE` records the call as a `PickleObject`, except
/// `collections.OrderedDict()`, which becomes an empty dict. Lengths are checked against the bytes left,
/// and the memo, stack and nesting depth are bounded.
///
/// Lists, dicts and objects may be filled only while they are not yet stored in another value (pickle fills a
/// container before storing it), so the value graph is acyclic and every container's depth is exact: a memo
/// reference cannot smuggle in nesting beyond `maximumNesting`. Persistent ids are collected as
/// `BINPERSID`/`PERSID` execute, so callers never walk the (possibly heavily shared) value graph.
package struct Unpickler {
    /// Globals that torch state dicts use, as `module.name`.
    public static let torchAllowList: Set<String> = {
        var s: Set<String> = [
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
            "torch.storage.UntypedStorage",
        ]
        for t in ["Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool"] {
            s.insert("torch.\(t)Storage")
        }
        for d in ["float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"] {
            s.insert("torch.\(d)")
        }
        return s
    }()

    /// The most memo entries a pickle may create.
    public static let maximumMemoCount = 1 << 20
    /// The most values (and marks) the stack may hold.
    public static let maximumStackDepth = 1 << 20
    /// The deepest containers may nest.
    public static let maximumNesting = 256

    /// Unpickles one pickle starting at `offset` of `bytes` and returns it with the offset just past `STOP`.
    public static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0, path: String,
                            allowedGlobals: Set<String> = torchAllowList) throws(TorchArchiveError) -> (value: PickleValue, end: Int) {
        var ids: [PickleValue] = []
        return try load(bytes, at: offset, path: path, allowedGlobals: allowedGlobals, persistentIDs: &ids)
    }

    /// As `load`, also appending every persistent id to `persistentIDs` in the order the pickle executes them.
    public static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0, path: String,
                            allowedGlobals: Set<String> = torchAllowList,
                            persistentIDs: inout [PickleValue]) throws(TorchArchiveError) -> (value: PickleValue, end: Int) {
        var machine = Machine(bytes: bytes, position: offset, path: path, allowed: allowedGlobals)
        let value = try machine.run()
        persistentIDs += machine.persistentIDs
        return (value, machine.position)
    }

    /// The depth of a stack or memo entry: a container's current depth is kept on the object.
    static func depth(of e: (value: PickleValue, depth: Int)) -> Int {
        switch e.value {
        case let .list(l): return l.depth
        case let .dict(d): return d.depth
        case let .object(o): return o.depth
        default: return e.depth
        }
    }

    private struct Machine {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let path: String
        let allowed: Set<String>
        /// Values with their nesting depth.
        var stack: [(value: PickleValue, depth: Int)] = []
        var marks: [Int] = []
        var memo: [Int: (value: PickleValue, depth: Int)] = [:]
        var opcodeOffset = 0
        var persistentIDs: [PickleValue] = []

        init(bytes: UnsafeRawBufferPointer, position: Int, path: String, allowed: Set<String>) {
            self.bytes = bytes; self.position = position; self.path = path; self.allowed = allowed
        }

        func fail(_ reason: String) -> TorchArchiveError { .invalidPickle(path: path, offset: opcodeOffset, reason: reason) }

        mutating func take(_ n: Int) throws(TorchArchiveError) -> UnsafeRawBufferPointer {
            guard n >= 0, n <= bytes.count - position else {
                throw .truncated(path: path, what: "pickle opcode argument of \(n) bytes", offset: opcodeOffset)
            }
            defer { position += n }
            return UnsafeRawBufferPointer(rebasing: bytes[position ..< position + n])
        }
        mutating func u8() throws(TorchArchiveError) -> Int { Int(try take(1)[0]) }
        mutating func le(_ n: Int) throws(TorchArchiveError) -> UInt64 {
            let b = try take(n)
            var v: UInt64 = 0
            for i in (0 ..< n).reversed() { v = v << 8 | UInt64(b[i]) }
            return v
        }
        mutating func length(_ n: Int) throws(TorchArchiveError) -> Int {
            let v = try le(n)
            guard v <= UInt64(bytes.count - position) else {
                throw .truncated(path: path, what: "pickle string of \(v) bytes", offset: opcodeOffset)
            }
            return Int(v)
        }
        mutating func line() throws(TorchArchiveError) -> String {
            var end = position
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            guard end < bytes.count else { throw .truncated(path: path, what: "pickle text line", offset: opcodeOffset) }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position ..< end]), as: UTF8.self)
            position = end + 1
            return s
        }
        mutating func utf8(_ n: Int) throws(TorchArchiveError) -> String {
            let b = try take(n)
            guard let s = String(validating: b, as: UTF8.self) else { throw fail("invalid utf-8 string") }
            return s
        }

        /// Marks `items` as stored inside `parent` (nil for a tuple or persistent id); refuses a container stored in itself.
        func contain(_ items: [(value: PickleValue, depth: Int)], in parent: AnyObject?) throws(TorchArchiveError) {
            for item in items {
                let child: AnyObject
                switch item.value {
                case let .list(l): l.contained = true; child = l
                case let .dict(d): d.contained = true; child = d
                case let .object(o): o.contained = true; child = o
                default: continue
                }
                if let parent, parent === child { throw fail("a container is stored inside itself") }
            }
        }
        func checkMutable(_ contained: Bool, _ what: String) throws(TorchArchiveError) {
            guard !contained else { throw fail("\(what) is changed after being stored in another value") }
        }
        func checkNesting(_ depth: Int) throws(TorchArchiveError) {
            guard depth <= Unpickler.maximumNesting else {
                throw .pickleLimitExceeded(path: path, what: "nesting depth", limit: Unpickler.maximumNesting)
            }
        }
        func childDepth(_ items: [(value: PickleValue, depth: Int)]) -> Int {
            1 + (items.map { Unpickler.depth(of: $0) }.max() ?? 0)
        }

        mutating func push(_ v: PickleValue, depth: Int = 0) throws(TorchArchiveError) {
            guard stack.count < Unpickler.maximumStackDepth else {
                throw .pickleLimitExceeded(path: path, what: "stack depth", limit: Unpickler.maximumStackDepth)
            }
            guard depth <= Unpickler.maximumNesting else {
                throw .pickleLimitExceeded(path: path, what: "nesting depth", limit: Unpickler.maximumNesting)
            }
            stack.append((v, depth))
        }
        mutating func pop() throws(TorchArchiveError) -> (value: PickleValue, depth: Int) {
            guard let top = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw fail("stack underflow") }
            return top
        }
        mutating func popMark() throws(TorchArchiveError) -> [(value: PickleValue, depth: Int)] {
            guard let m = marks.popLast() else { throw fail("no mark") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        mutating func popN(_ n: Int) throws(TorchArchiveError) -> [(value: PickleValue, depth: Int)] {
            guard stack.count - n >= (marks.last ?? 0) else { throw fail("stack underflow") }
            defer { stack.removeLast(n) }
            return Array(stack.suffix(n))
        }
        mutating func pushTuple(_ items: [(value: PickleValue, depth: Int)]) throws(TorchArchiveError) {
            try contain(items, in: nil)
            try push(.tuple(items.map(\.value)), depth: childDepth(items))
        }
        mutating func global(_ module: String, _ name: String) throws(TorchArchiveError) {
            guard allowed.contains(module + "." + name) else {
                throw .forbiddenGlobal(path: path, module: module, name: name)
            }
            try push(.global(module: module, name: name))
        }
        mutating func memoize(_ index: Int) throws(TorchArchiveError) {
            guard let top = stack.last, stack.count > (marks.last ?? 0) else { throw fail("memoize on an empty stack") }
            guard memo.count < Unpickler.maximumMemoCount || memo[index] != nil else {
                throw .pickleLimitExceeded(path: path, what: "memo size", limit: Unpickler.maximumMemoCount)
            }
            memo[index] = top
        }
        mutating func fetch(_ index: Int) throws(TorchArchiveError) {
            guard let v = memo[index] else { throw fail("memo key \(index) is not defined") }
            try push(v.value, depth: Unpickler.depth(of: v))
        }
        mutating func setItems(_ items: [(value: PickleValue, depth: Int)]) throws(TorchArchiveError) {
            guard items.count % 2 == 0 else { throw fail("odd number of items for a dict") }
            guard let top = stack.last, case let .dict(d) = top.value else { throw fail("SETITEMS on a non-dict") }
            try checkMutable(d.contained, "a dict")
            let depth = max(d.depth, items.isEmpty ? 0 : childDepth(items))
            try checkNesting(depth)
            try contain(items, in: d)
            for i in stride(from: 0, to: items.count, by: 2) {
                d.entries.append((items[i].value, items[i + 1].value))
            }
            d.depth = depth
        }
        mutating func append(_ items: [(value: PickleValue, depth: Int)]) throws(TorchArchiveError) {
            guard let top = stack.last, case let .list(l) = top.value else { throw fail("APPEND on a non-list") }
            try checkMutable(l.contained, "a list")
            let depth = max(l.depth, items.isEmpty ? 0 : childDepth(items))
            try checkNesting(depth)
            try contain(items, in: l)
            l.items += items.map(\.value)
            l.depth = depth
        }
        mutating func reduce(_ callable: PickleValue, _ args: (value: PickleValue, depth: Int)) throws(TorchArchiveError) {
            guard case let .global(module, name) = callable else { throw fail("call of a non-global") }
            guard case let .tuple(arguments) = args.value else { throw fail("call arguments are not a tuple") }
            if module == "collections" && name == "OrderedDict" {
                guard arguments.isEmpty else { throw fail("OrderedDict with arguments") }
                try push(.dict(PickleDict()))
            } else {
                let o = PickleObject(module: module, name: name, arguments: arguments)
                o.depth = Unpickler.depth(of: args) + 1
                try checkNesting(o.depth)
                try push(.object(o), depth: o.depth)
            }
        }

        mutating func run() throws(TorchArchiveError) -> PickleValue {
            while true {
                opcodeOffset = position
                guard position < bytes.count else { throw .truncated(path: path, what: "pickle without STOP", offset: position) }
                let op = bytes[position]
                position += 1
                switch op {
                case 0x80: _ = try u8()                                   // PROTO
                case 0x95: _ = try le(8)                                  // FRAME
                case 0x2E:                                                // STOP
                    guard marks.isEmpty, stack.count == 1, let v = stack.last else { throw fail("STOP with \(stack.count) values on the stack") }
                    return v.value
                case 0x28:                                                // MARK
                    guard marks.count < Unpickler.maximumStackDepth else {
                        throw .pickleLimitExceeded(path: path, what: "mark depth", limit: Unpickler.maximumStackDepth)
                    }
                    marks.append(stack.count)
                case 0x7D: try push(.dict(PickleDict()))                  // EMPTY_DICT
                case 0x5D: try push(.list(PickleList()))                  // EMPTY_LIST
                case 0x29: try push(.tuple([]))                           // EMPTY_TUPLE
                case 0x4E: try push(.none)                                // NONE
                case 0x88: try push(.bool(true))                          // NEWTRUE
                case 0x89: try push(.bool(false))                         // NEWFALSE
                case 0x4B: try push(.int(try u8()))                       // BININT1
                case 0x4D: try push(.int(Int(try le(2))))                 // BININT2
                case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try le(4))))) // BININT
                case 0x8A, 0x8B:                                          // LONG1, LONG4
                    let n = op == 0x8A ? try u8() : Int(Int32(truncatingIfNeeded: try le(4)))
                    guard n >= 0 else { throw fail("negative LONG4 length") }
                    guard n <= bytes.count - position else { throw .truncated(path: path, what: "pickle long of \(n) bytes", offset: opcodeOffset) }
                    let b = Array(try take(n))
                    if n == 0 { try push(.int(0)) } else if n <= 8 {
                        var v: UInt64 = (b[n - 1] & 0x80) != 0 ? ~0 : 0
                        for i in (0 ..< n).reversed() { v = v << 8 | UInt64(b[i]) }
                        try push(.int(Int(Int64(bitPattern: v))))
                    } else { try push(.bigInt(b)) }
                case 0x47:                                                // BINFLOAT (big-endian)
                    let b = try take(8)
                    var v: UInt64 = 0
                    for x in b { v = v << 8 | UInt64(x) }
                    try push(.float(Double(bitPattern: v)))
                case 0x58: try push(.string(try utf8(try length(4))))     // BINUNICODE
                case 0x8C: try push(.string(try utf8(try length(1))))     // SHORT_BINUNICODE
                case 0x8D: try push(.string(try utf8(try length(8))))     // BINUNICODE8
                case 0x43: try push(.bytes(Array(try take(try length(1))))) // SHORT_BINBYTES
                case 0x42: try push(.bytes(Array(try take(try length(4))))) // BINBYTES
                case 0x8E: try push(.bytes(Array(try take(try length(8))))) // BINBYTES8
                case 0x85: try pushTuple(try popN(1))                     // TUPLE1
                case 0x86: try pushTuple(try popN(2))                     // TUPLE2
                case 0x87: try pushTuple(try popN(3))                     // TUPLE3
                case 0x74: try pushTuple(try popMark())                   // TUPLE
                case 0x6C:                                                // LIST
                    let items = try popMark()
                    let l = PickleList()
                    try push(.list(l))
                    try append(items)
                case 0x64:                                                // DICT
                    let items = try popMark()
                    try push(.dict(PickleDict()))
                    try setItems(items)
                case 0x61: try append(try popN(1))                        // APPEND
                case 0x65: try append(try popMark())                      // APPENDS
                case 0x73: try setItems(try popN(2))                      // SETITEM
                case 0x75: try setItems(try popMark())                    // SETITEMS
                case 0x63:                                                // GLOBAL
                    let module = try line(), name = try line()
                    try global(module, name)
                case 0x93:                                                // STACK_GLOBAL
                    let pair = try popN(2)
                    guard let module = pair[0].value.string, let name = pair[1].value.string else {
                        throw fail("STACK_GLOBAL needs two strings")
                    }
                    try global(module, name)
                case 0x52:                                                // REDUCE
                    let pair = try popN(2)
                    try reduce(pair[0].value, pair[1])
                case 0x81:                                                // NEWOBJ
                    let pair = try popN(2)
                    try reduce(pair[0].value, pair[1])
                case 0x62:                                                // BUILD
                    let state = try pop()
                    guard let top = stack.last, stack.count > (marks.last ?? 0) else { throw fail("BUILD on an empty stack") }
                    let depth = max(Unpickler.depth(of: top), childDepth([state]))
                    try checkNesting(depth)
                    switch top.value {
                    case let .object(o):
                        try checkMutable(o.contained, "an object")
                        try contain([state], in: o)
                        o.state = state.value; o.depth = depth
                    case let .dict(d):
                        try checkMutable(d.contained, "a dict")
                        try contain([state], in: d)
                        d.state = state.value; d.depth = depth
                    default: throw fail("BUILD on a value that has no state")
                    }
                case 0x71: try memoize(try u8())                          // BINPUT
                case 0x72: try memoize(Int(try le(4)))                    // LONG_BINPUT
                case 0x94: try memoize(memo.count)                        // MEMOIZE
                case 0x70:                                                // PUT
                    guard let i = Int(try line()) else { throw fail("PUT index is not a number") }
                    try memoize(i)
                case 0x68: try fetch(try u8())                            // BINGET
                case 0x6A: try fetch(Int(try le(4)))                      // LONG_BINGET
                case 0x67:                                                // GET
                    guard let i = Int(try line()) else { throw fail("GET index is not a number") }
                    try fetch(i)
                case 0x51:                                                // BINPERSID
                    let pid = try pop()
                    try contain([pid], in: nil)
                    try push(.persistent(pid.value), depth: childDepth([pid]))
                    persistentIDs.append(pid.value)
                case 0x50:                                                // PERSID
                    let pid = PickleValue.string(try line())
                    try push(.persistent(pid), depth: 1)
                    persistentIDs.append(pid)
                case 0x30: _ = try pop()                                  // POP
                case 0x31: _ = try popMark()                              // POP_MARK
                case 0x32:                                                // DUP
                    guard let top = stack.last, stack.count > (marks.last ?? 0) else { throw fail("DUP on an empty stack") }
                    try push(top.value, depth: top.depth)
                default:
                    throw .badOpcode(path: path, opcode: op, offset: opcodeOffset)
                }
            }
        }
    }
}
