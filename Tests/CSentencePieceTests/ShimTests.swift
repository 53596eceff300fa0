import CSentencePiece
import Foundation
import Testing

/// Exercises the C API directly (the Swift Tokenizer library wraps it later): success paths, buffer retry,
/// and every failure coming back as an error string instead of a crash.
@Suite(.serialized) struct ShimTests {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("spm-shim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    /// A few hundred varied lines: enough for a 400-piece BPE model.
    static let corpus: String = {
        let words = [
            "the", "king", "queen", "love", "death", "night", "sword", "crown", "speak", "thee", "thou",
            "art", "noble", "lord", "lady", "fair", "heaven", "earth", "blood", "honour", "1599", "42",
        ]
        var lines: [String] = []
        var state: UInt64 = 7
        for i in 0..<600 {
            var line: [String] = []
            for _ in 0..<(4 + i % 9) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                line.append(words[Int(state >> 33) % words.count])
            }
            lines.append((i % 5 == 0 ? "    " : "") + line.joined(separator: " ") + (i % 3 == 0 ? "." : ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    func train(vocab: Int = 400, extra: [(String, String)] = []) throws -> (Int32, String, String) {
        let input = dir.appendingPathComponent("corpus.txt")
        try Self.corpus.write(to: input, atomically: true, encoding: .utf8)
        let prefix = dir.appendingPathComponent("m").path
        let flags: [(String, String)] =
            [
                ("input", input.path), ("model_prefix", prefix), ("vocab_size", "\(vocab)"), ("model_type", "bpe"),
                ("byte_fallback", "true"), ("normalization_rule_name", "identity"),
                ("remove_extra_whitespaces", "false"),
                ("minloglevel", "2"), ("num_threads", "1"),
            ] + extra
        var err = [CChar](repeating: 0, count: 1024)
        let keys = flags.map { strdup($0.0) }, values = flags.map { strdup($0.1) }
        defer { keys.forEach { free($0) }; values.forEach { free($0) } }
        let rc = keys.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in
                spm_train(k.baseAddress, v.baseAddress, flags.count, &err, err.count)
            }
        }
        return (rc, prefix + ".model", message(err))
    }

    func message(_ err: [CChar]) -> String {
        String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func load(_ path: String) -> (OpaquePointer?, String) {
        var handle: OpaquePointer?
        var err = [CChar](repeating: 0, count: 1024)
        let rc = spm_load(path, &handle, &err, err.count)
        return (rc == SPM_OK ? handle : nil, message(err))
    }

    @Test func trainLoadEncodeDecodeRoundTrip() throws {
        let (rc, path, msg) = try train()
        #expect(rc == SPM_OK, "\(msg)")
        let (handle, loadMsg) = load(path)
        let p = try #require(handle, "\(loadMsg)")
        defer { spm_free(p) }
        #expect(spm_vocab_size(p) == 400)
        #expect(spm_unk_id(p) == 0 && spm_bos_id(p) == 1 && spm_eos_id(p) == 2)

        let text = "    the king, thou art noble.\n\tÜnïcödé ☃ 1234 — 新しい\n"
        let bytes = Array(text.utf8)
        var err = [CChar](repeating: 0, count: 512)
        var needed = 0
        // A too-small buffer reports the size to retry with.
        var small = [Int32](repeating: 0, count: 1)
        #expect(
            spm_encode(p, bytes.map { CChar(bitPattern: $0) }, bytes.count, &small, 1, &needed, &err, err.count)
                == SPM_TOO_SMALL)
        var ids = [Int32](repeating: 0, count: needed)
        #expect(
            spm_encode(p, bytes.map { CChar(bitPattern: $0) }, bytes.count, &ids, ids.count, &needed, &err, err.count)
                == SPM_OK)
        #expect(!ids.contains(spm_unk_id(p)), "byte fallback: nothing is <unk>")
        // Decode reproduces the text exactly (identity normalisation, whitespace kept).
        var outLen = 0
        var out = [CChar](repeating: 0, count: 4096)
        #expect(spm_decode(p, ids, ids.count, &out, out.count, &outLen, &err, err.count) == SPM_OK)
        #expect(String(decoding: out.prefix(outLen).map { UInt8(bitPattern: $0) }, as: UTF8.self) == text)

        // piece <-> id, with unknown pieces mapping to unk
        var id: Int32 = -1
        #expect(spm_piece_to_id(p, "<s>", 3, &id, &err, err.count) == SPM_OK && id == 1)
        #expect(spm_piece_to_id(p, "no-such-piece", 13, &id, &err, err.count) == SPM_OK && id == 0)
        var piece = [CChar](repeating: 0, count: 64)
        #expect(spm_id_to_piece(p, 2, &piece, piece.count, &needed, &err, err.count) == SPM_OK)
        #expect(String(decoding: piece.prefix(needed).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "</s>")
        var kind: Int32 = -1
        #expect(spm_piece_kind(p, 1, &kind, &err, err.count) == SPM_OK && kind == 2)
        #expect(spm_piece_kind(p, 3, &kind, &err, err.count) == SPM_OK && kind == 3)  // <0x00>
    }

    @Test func outOfRangeIdsAreErrorsNotAborts() throws {
        let (rc, path, _) = try train()
        #expect(rc == SPM_OK)
        let (handle, _) = load(path)
        let p = try #require(handle)
        defer { spm_free(p) }
        var err = [CChar](repeating: 0, count: 512)
        var needed = 0
        var piece = [CChar](repeating: 0, count: 64)
        // Unchecked, SentencePiece's IdToPiece aborts the process on these.
        for bad: Int32 in [-1, 400, 999_999] {
            #expect(spm_id_to_piece(p, bad, &piece, piece.count, &needed, &err, err.count) == SPM_ERROR)
            #expect(message(err).contains("Out of range"))
        }
        var out = [CChar](repeating: 0, count: 64)
        #expect(spm_decode(p, [5, 999_999], 2, &out, out.count, &needed, &err, err.count) == SPM_ERROR)
        #expect(message(err).contains("999999"))
    }

    @Test func badModelsAndCorporaGiveMessages() throws {
        let (h1, m1) = load(dir.appendingPathComponent("missing.model").path)
        #expect(h1 == nil && m1.contains("No such file"))
        let garbage = dir.appendingPathComponent("garbage.model")
        try Data("this is not a model".utf8).write(to: garbage)
        let (h2, m2) = load(garbage.path)
        #expect(h2 == nil && !m2.isEmpty)
        // A truncated real model is rejected too.
        let (rc, path, _) = try train()
        #expect(rc == SPM_OK)
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.appendingPathComponent("cut.model")
        try full.prefix(full.count / 2).write(to: cut)
        let (h3, m3) = load(cut.path)
        #expect(h3 == nil && !m3.isEmpty)

        let (rcVocab, _, msgVocab) = try train(vocab: 100_000)
        #expect(rcVocab == SPM_ERROR && msgVocab.contains("Vocabulary size"))
        let (rcFlag, _, msgFlag) = try train(extra: [("no_such_flag", "1")])
        #expect(rcFlag == SPM_ERROR && msgFlag.contains("no_such_flag"))
        try Data().write(to: dir.appendingPathComponent("corpus-empty.txt"))
    }

    @Test func loadFromBytesMatchesLoadFromFile() throws {
        let (rc, path, _) = try train()
        #expect(rc == SPM_OK)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var handle: OpaquePointer?
        var err = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBytes {
            spm_load_from_bytes($0.baseAddress, bytes.count, &handle, &err, err.count)
        }
        #expect(status == SPM_OK)
        let p = try #require(handle)
        defer { spm_free(p) }
        #expect(spm_vocab_size(p) == 400)
        #expect(spm_load_from_bytes("xx", 2, &handle, &err, err.count) == SPM_ERROR)
    }
}
