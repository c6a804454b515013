#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why corpus data (text files, folders, token shards) was refused.
public enum CorpusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file or folder could not be opened or read (the system's reason).
    case cannotRead(path: String, reason: String)
    /// A shard or the shard folder could not be created or written (the system's reason).
    case cannotWrite(path: String, reason: String)
    /// A `.bin` file is not an llm.c token shard (magic, version 1, token count and file size must agree).
    case invalidShard(path: String, problem: String)
    /// A text file is not UTF-8; `offset` is the byte offset in the file of the first invalid byte.
    case invalidUTF8(path: String, offset: Int)
    /// A path whose kind `--data` cannot tell.
    case unsupportedKind(path: String)
    /// A folder holding both `.txt` files and `.bin` shards.
    case mixedKinds(path: String)
    /// A folder with no `.txt` files or `.bin` shards in it.
    case noFiles(path: String)
    /// The tokenizer has more ids than a shard's uint16 tokens hold (65536); `size` is its vocabulary size.
    case vocabularyTooLarge(size: Int)
    /// A setting that cannot be honoured (no paths, paths of different kinds, a bad shard size, a folder that already
    /// holds shards); the message says which.
    case invalidSetting(String)

    /// The message `gpt2kit` prints, starting with the path.
    public var description: String {
        switch self {
        case let .cannotRead(p, r): return "\(p): cannot read: \(r)"
        case let .cannotWrite(p, r): return "\(p): cannot write: \(r)"
        case let .invalidShard(p, m): return "\(p): not an llm.c token shard: \(m)"
        case let .invalidUTF8(p, o): return "\(p): invalid UTF-8 at byte \(o)"
        case let .unsupportedKind(p):
            return "\(p): not a kind of training data gpt2kit knows; give a .jsonl file, a .txt file or a folder of .txt files "
                + "(plain text), or llm.c token shards (.bin files or a folder of them, made by `gpt2kit tokenize --shards`)"
        case let .mixedKinds(p): return "\(p): the folder holds both .txt files and .bin shards; give one kind"
        case let .noFiles(p): return "\(p): no .txt files or .bin shards in the folder (hidden files are skipped)"
        case let .vocabularyTooLarge(v): return "the tokenizer has \(v) ids; token shards hold uint16 ids (at most 65536)"
        case let .invalidSetting(m): return m
        }
    }
}

/// The files of a corpus: which kind, in which order.
public enum CorpusFiles {
    /// What a `--data` path holds.
    public enum Kind: String, Sendable, Equatable {
        /// JSON Lines of context/label, prompt/completion or text records.
        case jsonl
        /// Plain UTF-8 text, one document per file.
        case text
        /// llm.c token shards.
        case shards
    }

