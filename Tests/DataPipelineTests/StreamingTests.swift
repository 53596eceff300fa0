import Common
import Foundation
import Kernels
import TestSupport
import Testing
import Tokenizer

@testable import DataPipeline

/// gzip-compresses `path` into `path.gz` (keeping `path`).
func gzipFile(_ path: String) throws {
    let (status, _, err) = try runProcess(["gzip", "-kf", path])
    #expect(status == 0, "\(err)")
}

func message(_ body: () throws -> Void) -> String {
    do { try body(); return "" } catch let e as UserError { return e.message } catch { return "\(error)" }
}

@Suite struct CorpusFileTests {
    @Test func listsCorpusFilesAndRecognisesGzipByContent() throws {
        let dir = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/c/sub", withIntermediateDirectories: true)
        try AtomicFile.write("first\n", to: dir + "/c/b.txt")
        try AtomicFile.write("{\"text\": \"x\"}\n", to: dir + "/c/sub/a.jsonl")
        try AtomicFile.write("zipped\n", to: dir + "/c/z.txt")
        try gzipFile(dir + "/c/z.txt")
        try FileManager.default.removeItem(atPath: dir + "/c/z.txt")
        try AtomicFile.write("ignored", to: dir + "/c/notes.md")
        try AtomicFile.write("hidden\n", to: dir + "/c/.hidden.txt")
        let (root, sources) = try CorpusFiles.list(dir + "/c")
        #expect(root == dir + "/c")
        #expect(sources.map(\.name) == ["b.txt", "sub/a.jsonl", "z.txt.gz"])
        #expect(sources.map(\.format) == [.text, .jsonl, .text])
        #expect(sources.map(\.gzip) == [false, false, true])
        #expect(sources[2].estimatedTextBytes == 7)  // from the gzip trailer
        // a single file; gzip recognised by its bytes whatever the name
        try FileManager.default.copyItem(atPath: dir + "/c/z.txt.gz", toPath: dir + "/misnamed.txt")
        let single = try CorpusFiles.list(dir + "/misnamed.txt")
        #expect(single.root == dir && single.sources.map(\.name) == ["misnamed.txt"] && single.sources[0].gzip)

        #expect(message { _ = try CorpusFiles.list(dir + "/missing") }.contains("corpus not found"))
        try FileManager.default.createDirectory(atPath: dir + "/none", withIntermediateDirectories: true)
        #expect(message { _ = try CorpusFiles.list(dir + "/none") }.contains("has no corpus files"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/c/gone.txt", withDestinationPath: dir + "/nowhere")
        let unreadable = message { _ = try CorpusFiles.list(dir + "/c") }
        #expect(
            unreadable.contains("cannot read the corpus file") && unreadable.contains("gone.txt: not found"),
            "\(unreadable)")
    }

    @Test func readsGzipIncludingConcatenatedMembersAndRefusesTruncatedOrCorruptData() throws {
        let dir = try temporaryDirectory()
        let text = syntheticText(lines: 3000, seed: 4)
        try AtomicFile.write(text, to: dir + "/t.txt")
        try gzipFile(dir + "/t.txt")
        func readAll(_ path: String) throws -> [UInt8] {
            let reader = try SourceReader(path: path, gzip: true)
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 5000)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                out += buffer[..<n]
                if n < buffer.count { return out }
            }
        }
        #expect(try readAll(dir + "/t.txt.gz") == Array(text.utf8))
        // two members (cat a.gz b.gz) read as one stream, as gzip -d does
        let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/t.txt.gz")))
        try AtomicFile.write(gz + gz, to: dir + "/twice.gz")
        #expect(try readAll(dir + "/twice.gz") == Array(text.utf8) + Array(text.utf8))
        try AtomicFile.write(Array(gz.prefix(gz.count / 2)), to: dir + "/half.gz")
        #expect(message { _ = try readAll(dir + "/half.gz") }.contains("is truncated"))
        var corrupt = gz
        for i in 40..<80 { corrupt[i] ^= 0x5A }
        try AtomicFile.write(corrupt, to: dir + "/corrupt.gz")
        #expect(message { _ = try readAll(dir + "/corrupt.gz") }.contains("not valid gzip data"))
    }

    @Test func chunksEndAtLineBreaksAndAreTheSameWhenContinuedFromAChunk() throws {
        let dir = try temporaryDirectory()
        var text = syntheticText(lines: 2000, seed: 9)
        text += String(repeating: "a very long line ", count: 300) + "\nlast line without a break"
        try AtomicFile.write(text, to: dir + "/t.txt")
        func chunks(from offset: Int) throws -> [(Int, [UInt8])] {
            let reader = try SourceReader(path: dir + "/t.txt", gzip: false)
            try reader.skip(offset)
            let chunker = LineChunker(reader: reader, chunkBytes: 1000)
            var out: [(Int, [UInt8])] = []
            while true {
                let at = chunker.offset
                guard let c = try chunker.next() else { return out }
                out.append((at, c))
            }
        }
        let all = try chunks(from: 0)
        #expect(all.flatMap(\.1) == Array(text.utf8))
        #expect(all.dropLast().allSatisfy { $0.1.last == 0x0A })
        #expect(all.contains { $0.1.count > 1000 })  // the long line grew its chunk
        #expect(all.map(\.1.count).max()! < 8000)
        let middle = all[all.count / 2].0
        let continued = try chunks(from: middle)
        #expect(continued.map(\.0) == all.filter { $0.0 >= middle }.map(\.0))
    }
}

