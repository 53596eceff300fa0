import Common
import Foundation
import NGPT
import Sampling
import TestSupport
import Testing
import Tokenizer

@testable import Export
@testable import Runs

/// Three small runs (GPT, nGPT, νGPT: d 64, 2 layers, context 96) trained once for the suite, with their
/// exports. Training goes through ngpt-train, exporting through the library (as ngpt-export does).
final class ExportFixture: Sendable {
    static let shared = Result { try ExportFixture() }
    static let kinds = ["gpt", "ngpt", "ngpt-nu"]
    let dir: String

    init() throws {
        dir = try temporaryDirectory("hf-export")
        try AtomicFile.write(syntheticText(lines: 3000, seed: 1), to: dir + "/train.txt")
        try AtomicFile.write(syntheticText(lines: 300, seed: 9), to: dir + "/held.txt")
        for kind in Self.kinds {
            let model = kind == "gpt" ? ["--model", "gpt"] : ["--model", "ngpt"]
            let nu = kind == "ngpt-nu" ? ["--parameterization", "nu"] : []
            let (status, _, err) = try runProcess(
                [productsDirectory() + "/ngpt-train"] + model + nu + [
                    "--corpus", dir + "/train.txt", "--data-dir", dir + "/data", "--vocab-size", "400", "--dim", "64",
                    "--heads", "2", "--layers", "2", "--mlp-hidden", "160", "--context", "96", "--batch-size", "8",
                    "--steps", "120", "--eval-every", "60", "--eval-windows", "4", "--out", run(kind),
                ])
            guard status == 0 else { throw UserError("training \(kind) failed: \(err)") }
            try HuggingFaceExport.write(try LoadedModel.load(checkpoint: run(kind)), to: export(kind))
        }
    }

    func run(_ kind: String) -> String { dir + "/run-" + kind }
    func export(_ kind: String) -> String { dir + "/hf-" + kind }
}

