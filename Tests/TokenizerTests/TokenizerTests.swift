import Common
import Foundation
import Kernels
import TestSupport
import Testing

@testable import Tokenizer

@Suite struct SentencePieceModelTests {
    @Test(arguments: [TokenizerTrainingOptions.ModelType.bpe, .unigram])
    func roundTripIsExact(type: TokenizerTrainingOptions.ModelType) throws {
        let dir = try temporaryDirectory()
        let model = try SentencePieceModel(path: try trainSmallModel(in: dir, vocab: 340, type: type))
        #expect(model.vocabSize == 340)
        let samples = [
            "", "x", "    indented line\n\t\ttabs\n", "the king\n\n\nthree blank lines above",
            "digits 0123456789 and 3.14159", "Unicode: Æthelred naïve café “quotes” — ☃ 新しい 🙂",
            "  leading and trailing spaces  ", "a\nb\r\nc",
            syntheticText(lines: 50, seed: 99),
        ]
        for text in samples {
            let ids = try model.encode(text)
            #expect(!ids.contains(model.unkId), "byte fallback: nothing is <unk> in \(text.debugDescription)")
            #expect(try model.decode(ids) == text)
        }
    }

    @Test func specialIdsAndPieces() throws {
        let model = try SentencePieceModel(path: try trainSmallModel(in: try temporaryDirectory()))
        #expect(model.unkId == 0 && model.bosId == 1 && model.eosId == 2)
        #expect(try model.piece(ofId: 1) == "<s>")
        #expect(model.id(ofPiece: "</s>") == 2)
        #expect(model.id(ofPiece: "surely-not-a-piece") == model.unkId)
        #expect(model.id(ofPiece: "<0x0A>") > 2)
        for bad: Int32 in [-1, 400, Int32.max] {
            #expect(throws: UserError.self) { try model.piece(ofId: bad) }
            #expect(throws: UserError.self) { try model.decode([5, bad]) }
        }
    }

    @Test func badModelFilesAreErrors() throws {
        let dir = try temporaryDirectory()
        #expect(throws: UserError.self) { try SentencePieceModel(path: dir + "/missing.model") }
        try AtomicFile.write("not a model", to: dir + "/garbage.model")
        let error = #expect(throws: UserError.self) { try SentencePieceModel(path: dir + "/garbage.model") }
        #expect(error?.message.contains("not a valid SentencePiece model") == true)
        let good = try Data(contentsOf: URL(fileURLWithPath: try trainSmallModel(in: dir)))
        try AtomicFile.write([UInt8](good.prefix(good.count / 3)), to: dir + "/truncated.model")
        #expect(throws: UserError.self) { try SentencePieceModel(path: dir + "/truncated.model") }
    }

    @Test func trainingFailuresAreErrors() throws {
        let dir = try temporaryDirectory()
        try AtomicFile.write("tiny corpus\n", to: dir + "/tiny.txt")
        let tooBig = #expect(throws: UserError.self) {
            try SentencePieceModel.train(
                inputFile: dir + "/tiny.txt", modelPrefix: dir + "/m",
                options: TokenizerTrainingOptions(vocabSize: 50_000))
        }
        #expect(tooBig?.message.contains("--vocab-size") == true)
        try AtomicFile.write("", to: dir + "/empty.txt")
        #expect(throws: UserError.self) {
            try SentencePieceModel.train(
                inputFile: dir + "/empty.txt", modelPrefix: dir + "/m",
                options: TokenizerTrainingOptions(vocabSize: 300))
        }
    }

    /// The same model and text give the same ids in Python's `sentencepiece` (interop), both for a model we
    /// trained and for one trained by Python (a model from another tool).
    @Test func idsMatchPythonSentencePiece() throws {
        let dir = try temporaryDirectory()
        let ours = try trainSmallModel(in: dir)
        let text = syntheticText(lines: 40, seed: 7) + "Unicode ☃ 新しい\n    indented\n"
        try AtomicFile.write(text, to: dir + "/sample.txt")
        try AtomicFile.write(syntheticText(lines: 3000, seed: 2), to: dir + "/py-train.txt")
        let script = """
            import sys, sentencepiece as spm
            d = sys.argv[1]
            spm.SentencePieceTrainer.train(input=d + '/py-train.txt', model_prefix=d + '/py', vocab_size=320,
                model_type='unigram', byte_fallback=True, num_threads=1, minloglevel=2)
            text = open(d + '/sample.txt', encoding='utf-8').read()
            for name in ('m', 'py'):
                sp = spm.SentencePieceProcessor(model_file=d + '/' + name + '.model')
                print(' '.join(str(i) for i in sp.encode(text)))
            """
        let (status, out, err) = try runProcess(["python3", "-c", script, dir])
        if status != 0 { Issue.record("python3 with sentencepiece is needed (pip install sentencepiece): \(err)") }
        try #require(status == 0)
        let lines = out.split(separator: "\n")
        try #require(lines.count == 2)
        let pythonOurs = lines[0].split(separator: " ").compactMap { Int32($0) }
        let pythonTheirs = lines[1].split(separator: " ").compactMap { Int32($0) }
        #expect(try SentencePieceModel(path: ours).encode(text) == pythonOurs)
        let theirs = try SentencePieceModel(path: dir + "/py.model")
        #expect(theirs.vocabSize == 320)
        #expect(try theirs.encode(text) == pythonTheirs)
        #expect(!pythonOurs.isEmpty && !pythonTheirs.isEmpty)
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(
            SHA256.hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SHA256.hex(SHA256.hash(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array(String(repeating: "a", count: 1_000_000).utf8)
        #expect(SHA256.hex(SHA256.hash(long)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // incremental updates equal one update
        var h = SHA256()
        h.update(Array("ab".utf8)); h.update(Array("c".utf8))
        #expect(SHA256.hex(h.finalize()) == SHA256.hex(SHA256.hash(Array("abc".utf8))))
    }
}

@Suite struct ByteLengthTests {
    /// Summed over any encoded text, the per-id byte lengths give its UTF-8 length: byte-fallback pieces count one
    /// byte each (a lone one would decode to U+FFFD's three), control pieces none.
    @Test func byteLengthsSumToTheTextsLength() throws {
        let dir = try temporaryDirectory()
        let tokenizer = try SentencePieceModel(path: try trainSmallModel(in: dir))
        let lengths = try tokenizer.byteLengths()
        #expect(lengths.count == tokenizer.vocabSize && lengths[Int(tokenizer.bosId)] == 0)
        for text in [syntheticText(lines: 50, seed: 3), "emoji 😀 and 漢字 fall back to bytes\n", "    indented\ttabs\n"] {
            let ids = [tokenizer.bosId] + (try tokenizer.encode(text))
            #expect(ids.reduce(0) { $0 + lengths[Int($1)] } == text.utf8.count, "\(text)")
        }
    }
}