@Suite struct JSONLineTests {
    func field(_ line: String, _ name: String = "text") -> JSONLine.Field {
        Array(line.utf8).withUnsafeBufferPointer { JSONLine.field(Array(name.utf8), in: $0) }
    }

    @Test func extractsTheFieldAndSkipsEverythingElse() {
        #expect(
            field(
                #"{"id": 3, "meta": {"a": [1, {"text": "no"}], "b": "}"}, "#
                    + #""text": "hi\n\"there\"\t\u00e9\ud83d\ude00 \/"}"#)
                == .value(Array("hi\n\"there\"\té😀 /".utf8)))
        #expect(field(#"  {"content": "x", "url": null}  "#) == .missing(keys: ["content", "url"]))
        #expect(field(#"{"content": "x"}"#, "content") == .value(Array("x".utf8)))
        #expect(field(#"{"text": 42}"#) == .notAString)
        #expect(field(#"{"text": null}"#) == .notAString)
        #expect(field(#"{"text": "lone \ud800 surrogate"}"#) == .invalidText)
        #expect(field("{}") == .missing(keys: []))
        for bad in [
            #"["text"]"#, #"{"text": "unterminated}"#, #"{"text" "x"}"#, #"{"text": "x"} trailing"#, "not json",
        ] {
            if case .malformed = field(bad) {} else { Issue.record("\(bad) was not refused: \(field(bad))") }
        }
    }
}