/// Export → import gives the same bits; what cannot be imported is refused naming the field.
@Suite struct HuggingFaceFormatTests {
    @Test(arguments: ExportFixture.kinds) func exportThenImportIsBitIdentical(kind: String) throws {
        let f = try ExportFixture.shared.get()
        let original = try LoadedModel.load(checkpoint: f.run(kind)),
            back = try LoadedModel.load(
                checkpoint: f.export(kind))
        #expect(back.model.config == original.model.config)
        #expect(back.tokenizer.modelBytes == original.tokenizer.modelBytes)
        let count = original.model.layout.totalCount
        #expect(memcmp(original.model.params.pointer, back.model.params.pointer, count * 4) == 0)
        #expect(back.tokenizerWarning == nil)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: f.export(kind)).sorted()
                == HuggingFaceExport.files(original.model.config.kind).sorted())
    }

    /// A copy of the GPT export with config.json edited (or a file removed, or a tensor added): `read` refuses it
    /// with a message naming `expected`.
    @Test(arguments: [
        ("num_key_value_heads", JSONValue.int(1)), ("attention_bias", .bool(true)), ("mlp_bias", .bool(true)),
        ("tie_word_embeddings", .bool(true)), ("rope_scaling", .object(["rope_type": "linear", "factor": 2.0])),
        ("model_type", .string("mistral")), ("hidden_act", .string("gelu")), ("rms_norm_eps", .double(1e-5)),
        ("rope_theta", .double(500000)), ("intermediate_size", .int(128)),
    ])
    func unsupportedLlamaVariantsAreRefusedNamingTheField(field: String, value: JSONValue) throws {
        let f = try ExportFixture.shared.get()
        let dir = try temporaryDirectory("hf-variant") + "/llama"
        try FileManager.default.copyItem(atPath: f.export("gpt"), toPath: dir)
        var config =
            try StrictJSON.parse(
                Array(try String(contentsOfFile: dir + "/config.json", encoding: .utf8).utf8), what: "config"
            ).object ?? [:]
        config[field] = value
        try AtomicFile.write(JSONValue.object(config).serialized(), to: dir + "/config.json")
        let expected = field == "intermediate_size" ? "mlp.up_proj.weight" : field
        #expect(throws: UserError.self) { try LoadedModel.load(checkpoint: dir) }
        do { _ = try HuggingFaceFormat.read(dir) } catch let e as UserError {
            #expect(e.message.contains(expected), "\(e.message)")
            #expect(!e.message.contains("\n"))
        }
    }

    @Test func aDirectoryWithoutTokenizerOrWithExtraTensorsIsRefused() throws {
        let f = try ExportFixture.shared.get()
        let base = try temporaryDirectory("hf-broken")
        let noTokenizer = base + "/no-tokenizer", biased = base + "/biased"
        try FileManager.default.copyItem(atPath: f.export("gpt"), toPath: noTokenizer)
        try FileManager.default.removeItem(atPath: noTokenizer + "/tokenizer.model")
        #expect(throws: UserError.self) { try HuggingFaceFormat.read(noTokenizer) }
        do { _ = try HuggingFaceFormat.read(noTokenizer) } catch let e as UserError {
            #expect(e.message.contains("tokenizer.model"))
        }
        try FileManager.default.copyItem(atPath: f.export("gpt"), toPath: biased)
        let file = try SafeTensors(path: biased + "/model.safetensors")
        var tensors = try file.entries.keys.sorted().map {
            SafeTensors.Tensor(name: $0, shape: file.entries[$0]!.shape, floats: try file.floats($0))
        }
        tensors.append(
            SafeTensors.Tensor(
                name: "model.layers.0.self_attn.q_proj.bias", shape: [64], floats: [Float](repeating: 0, count: 64)))
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: [:]), to: biased + "/model.safetensors")
        do {
            _ = try HuggingFaceFormat.read(biased)
            Issue.record("a biased Llama was accepted")
        } catch let e as UserError {
            #expect(e.message.contains("q_proj.bias"))
        }
    }

    /// ngpt-export's bad input: one line naming the problem, exit 1, nothing written.
    @Test func ngptExportRefusesBadInputInOneLine() throws {
        let f = try ExportFixture.shared.get()
        let dir = try temporaryDirectory("hf-bad")
        try FileManager.default.createDirectory(atPath: dir + "/no-tokenizer", withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: f.run("gpt") + "/best.safetensors", toPath: dir + "/no-tokenizer/best.safetensors")
        for (arguments, expected) in [
            ([f.run("gpt"), "--out", f.export("gpt")], "exists"),
            ([f.run("gpt"), "--out", dir + "/x", "--format", "onnx"], "--format"),
            ([dir + "/no-tokenizer", "--out", dir + "/y"], "tokenizer"),
            ([dir + "/missing", "--out", dir + "/z"], "not found"),
        ] {
            let (status, out, err) = try runProcess([productsDirectory() + "/ngpt-export"] + arguments)
            #expect(status == 1 && out.isEmpty, "\(arguments)")
            let lines = err.split(separator: "\n").filter { !$0.isEmpty }
            #expect(lines.count == 1 && lines[0].contains(expected), "\(err)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["no-tokenizer"])
    }

    /// The row reordering maps this project's RoPE (pairs 2i, 2i+1) onto Hugging Face's (pairs i, i + d_k/2):
    /// rotating the reordered vector the Hugging Face way gives the reordered rotation, for every position.
    @Test func reorderedRowsTurnInterleavedRoPEIntoHalves() {
        let dk = 8, heads = 2, cols = 1
        let q: [Float] = (0..<(heads * dk)).map { Float($0) * 0.37 - 1.1 }
        func toHF(_ w: [Float]) -> [Float] {
            HuggingFaceFormat.reorderRopeRows(w, heads: heads, headDim: dk, cols: cols, toHF: true)
        }
        let hf = toHF(q)
        for position in [0, 1, 5, 63] {
            var ours = q, theirs = hf
            for h in 0..<heads {
                for i in 0..<(dk / 2) {
                    let angle = Float(position) * pow(10000, -Float(2 * i) / Float(dk))
                    let (c, s) = (cos(angle), sin(angle))
                    let (a, b) = (h * dk + 2 * i, h * dk + 2 * i + 1)  // ours: interleaved pairs
                    (ours[a], ours[b]) = (q[a] * c - q[b] * s, q[a] * s + q[b] * c)
                    let (x, y) = (h * dk + i, h * dk + i + dk / 2)  // Hugging Face: halves
                    (theirs[x], theirs[y]) = (hf[x] * c - hf[y] * s, hf[x] * s + hf[y] * c)
                }
            }
            #expect(toHF(ours) == theirs)
        }
        #expect(HuggingFaceFormat.reorderRopeRows(hf, heads: heads, headDim: dk, cols: cols, toHF: false) == q)
    }

    @Test func transposeSwapsRowsAndColumns() {
        let w: [Float] = [1, 2, 3, 4, 5, 6]  // [2, 3]
        #expect(HuggingFaceFormat.transpose(w, 2, 3) == [1, 4, 2, 5, 3, 6])
        #expect(HuggingFaceFormat.transpose(HuggingFaceFormat.transpose(w, 2, 3), 3, 2) == w)
    }
}