    /// Finds what `path` holds: a `.jsonl` file; a `.txt` file; a `.bin` shard; or a folder, searched recursively
    /// (hidden files and folders skipped, symbolic links to folders not followed) whose `.txt` files (text) or
    /// `.bin` files (shards) are taken in sorted path order. Other files in a folder are left out and counted
    /// in `ignored`. Anything else is refused, naming the kinds accepted.
    public static func resolve(_ path: String) throws(CorpusError) -> (kind: Kind, files: [String], ignored: Int) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
        let lower = path.lowercased()
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let (files, ignored) = try listing(folder: path, extensions: ["txt", "bin"])
            let texts = files.filter { $0.lowercased().hasSuffix(".txt") }
            let shards = files.filter { $0.lowercased().hasSuffix(".bin") }
            if !texts.isEmpty && !shards.isEmpty { throw .mixedKinds(path: path) }
            if !shards.isEmpty { return (.shards, shards, ignored) }
            if !texts.isEmpty { return (.text, texts, ignored) }
            throw .noFiles(path: path)
        }
        if lower.hasSuffix(".jsonl") { return (.jsonl, [path], 0) }
        if lower.hasSuffix(".txt") { return (.text, [path], 0) }
        if lower.hasSuffix(".bin") { return (.shards, [path], 0) }
        throw .unsupportedKind(path: path)
    }

    /// `resolve` for several paths, which must hold one kind; their files are taken in the order of `paths`.
    public static func resolve(_ paths: [String]) throws(CorpusError) -> (kind: Kind, files: [String], ignored: Int) {
        guard let first = paths.first else { throw .invalidSetting("no data paths given") }
        var (kind, files, ignored) = try resolve(first)
        for path in paths.dropFirst() {
            let next = try resolve(path)
            guard next.kind == kind else {
                throw .invalidSetting("\(first) is \(kind.rawValue) data but \(path) is \(next.kind.rawValue); give one kind")
            }
            files += next.files
            ignored += next.ignored
        }
        return (kind, files, ignored)
    }

    /// The text files named by `paths` for `gpt2kit tokenize --shards`, in the order given: a file is taken as
    /// text whatever its name (except `.jsonl` and `.bin`, which are not plain text); a folder gives its `.txt`
    /// files as `resolve` does. Returns the files and how many other files folders held.
    public static func textFiles(_ paths: [String]) throws(CorpusError) -> (files: [String], ignored: Int) {
        var files: [String] = [], ignored = 0
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let (found, other) = try listing(folder: path, extensions: ["txt"])
                guard !found.isEmpty else { throw .noFiles(path: path) }
                files += found
                ignored += other
            } else if path.lowercased().hasSuffix(".jsonl") || path.lowercased().hasSuffix(".bin") {
                throw .invalidSetting("\(path): not plain text; `tokenize --shards` reads UTF-8 text files or folders of .txt files")
            } else {
                files.append(path)
            }
        }
        return (files, ignored)
    }

    /// Every non-hidden file below `folder` whose extension is in `extensions` (lowercased), sorted by path
    /// (byte order, so the order is the same on every machine), and the number of other files.
    static func listing(folder: String, extensions: Set<String>) throws(CorpusError) -> (files: [String], ignored: Int) {
        var files: [String] = [], ignored = 0
        var pending = [folder]
        while let dir = pending.popLast() {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                throw .cannotRead(path: dir, reason: error.localizedDescription)
            }
            for name in names where !name.hasPrefix(".") {
                let path = (dir.hasSuffix("/") ? dir : dir + "/") + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                let mode = st.st_mode & S_IFMT
                if mode == S_IFDIR {
                    pending.append(path)
                } else if extensions.contains((name as NSString).pathExtension.lowercased()) {
                    files.append(path)  // a symbolic link to a file is opened through InputFile, which checks it
                } else {
                    ignored += 1
                }
            }
        }
        files.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return (files, ignored)
    }
}

/// What tokenizing a text corpus did.
public struct CorpusStatistics: Sendable, Equatable {
    /// Documents (text files).
    public var documents = 0
    /// Bytes of text read.
    public var bytes = 0
    /// Tokens produced, end-of-text tokens included.
    public var tokens = 0
    /// Zero documents, bytes and tokens.
    public init() {}
}

/// Tokenizes text files into one token stream, llm.c's way: each file is a document that starts with the
/// end-of-text token, then its ids without special tokens (tiktoken's `encode_ordinary`, so a literal
/// `<|endoftext|>` in a file is text, never a document break).
///
/// Files are read in pieces of about `pieceBytes`, cut only before a newline that follows a non-space
/// character, where the pre-tokenizer cannot see the cut, so the ids equal those of each file encoded whole.
/// Pieces are gathered into batches of about `threadCount × batchBytesPerThread` and encoded on `threadCount`
/// threads (`GPT2Tokenizer.encode(batch:)`). Memory stays bounded by a batch (≈ 5 bytes per byte of batch text,
/// ≈ 80 MB by default), whatever the corpus size; tokens leave through `sink` in order. (A file with no such
/// newline, one very long line, is read whole before it is encoded.)
public struct CorpusEncoder: Sendable {
    /// The tokenizer (its vocabulary must fit in uint16 ids).
    public let tokenizer: GPT2Tokenizer
    /// Threads that encode one batch (at least 1).
    public var threadCount: Int
    /// About how many bytes of a file are read and encoded as one piece (at least 1; 4 MiB by default).
    public var pieceBytes: Int
    /// Bytes of text per thread gathered before a batch is encoded (at least 1; 8 MiB by default).
    public var batchBytesPerThread: Int

