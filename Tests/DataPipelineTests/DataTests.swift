import Common
import Foundation
import Kernels
import TestSupport
import Testing
import Tokenizer

@testable import DataPipeline

@Suite struct CorpusTests {
    @Test func stripsGutenbergBoilerplate() {
        let text = """
            The Project Gutenberg EBook of Hamlet
            licence blah
            *** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***
            ACT I.
            To be, or not to be.
            *** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***
            more licence
            """
        #expect(Corpus.stripGutenbergBoilerplate(text) == "ACT I.\nTo be, or not to be.\n")
        #expect(Corpus.stripGutenbergBoilerplate("plain text\n") == "plain text\n")
    }
}

@Suite struct TokenFileTests {
    @Test(arguments: [4096, 70_000])
    func writesHeaderAndReadsThroughMmap(vocab: Int) throws {
        let dir = try temporaryDirectory()
        var rng = SplitMix64(seed: 3)
        let ids = (0..<1001).map { _ in Int32(rng.below(vocab)) }
        let hash = SHA256.hash(Array("source".utf8))
        try TokenFile.write(ids, vocabSize: vocab, sourceHash: hash, to: dir + "/t.bin")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/t.bin")))
        let width = vocab <= 65536 ? 2 : 4
        #expect(bytes.count == 64 + 1001 * width)
        #expect(Array(bytes[0..<8]) == Array("NGPTTOKS".utf8))
        #expect(bytes[8] == 1 && bytes[12] == UInt8(width))
        let mapped = try MappedTokens(path: dir + "/t.bin")
        #expect(mapped.count == 1001 && mapped.vocabSize == vocab && mapped.header.sourceHash == hash)
        #expect((0..<1001).map { mapped[$0] } == ids)
    }

    @Test func corruptFilesAreRefused() throws {
        let dir = try temporaryDirectory()
        try TokenFile.write(
            [1, 2, 3, 4], vocabSize: 10, sourceHash: [UInt8](repeating: 7, count: 32), to: dir + "/ok.bin")
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/ok.bin")))
        func refuse(_ bytes: [UInt8], _ expected: String) throws {
            try AtomicFile.write(bytes, to: dir + "/bad.bin")
            let error = #expect(throws: UserError.self) { try MappedTokens(path: dir + "/bad.bin") }
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        }
        try refuse(Array(good.prefix(40)), "truncated")
        try refuse(Array(good.dropLast(1)), "truncated or corrupt")
        var badMagic = good; badMagic[0] = 0x41
        try refuse(badMagic, "bad magic")
        var badVersion = good; badVersion[8] = 9
        try refuse(badVersion, "format version 9")
        var badId = good; badId[64] = 200  // id 200 ≥ vocab 10
        try refuse(badId, "≥ its vocab size")
        // no temp files are left behind by the atomic writer
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.contains(".tmp-") })
    }
}

@Suite struct SamplerTests {
    func tokens(_ n: Int, dir: String) throws -> TokenShards {
        try TokenFile.write(
            (0..<n).map { Int32($0 % 1000) }, vocabSize: 1000, sourceHash: [UInt8](repeating: 0, count: 32),
            to: dir + "/s.bin")
        return TokenShards([try MappedTokens(path: dir + "/s.bin")])
    }

    @Test func windowsArePureFunctionsOfSeedAndStep() throws {
        let t = try tokens(10_000, dir: try temporaryDirectory())
        let a = try BatchSampler(tokens: t, batch: 4, context: 16, seed: 42)
        // a fresh sampler, as after a resume
        let resumed = try BatchSampler(tokens: t, batch: 4, context: 16, seed: 42)
        var ia = [Int32](repeating: 0, count: 64), ta = ia, ib = ia, tb = ia
        a.fill(step: 7, inputs: &ia, targets: &ta)
        resumed.fill(step: 7, inputs: &ib, targets: &tb)
        #expect(ia == ib && ta == tb)
        for r in 0..<4 {  // targets are inputs shifted by one
            #expect(Array(ta[(r * 16)..<(r * 16 + 15)]) == Array(ia[(r * 16 + 1)..<(r * 16 + 16)]))
        }
        resumed.fill(step: 8, inputs: &ib, targets: &tb)
        #expect(ia != ib)
        let other = try BatchSampler(tokens: t, batch: 4, context: 16, seed: 43)
        other.fill(step: 7, inputs: &ib, targets: &tb)
        #expect(ia != ib)
        // starts cover the range and stay in bounds
        let starts = (0..<2000).map { a.windowStart(step: $0, row: 0).start }
        #expect(starts.allSatisfy { $0 >= 0 && $0 + 16 < 10_000 })
        #expect(starts.min()! < 500 && starts.max()! > 9_400)
    }