/// The exported directories in PyTorch (`transformers`, `torch`; hf_check.py beside this file) compute what ngpt
/// computes: the same token ids, the same mean loss to 1e-4, the same greedy tokens for 64 steps.
@Suite struct HuggingFaceEqualityTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/hf_check.py"
    static let idsText = "line one\n\n  two   spaces\tand a tab\nnaïve café Æthelred — “quoth” 🦙 漢字 ☃ ₿\n   \n"
    static let prompts = ["the king", "    noble lady", "Æthelred"]

    /// hf_check.py's JSON for `dir`.
    static func python(_ dir: String, _ arguments: [String]) throws -> [String: JSONValue] {
        let (status, out, err) = try runProcess(["python3", script, dir] + arguments)
        guard status == 0, let line = out.split(separator: "\n").last else {
            throw UserError("hf_check.py failed (pip install torch transformers sentencepiece protobuf): \(err)")
        }
        return try StrictJSON.parse(Array(line.utf8), what: "hf_check output").object ?? [:]
    }

    static func ints(_ v: JSONValue?) -> [Int32] { (v?.array ?? []).compactMap { $0.int.map(Int32.init) } }

    @Test(arguments: ExportFixture.kinds) func pytorchComputesWhatNGPTComputes(kind: String) throws {
        let f = try ExportFixture.shared.get()
        try AtomicFile.write(Self.idsText, to: f.dir + "/ids.txt")
        let py = try Self.python(
            f.export(kind),
            ["--ids", f.dir + "/ids.txt", "--loss", f.dir + "/held.txt", "--max-new-tokens", "64"]
                + Self.prompts.flatMap { ["--prompt", $0] })
        let loaded = try LoadedModel.load(checkpoint: f.run(kind))
        #expect(py["class"]?.string == (kind == "gpt" ? "LlamaForCausalLM" : "NGPTForCausalLM"))

        // the tokenizer: [BOS] + ngpt's ids, byte fallback included
        let t = loaded.tokenizer
        #expect(Self.ints(py["ids"]) == [t.bosId] + (try t.encode(Self.idsText)))
        #expect(try t.encode("🦙").count > 1)  // not in the vocabulary: byte pieces

        // the loss, in the windows ngpt-sample --perplexity uses
        let ours = try Perplexity.evaluate(
            text: try String(contentsOfFile: f.dir + "/held.txt", encoding: .utf8), model: loaded.model, tokenizer: t)
        let theirs = try #require(py["loss"]?.double)
        #expect(py["windows"]?.int == ours.windows)
        #expect(abs(ours.meanLoss - theirs) < 1e-4, "ngpt \(ours.meanLoss), PyTorch \(theirs)")

        // greedy continuations through the KV caches of both
        let generator = Generator(model: loaded.model, tokenizer: t, precision: .fp32)
        let greedy = py["greedy"]?.array ?? []
        try #require(greedy.count == Self.prompts.count)
        for (prompt, theirs) in zip(Self.prompts, greedy) {
            var sampler = Sampler(SamplerSettings(temperature: 0))
            let ids = try generator.promptIds(prompt).ids
            let ours = try generator.generate(prompt: ids, maxTokens: 64, sampler: &sampler).tokens
            #expect(ours == Self.ints(theirs), "prompt \(prompt)")
        }
    }

    /// A Llama made and saved by transformers itself (random weights, this project's tokenizer) is read as a GPT
    /// with the loss PyTorch computes, and fine-tunes (ngpt-train --init-from) into a model both still agree on.
    @Test func aLlamaSavedByTransformersSamplesAndFineTunes() throws {
        let f = try ExportFixture.shared.get()
        let llama = f.dir + "/transformers-llama"
        let make = """
            import sys, shutil, torch
            from transformers import LlamaConfig, LlamaForCausalLM
            torch.manual_seed(0)
            c = LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=96, bos_token_id=1, eos_token_id=2)
            LlamaForCausalLM(c).save_pretrained(sys.argv[1])
            for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
                shutil.copy(sys.argv[2] + "/" + name, sys.argv[1])
            """
        let (status, _, err) = try runProcess(["python3", "-c", make, llama, f.export("gpt")])
        try #require(status == 0, "\(err)")
        let held = try String(contentsOfFile: f.dir + "/held.txt", encoding: .utf8)

        let imported = try LoadedModel.load(checkpoint: llama)
        #expect(imported.model.config.kind == .gpt)
        let ours = try Perplexity.evaluate(text: held, model: imported.model, tokenizer: imported.tokenizer)
        let theirs = try #require(try Self.python(llama, ["--loss", f.dir + "/held.txt"])["loss"]?.double)
        #expect(abs(ours.meanLoss - theirs) < 1e-4, "ngpt \(ours.meanLoss), PyTorch \(theirs)")

        let tuned = f.dir + "/tuned"
        let (trained, _, trainErr) = try runProcess([
            productsDirectory() + "/ngpt-train", "--init-from", llama, "--corpus", f.dir + "/train.txt",
            "--data-dir", f.dir + "/data", "--batch-size", "8", "--steps", "30", "--lr", "3e-3", "--eval-every",
            "30", "--eval-windows", "4", "--out", tuned,
        ])
        try #require(trained == 0, "\(trainErr)")
        let model = try LoadedModel.load(checkpoint: tuned)
        let after = try Perplexity.evaluate(text: held, model: model.model, tokenizer: model.tokenizer)
        #expect(after.meanLoss < ours.meanLoss - 1, "fine-tuning lowered the loss from \(ours.meanLoss)")
        try HuggingFaceExport.write(model, to: f.dir + "/tuned-hf")
        let back = try #require(try Self.python(f.dir + "/tuned-hf", ["--loss", f.dir + "/held.txt"])["loss"]?.double)
        #expect(abs(after.meanLoss - back) < 1e-4, "ngpt \(after.meanLoss), PyTorch \(back)")
    }
}