    /// An encoder on `threadCount` threads (default: every core).
    public init(tokenizer: GPT2Tokenizer, threadCount: Int = ProcessInfo.processInfo.activeProcessorCount,
                pieceBytes: Int = 4 << 20, batchBytesPerThread: Int = 8 << 20) throws(CorpusError) {
        guard tokenizer.vocabularySize <= TokenShard.maximumVocabularySize, tokenizer.eosTokenID < TokenShard.maximumVocabularySize else {
            throw .vocabularyTooLarge(size: tokenizer.vocabularySize)
        }
        self.tokenizer = tokenizer
        self.threadCount = max(1, threadCount)
        self.pieceBytes = max(1, pieceBytes)
        self.batchBytesPerThread = max(1, batchBytesPerThread)
    }

    private struct Piece { var text: String; var startsDocument: Bool }

    /// Encodes `files` in order, passing the tokens to `sink` in order; `progress` gets the statistics so far
    /// after every batch.
    public func encode(files: [String], progress: (CorpusStatistics) throws -> Void = { _ in },
                       sink: (UnsafeBufferPointer<UInt16>) throws -> Void) throws -> CorpusStatistics {
        var statistics = CorpusStatistics()
        var batch: [Piece] = []
        var batchBytes = 0
        let eos = UInt16(tokenizer.eosTokenID)
        let flushBytes = threadCount * batchBytesPerThread

        func flush() throws {
            guard !batch.isEmpty else { return }
            let ids = tokenizer.encode(batch: batch.map(\.text), allowSpecial: false, threadCount: threadCount)
            var tokens: [UInt16] = []
            tokens.reserveCapacity(ids.reduce(batch.count) { $0 + $1.count })
            for (piece, pieceIDs) in zip(batch, ids) {
                if piece.startsDocument { tokens.append(eos) }
                for id in pieceIDs { tokens.append(UInt16(truncatingIfNeeded: id)) }
            }
            statistics.tokens += tokens.count
            try tokens.withUnsafeBufferPointer { try sink($0) }
            batch.removeAll(keepingCapacity: true)
            batchBytes = 0
            try progress(statistics)
        }

        // One read buffer for every file (uninitialized: a small file must not cost a piece-sized fill).
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 16)
        defer { scratch.deallocate() }
        for file in files {
            let fd: Int32
            do { (fd, _) = try InputFile.openRegular(file) } catch { throw CorpusError.cannotRead(path: file, reason: error.reason) }
            defer { close(fd) }
            statistics.documents += 1
            var carry: [UInt8] = []
            var fileOffset = 0  // file offset of carry[0]
            var startsDocument = true
            var atEnd = false
            while !atEnd {
                // Read up to a piece more (the carried text had no safe cut, or is the rest of the last piece).
                var got = 0
                while got < pieceBytes {
                    let n = read(fd, scratch.baseAddress! + got, pieceBytes - got)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CorpusError.cannotRead(path: file, reason: String(cString: strerror(errno)))
                    }
                    if n == 0 { atEnd = true; break }
                    got += n
                }
                carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0 ..< got]))
                statistics.bytes += got
                let cut: Int
                if atEnd {
                    cut = carry.count
                } else if let c = carry.withUnsafeBufferPointer({ GPT2Tokenizer.lastSafeCut(in: $0) }) {
                    cut = c
                } else {
                    continue  // no safe cut yet: read on
                }
                if cut == 0 && !startsDocument { break }
                let text: String
                do { text = try GPT2Tokenizer.text(fromUTF8: carry[0 ..< cut]) } catch {
                    if case let .invalidUTF8(offset) = error { throw CorpusError.invalidUTF8(path: file, offset: fileOffset + offset) }
                    throw CorpusError.cannotRead(path: file, reason: "\(error)")
                }
                batch.append(Piece(text: text, startsDocument: startsDocument))
                batchBytes += cut
                startsDocument = false
                carry.removeFirst(cut)
                fileOffset += cut
                if batchBytes >= flushBytes { try flush() }
            }
        }
        try flush()
        return statistics
    }

    /// Encodes `files` into memory (2 bytes per token: about half the text's size for English) as one segment.
    public func encodeInMemory(files: [String], name: String) throws -> (segment: TokenSegment, statistics: CorpusStatistics) {
        var tokens: [UInt16] = []
        let statistics = try encode(files: files) { tokens.append(contentsOf: $0) }
        return (TokenSegment(name: name, tokens: tokens), statistics)
    }

    /// Encodes `files` into llm.c shards in `folder` (see `TokenShardWriter`); `progress` gets the statistics
    /// after every batch. Returns the shard paths and the statistics. When anything fails (a file unreadable or
    /// not UTF-8, the disk full), the shards already written are removed, so a folder never holds part of a corpus.
    public func writeShards(files: [String], folder: String, shardTokens: Int = TokenShard.defaultShardTokens,
                            progress: (CorpusStatistics) throws -> Void = { _ in }) throws -> (shards: [String], statistics: CorpusStatistics) {
        let writer = try TokenShardWriter(folder: folder, shardTokens: shardTokens)
        do {
            let statistics = try encode(files: files, progress: progress) { try writer.append($0) }
            return (try writer.finish(), statistics)
        } catch {
            for path in writer.shards { unlink(path) }
            throw error
        }
    }
}