@Suite struct ChunkEncoderTests {
    @Test func textChunksSkipInvalidLinesAndJSONLinesGiveOneDocumentPerRecord() throws {
        let dir = try temporaryDirectory()
        let tokenizer = try SentencePieceModel(path: try trainSmallModel(in: dir))
        let encoder = try ChunkEncoder(tokenizer: tokenizer, textField: "text")
        let text = CorpusSource(name: "t.txt", format: .text, gzip: false, bytes: 0, modified: 0, estimatedTextBytes: 0)
        let bytes =
            [0xEF, 0xBB, 0xBF] + Array("the king\r\n".utf8) + [0x63, 0x61, 0x66, 0xE9, 0x0A] + Array("thou art\n".utf8)
        let task = ChunkTask(source: 0, offset: 0, line: 1, lines: 3, bytes: bytes, first: true)
        let e = try encoder.encode(task, source: text, path: "t.txt")
        #expect(e.ids.first == tokenizer.bosId && e.documents == 1)
        #expect(e.skipped == 1 && e.firstSkipped == "t.txt line 2")
        #expect(try tokenizer.decode(Array(e.ids.dropFirst())) == "the king\nthou art\n")
        #expect(e.cuts == [e.ids.count - (try tokenizer.encode("thou art\n")).count, e.ids.count])

        let jsonl = CorpusSource(
            name: "d.jsonl", format: .jsonl, gzip: false, bytes: 0, modified: 0, estimatedTextBytes: 0)
        let records = Array("{\"text\": \"the king\"}\n\n{\"id\": 2, \"text\": \"thou art\\nnoble\"}\n".utf8)
        let j = try encoder.encode(
            ChunkTask(source: 0, offset: 0, line: 10, lines: 3, bytes: records, first: true), source: jsonl,
            path: "d.jsonl")
        #expect(j.documents == 2 && j.ids.filter { $0 == tokenizer.bosId }.count == 2 && j.cuts.last == j.ids.count)
        #expect(try tokenizer.decode(j.ids.filter { $0 != tokenizer.bosId }) == "the kingthou art\nnoble")
        let missing = Array("{\"text\": \"ok\"}\n{\"body\": \"x\", \"id\": 1}\n".utf8)
        let error = message {
            _ = try encoder.encode(
                ChunkTask(source: 0, offset: 0, line: 7, lines: 2, bytes: missing, first: true), source: jsonl,
                path: "d.jsonl")
        }
        #expect(
            error.contains("d.jsonl line 8") && error.contains("no \"text\" field") && error.contains("body, id")
                && error.contains("--text-field"), "\(error)")
        let malformed = message {
            _ = try encoder.encode(
                ChunkTask(source: 0, offset: 0, line: 1, lines: 1, bytes: Array("{\"text\": \n".utf8), first: true),
                source: jsonl, path: "d.jsonl")
        }
        #expect(malformed.contains("d.jsonl line 1: not a JSON object"), "\(malformed)")
    }
}

@Suite struct ShardTests {
    @Test func layoutLocatesWindowsAcrossShardsPastTwoToThe32() {
        let layout = ShardLayout(windowsPerShard: [3_000_000_000, 0, 2_500_000_000, 7])
        #expect(layout.windows == 5_500_000_007)
        #expect(layout.locate(0) == (0, 0))
        #expect(layout.locate(2_999_999_999) == (0, 2_999_999_999))
        #expect(layout.locate(3_000_000_000) == (2, 0))
        #expect(layout.locate(5_499_999_999) == (2, 2_499_999_999))
        #expect(layout.locate(5_500_000_006) == (3, 6))
    }

    /// A synthetic manifest of two sparse shards of 2.5 billion 16-bit ids (5 GB each on paper, nothing on disk):
    /// the sampler and the validation windows address all 5 billion tokens.
    @Test func samplerDrawsOverShardsHoldingMoreThanTwoToThe32Tokens() throws {
        let dir = try temporaryDirectory()
        let perShard = 2_500_000_000
        var records: [TokenManifest.Shard] = []
        for s in 0..<2 {
            let hash = SHA256.hash(Array("shard \(s)".utf8))
            let path = dir + "/train-\(s).bin"
            let header = TokenFile.header(vocabSize: 65536, count: perShard, sourceHash: hash)
            try AtomicFile.write(header, to: path)
            #expect(truncate(path, off_t(TokenFile.headerSize + 2 * perShard)) == 0)
            // a marker near the end of each shard
            let fd = open(path, O_WRONLY)
            var marker = UInt16(7 + s).littleEndian
            #expect(pwrite(fd, &marker, 2, off_t(TokenFile.headerSize + 2 * (perShard - 1))) == 2)
            close(fd)
            records.append(.init(file: "train-\(s).bin", tokens: perShard, sha256: SHA256.hex(hash)))
        }
        let shards = try TokenShards(directory: dir, records: records, vocabSize: 65536)
        #expect(shards.count == 5_000_000_000 && shards.count > Int(UInt32.max))
        let sampler = try BatchSampler(tokens: shards, batch: 8, context: 64, seed: 1)
        #expect(sampler.layout.windows == 2 * (perShard - 64))
        let starts = (0..<4000).map { sampler.windowStart(step: $0, row: 0) }
        #expect(Set(starts.map(\.shard)) == [0, 1])
        #expect(starts.allSatisfy { $0.start >= 0 && $0.start + 64 < perShard })
        #expect(starts.contains { $0.shard == 1 && $0.start > 2_000_000_000 })
        var inputs = [Int32](repeating: -1, count: 64), targets = inputs
        shards.copy(shard: 1, from: perShard - 64, count: 64, into: &targets)
        #expect(targets.last == 8 && targets.dropLast().allSatisfy { $0 == 0 })
        let windows = try ValidationWindows(tokens: shards, context: 1000)
        #expect(windows.count == 2 * ((perShard - 1) / 1000))
        var longInputs = [Int32](repeating: -1, count: 1000), longTargets = longInputs
        // the last window of shard 1
        windows.fill(window: windows.count - 1, inputs: &longInputs, targets: &longTargets)
        #expect(longInputs.allSatisfy { $0 == 0 } && longTargets.allSatisfy { $0 == 0 })
    }