    @Test func validationWindowsAreFixedAndOrdered() throws {
        let t = try tokens(100, dir: try temporaryDirectory())
        let w = try ValidationWindows(tokens: t, context: 16)
        #expect(w.count == 6)  // (100 − 1) / 16
        var i = [Int32](repeating: 0, count: 16), tg = i
        w.fill(window: 2, inputs: &i, targets: &tg)
        #expect(i == (32..<48).map(Int32.init) && tg == (33..<49).map(Int32.init))
        #expect(try ValidationWindows(tokens: t, context: 16, maxWindows: 3).count == 3)
        #expect(throws: UserError.self) { try ValidationWindows(tokens: t, context: 100) }
        #expect(throws: UserError.self) { try BatchSampler(tokens: t, batch: 1, context: 100, seed: 0) }
    }
}

@Suite struct PreparationTests {
    func corpus(in dir: String, documents: Int = 24, lines: Int = 150) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/corpus", withIntermediateDirectories: true)
        for d in 0..<documents {
            try AtomicFile.write(syntheticText(lines: lines, seed: UInt64(d)), to: dir + "/corpus/doc\(d).txt")
        }
        return dir + "/corpus"
    }

    @Test func prepareBuildsReusesAndRebuildsCaches() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let options = DataOptions(
            corpus: path, dataRoot: dir + "/data", tokenizer: TokenizerTrainingOptions(vocabSize: 400))
        let first = try DataPreparation.prepare(options, context: 32)
        #expect(first.stats.tokenizerTrained && first.stats.tokensRebuilt)
        #expect(first.stats.documents == 24 && first.stats.sources == 24)
        #expect(first.train.count > 1000 && first.validation.count > 33)
        #expect(first.stats.bytesPerToken > 1)
        // Each document starts with BOS and decodes back to its text.
        let ids = first.validation.shards.flatMap { s in (0..<s.count).map { s[$0] } }
        #expect(ids[0] == first.tokenizer.bosId)
        let decoded = try first.tokenizer.decode(ids.filter { $0 != first.tokenizer.bosId })
        #expect(decoded.contains("the") && decoded.hasSuffix("\n"))
        // Unchanged: reused.
        let second = try DataPreparation.prepare(options, context: 32)
        #expect(!second.stats.tokenizerTrained && !second.stats.tokensRebuilt)
        // A changed training document: tokenizer retrained, caches rebuilt.
        try AtomicFile.write(syntheticText(lines: 150, seed: 999), to: path + "/doc3.txt")
        let third = try DataPreparation.prepare(options, context: 32)
        #expect(third.stats.tokensRebuilt)
        // An existing tokenizer model is used as given.
        let external = try DataPreparation.prepare(
            DataOptions(
                corpus: path, dataRoot: dir + "/data",
                tokenizerModel: first.tokenizerPath), context: 32)
        #expect(external.tokenizer.vocabSize == 400 && !external.stats.tokenizerTrained)
    }

    @Test func preparationRefusesBadInput() throws {
        let dir = try temporaryDirectory()
        func message(_ options: DataOptions, context: Int = 32) -> String {
            do { _ = try DataPreparation.prepare(options, context: context); return "" } catch let e as UserError {
                return e.message
            } catch { return "\(error)" }
        }
        let small = TokenizerTrainingOptions(vocabSize: 400)
        #expect(
            message(DataOptions(corpus: dir + "/nope", dataRoot: dir + "/d", tokenizer: small)).contains(
                "corpus not found"))
        let path = try corpus(in: dir, documents: 3, lines: 150)
        // a context longer than the validation split
        #expect(
            message(DataOptions(corpus: path, dataRoot: dir + "/d", tokenizer: small), context: 100_000)
                .contains("fewer than one window"))
        // a vocab larger than the corpus supports
        #expect(
            message(
                DataOptions(corpus: path, dataRoot: dir + "/d", tokenizer: TokenizerTrainingOptions(vocabSize: 60_000))
            )
            .contains("--vocab-size"))
        // a vocabulary smaller than the characters it must hold: the message gives the minimum
        let tiny = message(
            DataOptions(corpus: path, dataRoot: dir + "/d", tokenizer: TokenizerTrainingOptions(vocabSize: 10)))
        #expect(tiny.contains("--vocab-size 10 is too small") && tiny.contains("distinct character"), "\(tiny)")
        let minimum = Int(
            tiny.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }.last ?? 0)
        #expect(
            minimum > 256
                && message(
                    DataOptions(
                        corpus: path, dataRoot: dir + "/d", tokenizer: TokenizerTrainingOptions(vocabSize: minimum))
                ).isEmpty)
        // a corrupt tokenizer model given by the user (not a cache: nothing tells the user to delete it)
        try AtomicFile.write("junk", to: dir + "/junk.model")
        let junk = message(DataOptions(corpus: path, dataRoot: dir + "/d", tokenizerModel: dir + "/junk.model"))
        #expect(junk.contains("not a valid SentencePiece model") && !junk.contains("delete"))
        // a data directory that cannot be created: the system's reason, no Foundation error dump
        let unwritable = message(DataOptions(corpus: path, dataRoot: dir + "/junk.model/d", tokenizer: small))
        #expect(
            unwritable.contains("cannot create directory") && !unwritable.contains("NSCocoaErrorDomain"),
            "\(unwritable)")
        // a damaged token cache (a truncated shard, a shard whose vocab disagrees with the tokenizer) is encoded again
        let ok = DataOptions(corpus: path, dataRoot: dir + "/d", tokenizer: small)
        let prepared = try DataPreparation.prepare(ok, context: 32)
        let trainShard = prepared.cacheDirectory + "/" + prepared.manifest.train[0].file
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: trainShard)))
        try AtomicFile.write(Array(bytes.dropLast(3)), to: trainShard)
        let repaired = try DataPreparation.prepare(ok, context: 32)
        #expect(repaired.stats.tokensRebuilt && repaired.train.sha256 == prepared.train.sha256)
        var mismatched = bytes
        mismatched[16] = 0xFF; mismatched[17] = 0xFF  // vocab 65535, same hash
        try AtomicFile.write(mismatched, to: prepared.cacheDirectory + "/" + repaired.manifest.train[0].file)
        let again = try DataPreparation.prepare(ok, context: 32)
        #expect(again.stats.tokensRebuilt && again.train.sha256 == prepared.train.sha256)
    }

    /// A tokenizer is a function of its training text and options: not of the thread count, the data directory
    /// or the process that trained it. A damaged cached model is trained again.
    @Test func tokenizersAreReproducible() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let exe = productsDirectory() + "/ngpt-train"
        var models: [Data] = []
        for (dataDir, threads) in [("/a", "1"), ("/b", "2"), ("/c", "200")] {
            let (status, _, err) = try runProcess([
                exe, "prepare", "--corpus", path, "--data-dir", dir + dataDir, "--vocab-size", "400",
                "--context", "32", "--threads", threads,
            ])
            #expect(status == 0, "\(err)")
            let found = FileManager.default.enumerator(atPath: dir + dataDir)?.compactMap { $0 as? String }.first {
                $0.hasSuffix("tokenizer.model")
            }
            models.append(try Data(contentsOf: URL(fileURLWithPath: dir + dataDir + "/" + (found ?? ""))))
        }
        #expect(models[0] == models[1] && models[1] == models[2])
        #expect(String(decoding: models[0], as: UTF8.self).range(of: dir) == nil, "the model records a path")
        let options = DataOptions(
            corpus: path, dataRoot: dir + "/a", tokenizer: TokenizerTrainingOptions(vocabSize: 400))
        let prepared = try DataPreparation.prepare(options, context: 32)
        try AtomicFile.write("damaged", to: prepared.tokenizerPath)
        let again = try DataPreparation.prepare(options, context: 32)
        #expect(again.stats.tokenizerTrained && again.tokenizer.modelBytes == [UInt8](models[0]))
    }

    @Test func prepareCommandPrintsItsTableAndFailsCleanly() throws {
        let dir = try temporaryDirectory()
        let path = try corpus(in: dir)
        let exe = productsDirectory() + "/ngpt-train"
        let (status, out, _) = try runProcess([
            exe, "prepare", "--corpus", path, "--data-dir", dir + "/d", "--vocab-size", "400",
            "--context", "32",
        ])
        #expect(status == 0)
        for key in ["corpus", "tokens (train / val)", "bytes per token", "vocab size", "token cache", "time"] {
            #expect(out.contains(key))
        }
        let (bad, _, err) = try runProcess([exe, "prepare", "--corpus", dir + "/missing", "--data-dir", dir + "/d"])
        #expect(bad != 0)
        #expect(err.split(separator: "\n").last?.hasPrefix("error: corpus not found") == true)
    }
}