/// Training or evaluation data as `gpt2kit finetune --data` and `eval --data` take it, with what was loaded.
public struct TrainingDataSet {
    /// The examples or blocks, read by index.
    public let source: any TrainingDataSource
    /// What the paths hold: JSONL records, plain text or llm.c token shards.
    public let kind: CorpusFiles.Kind
    /// The files read (text files or shards; the JSONL file).
    public let files: [String]
    /// Files in the folder that were not of the kind read.
    public let ignoredFiles: Int
    /// For packed data: the blocks (tokens, block size, dropped tail).
    public var blocks: PackedTokenBlocks? { source as? PackedTokenBlocks }
    /// For text: what tokenizing it did.
    public let statistics: CorpusStatistics?

    /// Wraps examples made elsewhere (a `--context`/`--label` pair).
    public init(examples: [TrainingExample]) {
        source = examples; kind = .jsonl; files = []; ignoredFiles = 0; statistics = nil
    }

    /// Loads `path` as `CorpusFiles.resolve` finds it. `blockSize` applies to text and shards, `truncate` to JSONL.
    ///
    /// - JSONL: each record is an example, tokenized whole; longer than `maximumLength` is an error unless
    ///   `truncate` (unchanged from earlier releases).
    /// - Text: tokenized on every core into memory (2 bytes per token, about half the text's size; for a corpus
    ///   near the machine's memory write shards once with `gpt2kit tokenize --shards` and train from them),
    ///   then packed into blocks of `blockSize` (default `maximumLength`).
    /// - Shards: memory-mapped and packed the same way; token ids are checked against `vocabularySize` as
    ///   blocks are read.
    public static func load(path: String, tokenizer: GPT2Tokenizer, maximumLength: Int, vocabularySize: Int,
                            blockSize: Int? = nil, truncate: TruncationSide? = nil,
                            threadCount: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> TrainingDataSet {
        try load(paths: [path], tokenizer: tokenizer, maximumLength: maximumLength, vocabularySize: vocabularySize,
                 blockSize: blockSize, truncate: truncate, threadCount: threadCount)
    }

    /// Loads several paths of one kind as one data set, in the order given (JSONL files' examples one after
    /// another; text files or shards as one stream), e.g. llm.c's `fineweb_train_*.bin` without its `_val_` shard.
    public static func load(paths: [String], tokenizer: GPT2Tokenizer, maximumLength: Int, vocabularySize: Int,
                            blockSize: Int? = nil, truncate: TruncationSide? = nil,
                            threadCount: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> TrainingDataSet {
        let (kind, files, ignored) = try CorpusFiles.resolve(paths)
        let path = paths.joined(separator: ", ")
        if kind == .jsonl {
            var examples: [TrainingExample] = []
            for file in files {
                examples += try TrainingRecord.examples(path: file, tokenizer: tokenizer, maximumLength: maximumLength, truncate: truncate)
            }
            return TrainingDataSet(source: examples, kind: kind, files: files, ignoredFiles: 0, statistics: nil)
        }
        let block = blockSize ?? maximumLength
        guard (2 ... maximumLength).contains(block) else { throw TrainingDataError.invalidBlockSize(block, maximum: maximumLength) }
        switch kind {
        case .text:
            let encoder = try CorpusEncoder(tokenizer: tokenizer, threadCount: threadCount)
            let (segment, statistics) = try encoder.encodeInMemory(files: files, name: path)
            let blocks = try PackedTokenBlocks(segments: [segment], blockSize: block, vocabularySize: vocabularySize, source: path)
            return TrainingDataSet(source: blocks, kind: kind, files: files, ignoredFiles: ignored, statistics: statistics)
        case .shards, .jsonl:
            var segments: [TokenSegment] = []
            for file in files { segments.append(try TokenShard.open(path: file)) }
            let blocks = try PackedTokenBlocks(segments: segments, blockSize: block, vocabularySize: vocabularySize, source: path)
            return TrainingDataSet(source: blocks, kind: kind, files: files, ignoredFiles: ignored, statistics: nil)
        }
    }

    private init(source: any TrainingDataSource, kind: CorpusFiles.Kind, files: [String], ignoredFiles: Int, statistics: CorpusStatistics?) {
        self.source = source; self.kind = kind; self.files = files; self.ignoredFiles = ignoredFiles; self.statistics = statistics
    }

    /// One line saying what was loaded: "12 examples from train.jsonl", "4 blocks of 1024 tokens (…)".
    public var summary: String {
        guard let blocks else {
            let n = source.count
            return "\(n) example\(n == 1 ? "" : "s")" + (files.first.map { " from \($0)" } ?? "")
        }
        let what = kind == .text ? "\(files.count) text file\(files.count == 1 ? "" : "s") tokenized in memory"
                                 : "\(files.count) shard\(files.count == 1 ? "" : "s")"
        var line = "\(blocks.count) block\(blocks.count == 1 ? "" : "s") of \(blocks.blockSize) tokens from \(what), "
            + "\(blocks.tokenCount) tokens (last \(blocks.droppedTokenCount) dropped)"
        if ignoredFiles > 0 { line += "; \(ignoredFiles) other file\(ignoredFiles == 1 ? "" : "s") in the folder ignored" }
        return line
    }
}

extension TrainingRecord {
    /// Reads a JSONL file and tokenizes every record into an example (see `example(encode:maximumLength:…)`).
    public static func examples(path: String, tokenizer: GPT2Tokenizer, maximumLength: Int,
                                truncate: TruncationSide?) throws -> [TrainingExample] {
        let records = try readJSONL(path: path)
        var out: [TrainingExample] = []
        out.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            out.append(try r.example(encode: { tokenizer.encode($0) }, maximumLength: maximumLength, truncation: truncate,
                                     source: path, line: i + 1))
        }
        return out
    }
}
