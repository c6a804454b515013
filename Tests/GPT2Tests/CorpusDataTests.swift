import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GPT2Kit
import Testing
import TestSupport

/// Corpus data: llm.c token shards, the text encoder, packing into blocks, kind detection.
@Suite struct CorpusDataTests {
    /// Loaded once for every test.
    static let loaded = Result { try GPT2Tokenizer(folder: URL(fileURLWithPath: Fixtures.path("gpt2-tokenizer"))) }
    static var tokenizer: GPT2Tokenizer { get throws { try loaded.get() } }
    static let eos: UInt16 = 50256

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// A shard written by hand: the llm.c layout byte by byte.
    static func handShard(tokens: [UInt16], magic: Int32 = 20240520, version: Int32 = 1, count: Int32? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        for v in [magic, version, count ?? Int32(tokens.count)] {
            bytes += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 24) & 0xFF)]
        }
        bytes += [UInt8](repeating: 0, count: 1024 - 12)
        for t in tokens { bytes += [UInt8(t & 0xFF), UInt8(t >> 8)] }
        return bytes
    }

    static func tokens(_ segment: TokenSegment) -> [UInt16] {
        (0 ..< segment.count).map { UInt16(littleEndian: segment.storage.bytes.loadUnaligned(fromByteOffset: segment.byteOffset + 2 * $0, as: UInt16.self)) }
    }

    // MARK: Shards

    @Test func shardBytesMatchLLMCLayout() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokens: [UInt16] = [50256, 18308, 14179, 318, 257, 2168, 286, 0, 65535]
        let writer = try TokenShardWriter(folder: dir + "/out", shardTokens: 4)
        try tokens.withUnsafeBufferPointer { try writer.append(UnsafeBufferPointer(rebasing: $0[0 ..< 3])) }
        try tokens.withUnsafeBufferPointer { try writer.append(UnsafeBufferPointer(rebasing: $0[3...])) }
        let paths = try writer.finish()
        #expect(paths.map { ($0 as NSString).lastPathComponent } == ["shard_000000.bin", "shard_000001.bin", "shard_000002.bin"])
        #expect(writer.tokenCount == tokens.count)
        let expected = [Array(tokens[0 ..< 4]), Array(tokens[4 ..< 8]), Array(tokens[8...])]
        for (path, part) in zip(paths, expected) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(bytes == Self.handShard(tokens: part), "\(path)")
            #expect(Array(bytes[0 ..< 8]) == [0x88, 0xD8, 0x34, 0x01, 0x01, 0, 0, 0])  // 20240520, 1
            let segment = try TokenShard.open(path: path)
            #expect(Self.tokens(segment) == part)
        }
        // No temporaries left, and a second run into the folder is refused (stale shards would be read too).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/out").sorted() == paths.map { ($0 as NSString).lastPathComponent })
        #expect(throws: CorpusError.self) { try TokenShardWriter(folder: dir + "/out") }
        #expect(throws: CorpusError.self) { try TokenShardWriter(folder: dir + "/other", shardTokens: 0) }
    }

    @Test func hostileShardsAreTypedErrors() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = Self.handShard(tokens: [1, 2, 3, 4])
        let cases: [(String, [UInt8], String)] = [
            ("magic", Self.handShard(tokens: [1, 2], magic: 20240326), "magic 20240326"),
            ("version", Self.handShard(tokens: [1, 2], version: 2), "version 2"),
            ("header", Array(good[0 ..< 500]), "shorter than the 1024-byte header"),
            ("truncated", Array(good.dropLast(1)), "header says 4 tokens"),
            ("long", good + [0, 0], "header says 4 tokens"),
            ("count", Self.handShard(tokens: [1, 2], count: 3), "header says 3 tokens"),
            ("negative", Self.handShard(tokens: [], count: -1), "negative token count"),
            ("empty", [], "shorter than the 1024-byte header"),
        ]
        for (name, bytes, problem) in cases {
            let path = dir + "/\(name).bin"
            try Self.write(bytes, to: path)
            do {
                _ = try TokenShard.open(path: path)
                Issue.record("\(name): accepted")
            } catch {
                #expect(error == .invalidShard(path: path, problem: error.problem), "\(name)")
                #expect("\(error)".contains(path) && "\(error)".contains(problem), "\(name): \(error)")
            }
        }
        // A FIFO is refused at once (never waits for a writer), a folder and a missing file too.
        #expect(mkfifo(dir + "/fifo.bin", 0o644) == 0)
        for path in [dir + "/fifo.bin", dir, dir + "/missing.bin"] {
            #expect(throws: CorpusError.self) { try TokenShard.open(path: path) }
        }
        do { _ = try TokenShard.open(path: dir + "/fifo.bin") } catch { #expect("\(error)".contains("not a regular file")) }
        // A token outside the model's vocabulary: found when its block is read, naming the file and position.
        let path = dir + "/vocab.bin"
        try Self.write(Self.handShard(tokens: [50256, 7, 50257, 9, 1, 2, 3, 4]), to: path)
        let blocks = try PackedTokenBlocks(segments: [try TokenShard.open(path: path)], blockSize: 4, vocabularySize: 50257, source: path)
        #expect(try blocks.example(at: 1).inputIDs == [1, 2, 3, 4])
        #expect(throws: TrainingDataError.tokenOutOfRange(path: path, position: 2, id: 50257, vocabularySize: 50257)) {
            try blocks.example(at: 0)
        }
    }

    // MARK: Packing

    /// transformers' run_clm `group_texts`: concatenate, keep `len // block * block` tokens, cut consecutive blocks.
    @Test func packingFollowsRunCLM() throws {
        let a = TokenSegment(name: "a", tokens: [50256, 1, 2, 3, 4, 5, 6])
        let b = TokenSegment(name: "b", tokens: [50256, 8, 9, 10, 11])
        let four = try PackedTokenBlocks(segments: [a, b], blockSize: 4, vocabularySize: 50257, source: "ab")
        #expect(four.count == 3 && four.tokenCount == 12 && four.droppedTokenCount == 0)
        let expected: [[TokenID]] = [[50256, 1, 2, 3], [4, 5, 6, 50256], [8, 9, 10, 11]]
        for (i, block) in expected.enumerated() {
            let e = try four.example(at: i)
            #expect(e.inputIDs == block && e.labels == block, "block \(i)")
            #expect(e.labelTokenCount == 3)  // T tokens give T-1 predictions
        }
        let five = try PackedTokenBlocks(segments: [a, b], blockSize: 5, vocabularySize: 50257, source: "ab")
        #expect(five.count == 2 && five.droppedTokenCount == 2)
        #expect(try five.example(at: 0).inputIDs == [50256, 1, 2, 3, 4])
        #expect(try five.example(at: 1).inputIDs == [5, 6, 50256, 8, 9])
        // A block spanning three segments, and empty segments in between.
        let parts = [[1], [], [2, 3], [], [4, 5, 6]].map { TokenSegment(name: "p", tokens: $0) }
        let spanning = try PackedTokenBlocks(segments: parts, blockSize: 6, vocabularySize: 50257, source: "p")
        #expect(try spanning.example(at: 0).inputIDs == [1, 2, 3, 4, 5, 6])
        // Fewer tokens than one block; block sizes below 2.
        #expect(throws: TrainingDataError.corpusTooSmall(path: "ab", tokens: 12, blockSize: 13)) {
            try PackedTokenBlocks(segments: [a, b], blockSize: 13, vocabularySize: 50257, source: "ab")
        }
        #expect(throws: TrainingDataError.invalidBlockSize(1, maximum: nil)) {
            try PackedTokenBlocks(segments: [a, b], blockSize: 1, vocabularySize: 50257, source: "ab")
        }
        // The fingerprint changes with the tokens and the block size.
        let other = try PackedTokenBlocks(segments: [b, a], blockSize: 4, vocabularySize: 50257, source: "ba")
        #expect(four.fingerprint != five.fingerprint && four.fingerprint != other.fingerprint)
    }

    /// Text files: each a document starting with <|endoftext|>, ids of `encode_ordinary`, then packed.
    @Test func textPacksAsDocumentsJoinedWithEOS() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.write("Harry Potter is a series of\n", to: dir + "/c/1.txt")
        try Self.write("seven fantasy novels", to: dir + "/c/2.txt")
        let set = try TrainingDataSet.load(path: dir + "/c", tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257, blockSize: 5)
        #expect(set.kind == .text && set.files.map { ($0 as NSString).lastPathComponent } == ["1.txt", "2.txt"])
        // [50256] + "Harry Potter is a series of\n" + [50256] + "seven fantasy novels": 12 tokens, 2 blocks of 5, 2 dropped.
        #expect(set.blocks?.tokenCount == 12 && set.blocks?.count == 2 && set.blocks?.droppedTokenCount == 2)
        #expect(try set.source.example(at: 0).inputIDs == [50256, 18308, 14179, 318, 257])
        #expect(try set.source.example(at: 1).inputIDs == [2168, 286, 198, 50256, 26548])
        #expect(set.statistics?.documents == 2 && set.statistics?.tokens == 12)
    }

    /// Pieces cut at safe newlines and encoded on two threads give the ids of each document encoded whole.
    @Test(arguments: [(2, 700, 3000), (1, 1 << 20, 1 << 20), (2, 64, 64)])
    func encoderEqualsWholeDocuments(threads: Int, pieceBytes: Int, batchBytes: Int) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(state: 7)
        let words = ["the", "Harry", "Potter", " ", "  ", "\n", "\n\n", " \n", "\t", "é", "日本語", "🙂", "<|endoftext|>", "123", "'s", "—", "\r\n", "x"]
        var documents: [String] = []
        for d in 0 ..< 5 {
            var text = ""
            for _ in 0 ..< (d == 3 ? 0 : 800 + 400 * d) { text += words[Int(rng.next() % UInt64(words.count))] }
            documents.append(d == 4 ? String(repeating: "no newline at all ", count: 200) : text)
        }
        var files: [String] = []
        for (i, text) in documents.enumerated() {
            files.append(dir + "/doc\(i).txt")
            try Self.write(text, to: files[i])
        }
        let encoder = try CorpusEncoder(tokenizer: try Self.tokenizer, threadCount: threads, pieceBytes: pieceBytes, batchBytesPerThread: batchBytes)
        var got: [UInt16] = []
        let statistics = try encoder.encode(files: files) { got.append(contentsOf: $0) }
        var expected: [UInt16] = []
        for text in documents {
            expected.append(Self.eos)
            expected += try Self.tokenizer.encode(text, allowSpecial: false).map { UInt16($0) }
        }
        #expect(got == expected)
        #expect(statistics.documents == 5 && statistics.tokens == expected.count && statistics.bytes == documents.reduce(0) { $0 + $1.utf8.count })
        // The literal <|endoftext|> is text: EOS appears only at document starts.
        #expect(got.filter { $0 == Self.eos }.count == 5)
    }

    @Test func textAndShardsGiveTheSameBlocks() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0 ..< 4 {
            try Self.write(String(repeating: "Line \(i) of a document about fantasy novels.\n", count: 20 + 7 * i), to: dir + "/text/part\(i).txt")
        }
        let text = try TrainingDataSet.load(path: dir + "/text", tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257, blockSize: 48)
        let files = try CorpusFiles.textFiles([dir + "/text"]).files
        let (shards, _) = try CorpusEncoder(tokenizer: try Self.tokenizer, threadCount: 2, pieceBytes: 100, batchBytesPerThread: 300)
            .writeShards(files: files, folder: dir + "/shards", shardTokens: 333)
        #expect(shards.count > 2)
        let sharded = try TrainingDataSet.load(path: dir + "/shards", tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257, blockSize: 48)
        #expect(sharded.kind == .shards && sharded.files == shards)
        #expect(text.source.count == sharded.source.count && text.source.count > 10)
        for i in 0 ..< text.source.count { #expect(try text.source.example(at: i) == sharded.source.example(at: i), "block \(i)") }
        // Shard files named one by one (repeated --data) are the same stream.
        let named = try TrainingDataSet.load(paths: shards, tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257, blockSize: 48)
        #expect(named.source.fingerprint == sharded.source.fingerprint)
        // One shard file on its own is data too.
        #expect(try TrainingDataSet.load(path: shards[0], tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257).kind == .shards)
    }

    // MARK: Kinds and refusals

    @Test func kindsAreDetectedAndOthersRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.write("b", to: dir + "/t/b.txt")
        try Self.write("a", to: dir + "/t/a/z.txt")
        try Self.write("hidden", to: dir + "/t/.git/x.txt")
        try Self.write("hidden", to: dir + "/t/.y.txt")
        try Self.write("notes", to: dir + "/t/notes.md")
        let t = try CorpusFiles.resolve(dir + "/t")
        #expect(t.kind == .text && t.files == [dir + "/t/a/z.txt", dir + "/t/b.txt"] && t.ignored == 1)
        #expect(try CorpusFiles.resolve(dir + "/t/b.txt").kind == .text)
        try Self.write("{}", to: dir + "/x.jsonl")
        #expect(try CorpusFiles.resolve(dir + "/x.jsonl").kind == .jsonl)
        try Self.write("x", to: dir + "/data.csv")
        #expect(throws: CorpusError.unsupportedKind(path: dir + "/data.csv")) { try CorpusFiles.resolve(dir + "/data.csv") }
        try Self.write(Self.handShard(tokens: [1]), to: dir + "/t/s.bin")
        #expect(throws: CorpusError.mixedKinds(path: dir + "/t")) { try CorpusFiles.resolve(dir + "/t") }
        try FileManager.default.createDirectory(atPath: dir + "/empty/.hidden", withIntermediateDirectories: true)
        #expect(throws: CorpusError.noFiles(path: dir + "/empty")) { try CorpusFiles.resolve(dir + "/empty") }
        #expect(throws: CorpusError.self) { try CorpusFiles.resolve(dir + "/missing") }
        #expect(throws: CorpusError.self) { try CorpusFiles.textFiles([dir + "/x.jsonl"]) }
        #expect(throws: CorpusError.self) { try CorpusFiles.resolve([dir + "/t/b.txt", dir + "/x.jsonl"]) }
        #expect(try CorpusFiles.resolve([dir + "/t/b.txt", dir + "/t/a/z.txt"]).files == [dir + "/t/b.txt", dir + "/t/a/z.txt"])
        // Block sizes outside 2...n_positions, a corpus below one block, invalid UTF-8 (file and offset named).
        #expect(throws: TrainingDataError.invalidBlockSize(65, maximum: 64)) {
            try TrainingDataSet.load(path: dir + "/t/b.txt", tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257, blockSize: 65)
        }
        #expect(throws: TrainingDataError.corpusTooSmall(path: dir + "/t/b.txt", tokens: 2, blockSize: 64)) {
            try TrainingDataSet.load(path: dir + "/t/b.txt", tokenizer: try Self.tokenizer, maximumLength: 64, vocabularySize: 50257)
        }
        try Self.write(Array("abc\n".utf8) + [0xFF] + Array("def".utf8), to: dir + "/bad.txt")
        #expect(throws: CorpusError.invalidUTF8(path: dir + "/bad.txt", offset: 4)) {
            try CorpusEncoder(tokenizer: try Self.tokenizer).encode(files: [dir + "/bad.txt"]) { _ in }
        }
        // A failure part-way leaves no shards behind (a folder never holds part of a corpus).
        try Self.write(String(repeating: "A line of text.\n", count: 400), to: dir + "/good.txt")
        #expect(throws: CorpusError.invalidUTF8(path: dir + "/bad.txt", offset: 4)) {
            try CorpusEncoder(tokenizer: try Self.tokenizer, threadCount: 1, pieceBytes: 64, batchBytesPerThread: 64)
                .writeShards(files: [dir + "/good.txt", dir + "/bad.txt"], folder: dir + "/partial", shardTokens: 100)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/partial") == [])
        #expect(mkfifo(dir + "/fifo.txt", 0o644) == 0)
        #expect(throws: CorpusError.self) { try CorpusEncoder(tokenizer: try Self.tokenizer).encode(files: [dir + "/fifo.txt"]) { _ in } }
    }

    @Test func vocabularyBeyondUInt16IsRefused() throws {
        var tokenizer = try Self.tokenizer
        try tokenizer.addTokens((0 ..< 65537 - tokenizer.vocabularySize).map { "[extra\($0)]" })
        #expect(tokenizer.vocabularySize == 65537)
        #expect(throws: CorpusError.vocabularyTooLarge(size: 65537)) { try CorpusEncoder(tokenizer: tokenizer) }
    }

    /// The trainer reads packed blocks by index; the JSONL fingerprint is the historical one.
    @Test func trainerRunsOnPackedBlocks() throws {
        let ids: [UInt16] = (0 ..< 200).map { UInt16(($0 * 7919) % 50257) }
        let blocks = try PackedTokenBlocks(segments: [TokenSegment(name: "mem", tokens: ids)], blockSize: 16, vocabularySize: 50257, source: "mem")
        var options = TrainingOptions()
        options.steps = 3; options.batchSize = 2; options.seed = 5; options.learningRate = 1e-3
        let trainer = try Trainer(model: try Golden.model("tiny-gpt2"), examples: blocks, evalExamples: blocks, options: options, padTokenID: 50256)
        try trainer.run { _ in true }
        #expect(trainer.progress.losses.count == 3 && trainer.progress.losses.allSatisfy(\.isFinite))
        #expect(trainer.progress.dataFingerprint == blocks.fingerprint)
        let e = try Trainer.evaluation(model: trainer.model, data: blocks, batchSize: 4, padTokenID: 50256)
        #expect(e.examples == 12 && e.labelTokens == 12 * 15 && e.perplexity == exp(e.loss))
    }
}

extension CorpusError {
    var problem: String { if case let .invalidShard(_, p) = self { return p } else { return "" } }
}