/// The debian-docs corpus's preparation steps, on files made here (fetching needs apt and the network).
@Suite struct DebianDocsTests {
    @Test func htmlIsReducedToItsText() {
        let html = """
            <html><head><title>t</title><style>p { color: red }</style></head>
            <body><h1>CREATE TABLE</h1>
            <script>var x = "<b>";</script>
            <p>Creates a <em>new</em> table &mdash; see &lt;name&gt; &amp; more.</p>


            <p>Second&nbsp;paragraph.</p></body></html>
            """
        #expect(
            DebianDocsCorpus.htmlText(html)
                == "CREATE TABLE\n\nCreates a new table — see <name> & more.\n\nSecond paragraph.\n")
    }

    @Test func dictionariesAreCutAtEntryBoundaries() {
        let entry = "word\n   a definition\n   continued\n"
        let pieces = DebianDocsCorpus.dictionaryPieces(String(repeating: entry, count: 10), size: 40)
        #expect(pieces.joined() == String(repeating: entry, count: 10))
        #expect(
            pieces.count > 1 && pieces.dropLast().allSatisfy { $0.hasPrefix("word\n") && $0.hasSuffix("continued\n") })
    }

    /// Every package's files are spread over the whole rank range, so sorted names interleave the packages.
    @Test func filesInterleaveAcrossPackages() throws {
        let root = try temporaryDirectory()
        for (package, count) in [("a-doc", 4), ("b-doc", 2)] {
            try Directories.create(root + "/\(package)/usr/share/doc", fix: "")
            for i in 0..<count {
                try AtomicFile.write("text \(i)\n", to: root + "/\(package)/usr/share/doc/page\(i).txt")
            }
        }
        for package in ["a-doc", "b-doc"] {
            let source = DebianDocsCorpus.Source(package, "usr/share/doc", ".txt", "test")
            _ = try DebianDocsCorpus.collect(source, from: root + "/\(package)/usr/share/doc", into: root + "/texts")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/texts").sorted()
        #expect(
            names == [
                "0000-a-doc--page0.txt", "0000-b-doc--page0.txt", "2500-a-doc--page1.txt", "5000-a-doc--page2.txt",
                "5000-b-doc--page1.txt", "7500-a-doc--page3.txt",
            ])
    }
}

/// Working folders (`.fetch-PID`, an export's staging): those of processes that are gone are removed when the next
/// one is made, those of running processes are left alone, and the new one starts empty.
@Suite struct WorkingFolderTests {
    @Test func abandonedFoldersAreRemovedLiveOnesKept() throws {
        let dir = try temporaryDirectory("working")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        let dead = dir + "/.fetch-\(p.processIdentifier)", live = dir + "/.fetch-\(getppid())"
        let mine = dir + "/.fetch-\(getpid())", other = dir + "/.fetch-notapid"
        for path in [dead, live, mine, other] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try AtomicFile.write("x", to: path + "/file")
        }
        let made = try Directories.working(in: dir, prefix: ".fetch-", fix: "")
        #expect(made == mine)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mine).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live + "/file"))
        #expect(FileManager.default.fileExists(atPath: other + "/file"))
    }
}