    @Test func shardWriterWritesReadableFilesOrNothing() throws {
        let dir = try temporaryDirectory()
        let writer = try ShardWriter(path: dir + "/s.bin", vocabSize: 70_000)
        try writer.append([1, 2, 69_999][...])
        try writer.append([5][...])
        let record = try writer.finish()
        let mapped = try MappedTokens(path: dir + "/s.bin")
        #expect(record.tokens == 4 && (0..<4).map { mapped[$0] } == [1, 2, 69_999, 5] && mapped.header.width == 4)
        #expect(SHA256.hex(mapped.header.sourceHash) == record.sha256)
        let abandoned = try ShardWriter(path: dir + "/t.bin", vocabSize: 100)
        try abandoned.append([1][...])
        abandoned.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["s.bin"])
    }
}

@Suite struct StreamingPreparationTests {
    /// A corpus directory: `documents` text files, one gzip-compressed, and a JSON Lines file.
    func corpus(in dir: String, documents: Int = 12, lines: Int = 400) throws -> String {
        let path = dir + "/corpus"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for d in 0..<documents {
            try AtomicFile.write(syntheticText(lines: lines, seed: UInt64(d)), to: path + "/doc\(d).txt")
        }
        try gzipFile(path + "/doc1.txt")
        try FileManager.default.removeItem(atPath: path + "/doc1.txt")
        var records = ""
        for r in 0..<50 {
            let text = syntheticText(lines: 8, seed: UInt64(100 + r)).replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
                .replacingOccurrences(of: "\t", with: "\\t")
            records += "{\"id\": \(r), \"text\": \"\(text)\"}\n"
        }
        try AtomicFile.write(records, to: path + "/web.jsonl")
        return path
    }

    func options(_ corpus: String, _ data: String, shardTokens: Int = 5000, validation: Int? = 3000) -> DataOptions {
        DataOptions(
            corpus: corpus, dataRoot: data, tokenizer: TokenizerTrainingOptions(vocabSize: 400),
            validationTokens: validation, shardTokens: shardTokens)
    }

    func allIds(_ shards: TokenShards) -> [Int32] { shards.shards.flatMap { s in (0..<s.count).map { s[$0] } } }

    @Test func shardsHoldTheCorpusInOrderWithAFixedValidationHead() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let prepared = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        let s = prepared.stats
        #expect(s.sources == 13 && s.documents == 12 + 50 && s.skipped == 0)
        #expect(s.validationTokens >= 3000 && s.validationTokens < 3100)  // cut at the first line end after 3000
        #expect(
            s.trainShards > 3
                && prepared.train.shards.dropLast().allSatisfy { $0.count >= 5000 && $0.count < 5000 + 12_000 })
        #expect(prepared.manifest.train.map(\.tokens).reduce(0, +) == s.trainTokens)
        // validation then training is the corpus in file order: decode(all ids) == the files' texts
        let ids = allIds(prepared.validation) + allIds(prepared.train)
        let bos = prepared.tokenizer.bosId
        let documents = try ids.split(separator: bos).map { try prepared.tokenizer.decode(Array($0)) }
        #expect(documents[0] == syntheticText(lines: 400, seed: 0))
        #expect(documents[1] == syntheticText(lines: 400, seed: 1))  // from doc1.txt.gz
        #expect(documents.count == 62)
        #expect(documents.contains(syntheticText(lines: 8, seed: 100)))  // a JSON Lines record, unescaped
        #expect(ids.filter { $0 == bos }.count == 62)
        // reused as is
        let again = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        #expect(
            !again.stats.tokensRebuilt && !again.stats.tokenizerTrained && again.train.sha256 == prepared.train.sha256)
        // the shard size does not change the ids: a cache is reused whatever the size asked
        let otherSize = try DataPreparation.prepare(options(path, dir + "/d", shardTokens: 100_000), context: 32)
        #expect(!otherSize.stats.tokensRebuilt)
        // one big shard elsewhere: the same ids
        let single = try DataPreparation.prepare(options(path, dir + "/e", shardTokens: 100_000_000), context: 32)
        #expect(single.train.shards.count == 1 && allIds(single.train) == allIds(prepared.train))
        #expect(allIds(single.validation) == allIds(prepared.validation))
    }

    @Test func defaultValidationIsFivePercent() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let prepared = try DataPreparation.prepare(options(path, dir + "/d", validation: nil), context: 32)
        let fraction = Double(prepared.validation.count) / Double(prepared.validation.count + prepared.train.count)
        #expect(fraction > 0.035 && fraction < 0.07, "\(fraction)")
    }

    @Test func anInterruptedPreparationContinuesWhereItStopped() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let reference = try DataPreparation.prepare(options(path, dir + "/ref"), context: 32)
        struct Stop: Error {}
        var saves = 0
        #expect(throws: Stop.self) {
            _ = try DataPreparation.prepare(options(path, dir + "/d"), context: 32, log: .silent) { _ in
                saves += 1
                if saves == 2 { throw Stop() }
            }
        }
        let cache = reference.cacheDirectory.replacingOccurrences(of: dir + "/ref", with: dir + "/d")
        #expect(FileManager.default.fileExists(atPath: cache + "/progress.json"))
        #expect(!FileManager.default.fileExists(atPath: cache + "/manifest.json"))
        let lines = LockedLines()
        let resumed = try DataPreparation.prepare(
            options(path, dir + "/d"), context: 32, log: PrepareLog(line: { lines.append($0) }))
        #expect(lines.all.contains { $0.contains("continuing an interrupted preparation") }, "\(lines.all)")
        #expect(resumed.stats.sourcesEncoded < 13)
        #expect(
            resumed.train.sha256 == reference.train.sha256 && resumed.validation.sha256 == reference.validation.sha256)
        #expect(resumed.manifest.train.map(\.sha256) == reference.manifest.train.map(\.sha256))
        #expect(!FileManager.default.fileExists(atPath: cache + "/progress.json"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".partial") }
        #expect(leftovers.isEmpty)
    }

    /// A stop request (Ctrl-C) closes the open shards where they are and saves the position: the next run continues
    /// exactly there, and the splits hold the same ids as an uninterrupted preparation's.
    @Test func aStopRequestSavesWhereItStopped() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let reference = try DataPreparation.prepare(options(path, dir + "/ref", shardTokens: 1_000_000), context: 32)
        let checks = LockedLines()
        let stopping = PrepareLog(
            line: { _ in },
            stopRequested: {
                checks.append("check")
                return checks.all.count >= 2 ? "SIGINT" : nil  // after the first batch of chunks
            })
        let error = message {
            _ = try DataPreparation.prepare(
                options(path, dir + "/d", shardTokens: 1_000_000), context: 32, log: stopping)
        }
        #expect(
            error.contains("SIGINT: data preparation stopped") && error.contains("continue where it stopped"),
            "\(error)")
        let lines = LockedLines()
        let resumed = try DataPreparation.prepare(
            options(path, dir + "/d", shardTokens: 1_000_000), context: 32,
            log: PrepareLog(line: { lines.append($0) }))
        #expect(lines.all.contains { $0.contains("continuing an interrupted preparation") })
        #expect(resumed.stats.sourcesEncoded > 0 && resumed.stats.sourcesEncoded < 13)
        #expect(resumed.train.shards.count == 2)  // the shard closed at the stop, and the rest
        #expect(
            allIds(resumed.train) == allIds(reference.train)
                && allIds(resumed.validation) == allIds(reference.validation))
    }

    @Test func addedFilesAreEncodedAloneAndChangedFilesReencodeEverything() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let first = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        try AtomicFile.write(syntheticText(lines: 300, seed: 77), to: path + "/zz-new.txt")
        let lines = LockedLines()
        let added = try DataPreparation.prepare(
            options(path, dir + "/d"), context: 32, log: PrepareLog(line: { lines.append($0) }))
        #expect(added.stats.sourcesEncoded == 1 && !added.stats.tokenizerTrained)
        #expect(lines.all.contains { $0.contains("1 file added") })
        #expect(added.validation.sha256 == first.validation.sha256)
        #expect(Array(added.manifest.train.prefix(first.manifest.train.count)) == first.manifest.train)
        #expect(added.stats.documents == first.stats.documents + 1)
        let newIds = allIds(added.train).suffix(added.train.count - first.train.count)
        #expect(try added.tokenizer.decode(Array(newIds.dropFirst())) == syntheticText(lines: 300, seed: 77))
        // a changed file: everything again (with the tokenizer retrained on the new sample)
        try AtomicFile.write(syntheticText(lines: 50, seed: 5), to: path + "/doc3.txt")
        let changed = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        #expect(changed.stats.sourcesEncoded == 14)
        // the old shards are gone, the new ones listed
        let files = Set(
            try FileManager.default.contentsOfDirectory(atPath: changed.cacheDirectory).filter { $0.hasSuffix(".bin") })
        #expect(files == Set((changed.manifest.train + changed.manifest.validation).map(\.file)))
    }

    @Test func singleFileCachesOfEarlierVersionsAreRebuilt() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let first = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        unlink(first.cacheDirectory + "/manifest.json")
        try TokenFile.write(
            [1, 2, 3], vocabSize: 400, sourceHash: [UInt8](repeating: 0, count: 32),
            to: first.cacheDirectory + "/train.bin")
        try TokenFile.write(
            [1, 2, 3], vocabSize: 400, sourceHash: [UInt8](repeating: 0, count: 32),
            to: first.cacheDirectory + "/val.bin")
        let lines = LockedLines()
        let rebuilt = try DataPreparation.prepare(
            options(path, dir + "/d"), context: 32, log: PrepareLog(line: { lines.append($0) }))
        #expect(lines.all.contains { $0.contains("built by an earlier ngpt") })
        #expect(rebuilt.train.sha256 == first.train.sha256)
        #expect(!FileManager.default.fileExists(atPath: first.cacheDirectory + "/train.bin"))
    }

    @Test func theTokenizerIsTrainedOnASampleAfterTheValidationHead() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir, documents: 40, lines: 2500)  // ≈ 3 MB
        var o = options(path, dir + "/d", validation: nil)
        o.tokenizer.sampleBytes = 1_100_000
        let prepared = try DataPreparation.prepare(o, context: 32)
        #expect(prepared.stats.tokenizerTrained)
        #expect(
            prepared.stats.tokenizerSampleBytes > 500_000 && prepared.stats.tokenizerSampleBytes < 1_100_000 + (1 << 20)
        )
        // the sample comes from after the head: validation text (doc0) is not in it
        let sources = try CorpusFiles.list(path).sources
        let total = sources.reduce(0) { $0 + $1.estimatedTextBytes }
        let sample = try TokenizerSample.read(
            root: path, sources: sources, from: total / 10, bytes: 1_100_000, textField: "text"
        ) { _ in }
        let firstLine = String(syntheticText(lines: 2500, seed: 0).split(separator: "\n")[5])
        #expect(!sample.contains(firstLine))
        #expect(sample.utf8.count > 500_000)
    }

    @Test func badInputGetsOneLineAndLeavesThePreviousCacheUsable() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let good = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        // a JSON line without the field, a truncated gzip file: refused, the manifest untouched, nothing half-written
        func refused(_ file: String, _ bytes: [UInt8], _ expected: String) throws {
            try AtomicFile.write(bytes, to: path + "/" + file)
            let error = message { _ = try DataPreparation.prepare(options(path, dir + "/d"), context: 32) }
            #expect(error.contains(expected), "\(error)")
            #expect(TokenManifest.read(good.cacheDirectory + "/manifest.json") == good.manifest)
            #expect(
                try TokenShards(directory: good.cacheDirectory, records: good.manifest.train, vocabSize: 400).sha256
                    == good.train.sha256)
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: good.cacheDirectory).allSatisfy {
                    !$0.hasSuffix(".partial")
                })
            try FileManager.default.removeItem(atPath: path + "/" + file)
        }
        try refused(
            "zz.jsonl", Array("{\"text\": \"fine\"}\n{\"content\": \"where is it\"}\n".utf8),
            "zz.jsonl line 2: the record has no \"text\" field")
        let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/doc1.txt.gz")))
        try refused("zz.txt.gz", Array(gz.prefix(gz.count - 40)), "is truncated")
        // a corpus with no text
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        try AtomicFile.write("", to: dir + "/empty/a.txt")
        #expect(
            message { _ = try DataPreparation.prepare(options(dir + "/empty", dir + "/d2"), context: 32) }.contains(
                "holds no text"))
        // invalid UTF-8 lines are skipped and counted
        try AtomicFile.write(
            Array("good line\n".utf8) + [0xFF, 0xFE, 0x0A] + Array("another\n".utf8), to: path + "/zz-latin.txt")
        let skipped = try DataPreparation.prepare(options(path, dir + "/d"), context: 32)
        #expect(skipped.stats.skipped == 1 && skipped.stats.firstSkipped?.contains("zz-latin.txt line 2") == true)
    }

    /// Only regular files are corpora: a FIFO (whose open would block until a writer comes), a device and a socket
    /// are refused with one line naming the file, alone or inside a corpus directory.
    @Test func onlyRegularFilesAreRead() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        #expect(mkfifo(path + "/pipe.txt", 0o644) == 0)
        let inside = message { _ = try DataPreparation.prepare(options(path, dir + "/d"), context: 32) }
        #expect(
            inside.contains(path + "/pipe.txt") && inside.contains("a FIFO (named pipe), not a regular file"),
            "\(inside)")
        let alone = message { _ = try DataPreparation.prepare(options(path + "/pipe.txt", dir + "/d"), context: 32) }
        #expect(alone.contains("a FIFO (named pipe), not a regular file"), "\(alone)")
        let device = message { _ = try DataPreparation.prepare(options("/dev/zero", dir + "/d"), context: 32) }
        #expect(device.contains("/dev/zero is a character device, not a regular file"), "\(device)")
        #expect(message { _ = try Corpus.readText(path + "/pipe.txt") }.contains("not a regular file"))
        // a binary file, plain or compressed, is named as such (not left to the tokenizer's vocabulary message)
        try FileManager.default.removeItem(atPath: path + "/pipe.txt")
        var binary = [UInt8](repeating: 0x41, count: 5000)
        binary[1234] = 0
        try AtomicFile.write(binary, to: path + "/image.txt")
        let plain = message { _ = try DataPreparation.prepare(options(path, dir + "/d"), context: 32) }
        #expect(plain.contains("image.txt looks binary (a NUL byte at offset 1234"), "\(plain)")
        try gzipFile(path + "/image.txt")
        try FileManager.default.removeItem(atPath: path + "/image.txt")
        let compressed = message { _ = try DataPreparation.prepare(options(path, dir + "/d"), context: 32) }
        #expect(compressed.contains("image.txt.gz looks binary"), "\(compressed)")
    }

    /// Concatenated gzip members are one text: the same split and the same tokenizer as that text uncompressed
    /// (the gzip trailer holds only the last member's size, so sizes are measured by decompressing).
    @Test func concatenatedGzipMembersPrepareLikeThePlainText() throws {
        let dir = try temporaryDirectory()
        let lines = syntheticText(lines: 6000, seed: 9).split(separator: "\n", omittingEmptySubsequences: false)
        let first = lines[..<2000].joined(separator: "\n") + "\n", second = lines[2000...].joined(separator: "\n")
        try FileManager.default.createDirectory(atPath: dir + "/plain", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/gz", withIntermediateDirectories: true)
        try AtomicFile.write(first + second, to: dir + "/plain/all.txt")
        try AtomicFile.write(first, to: dir + "/a.txt")
        try AtomicFile.write(second, to: dir + "/b.txt")
        try gzipFile(dir + "/a.txt")
        try gzipFile(dir + "/b.txt")
        let members =
            try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/a.txt.gz")))
            + [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/b.txt.gz")))
        try AtomicFile.write(members, to: dir + "/gz/all.txt.gz")
        let plain = try DataPreparation.prepare(options(dir + "/plain", dir + "/d1", validation: nil), context: 32)
        let gzip = try DataPreparation.prepare(options(dir + "/gz", dir + "/d2", validation: nil), context: 32)
        #expect(gzip.manifest.sources[0].estimatedTextBytes == Array((first + second).utf8).count)
        #expect(
            gzip.stats.validationTokens == plain.stats.validationTokens,
            "\(gzip.stats.validationTokens) vs \(plain.stats.validationTokens)")
        #expect(gzip.tokenizer.modelBytes == plain.tokenizer.modelBytes)
        #expect(allIds(gzip.validation) == allIds(plain.validation) && allIds(gzip.train) == allIds(plain.train))
        // the measured size is remembered: a second preparation reuses the cache as it is
        let again = try DataPreparation.prepare(options(dir + "/gz", dir + "/d2", validation: nil), context: 32)
        #expect(!again.stats.tokensRebuilt && !again.stats.tokenizerTrained)
    }

    /// The encoder's output does not depend on the number of threads, and a write that fails (a file-size limit
    /// standing in for a full disk) leaves the last complete cache usable; the next run completes.
    @Test func threadCountsAgreeAndAFailedWriteKeepsTheLastCache() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let exe = productsDirectory() + "/ngpt-train"
        var hashes: [String] = []
        for threads in ["1", "2"] {
            let (status, _, err) = try runProcess([
                exe, "prepare", "--corpus", path, "--data-dir", dir + "/t" + threads, "--vocab-size", "400",
                "--context", "32", "--threads", threads, "--shard-tokens", "5000", "--val-tokens", "3000",
            ])
            #expect(status == 0, "\(err)")
            let cache =
                try FileManager.default.subpathsOfDirectory(atPath: dir + "/t" + threads).first {
                    $0.hasSuffix("manifest.json")
                } ?? ""
            let manifest = TokenManifest.read(dir + "/t" + threads + "/" + cache)
            hashes.append(((manifest?.validation ?? []) + (manifest?.train ?? [])).map(\.sha256).joined(separator: ","))
        }
        #expect(!hashes[0].isEmpty && hashes[0] == hashes[1])

        // add a large file, then prepare under a 64 kB file-size limit: the new shard cannot be written
        try AtomicFile.write(syntheticText(lines: 20_000, seed: 8), to: path + "/zz-big.txt")
        let args = [
            exe, "prepare", "--corpus", path, "--data-dir", dir + "/t1", "--vocab-size", "400", "--context", "32",
            "--shard-tokens", "1000000", "--val-tokens", "3000",
        ]
        let (status, _, err) = try runProcess(["bash", "-c", "ulimit -f 64; exec \"$@\"", "prepare"] + args)
        #expect(status != 0)
        let errorLines = err.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(
            errorLines.count == 1 && errorLines[0].contains("writing") && errorLines[0].contains("failed"), "\(err)")
        let manifestPath = try FileManager.default.subpathsOfDirectory(atPath: dir + "/t1").first {
            $0.hasSuffix("manifest.json")
        }
        let cache = dir + "/t1/" + (manifestPath ?? "")
        let manifest = try #require(TokenManifest.read(cache))
        #expect((manifest.validation + manifest.train).map(\.sha256).joined(separator: ",") == hashes[0])
        let directory = (cache as NSString).deletingLastPathComponent
        #expect(
            try TokenShards(directory: directory, records: manifest.train, vocabSize: 400).count == manifest.trainTokens
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasSuffix(".partial") })
        let (after, out, err2) = try runProcess(args)
        #expect(after == 0 && out.contains("1 of 14 files encoded now"), "\(out)\(err2)")
    }
}

/// Lines collected from a `PrepareLog` (which may call from any thread).
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
