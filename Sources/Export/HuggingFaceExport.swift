import Common
import Foundation
import NGPT
import Runs
import Tokenizer

/// Writes a trained model as a Hugging Face directory (`ngpt-export --format hf`, design §8): the GPT as a Llama
/// that `transformers` loads with no custom code, an nGPT with its own modeling code (`NGPTModelingCode`). The
/// tensors and config.json come from `HuggingFaceFormat`, the one table both export and import use. The directory
/// is written under a temporary name beside `out` and renamed into place when complete, so a half-written export
/// never looks like one; `out` must not exist.
public enum HuggingFaceExport {
    /// The files written for a model of `kind`, in order.
    public static func files(_ kind: ModelKind) -> [String] {
        [
            "config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
            "special_tokens_map.json", "README.md",
        ]
            + (kind == .ngpt ? ["configuration_ngpt.py", "modeling_ngpt.py"] : [])
    }

    public static func write(_ loaded: LoadedModel, to out: String) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out) else {
            throw UserError("\(out) exists; choose a new --out (an export never overwrites)")
        }
        let model = loaded.model, c = model.config, t = loaded.tokenizer
        let parent = (out as NSString).deletingLastPathComponent, folder = parent.isEmpty ? "." : parent
        // (an export killed mid-write leaves its staging folder: `working` removes those of processes now gone)
        let staging = try Directories.working(
            in: folder, prefix: ".\((out as NSString).lastPathComponent).partial-", fix: "choose a writable --out")
        do {
            var contents: [String: [UInt8]] = [
                "config.json": json(HuggingFaceFormat.config(c, tokenizer: t)),
                "generation_config.json": json(generationConfig(t)),
                "model.safetensors": SafeTensors.serialize(
                    try HuggingFaceFormat.tensors(model), metadata: ["format": "pt"]),
                "tokenizer.model": t.modelBytes,
                "tokenizer_config.json": json(tokenizerConfig(t)),
                "special_tokens_map.json": json(specialTokens(t)),
                "README.md": Array(modelCard(loaded, directory: out).utf8),
            ]
            if c.kind == .ngpt {
                contents["configuration_ngpt.py"] = Array(NGPTModelingCode.configuration.utf8) + [10]
                contents["modeling_ngpt.py"] = Array(NGPTModelingCode.modeling.utf8) + [10]
            }
            for name in files(c.kind) {
                try AtomicFile.write(contents[name] ?? [], to: staging + "/" + name)
            }
            try fm.moveItem(atPath: staging, toPath: out)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

    static func json(_ v: JSONValue) -> [UInt8] { Array((v.serialized() + "\n").utf8) }

    static func piece(_ t: any TextTokenizer, _ id: Int32) -> JSONValue {
        id >= 0 ? ((try? t.piece(ofId: id)).map(JSONValue.string) ?? .null) : .null
    }

    /// Hugging Face's Llama tokenizer over the same SentencePiece model, set to give this project's ids: a BOS
    /// before the text (as a training document starts), no EOS, no extra prefix space (the model was trained
    /// without SentencePiece's dummy prefix), the non-legacy handling of text after special tokens.
    static func tokenizerConfig(_ t: any TextTokenizer) -> JSONValue {
        .object([
            "tokenizer_class": "LlamaTokenizer", "add_bos_token": true, "add_eos_token": false, "legacy": false,
            "add_prefix_space": false, "bos_token": piece(t, t.bosId), "eos_token": piece(t, t.eosId),
            "unk_token": piece(t, t.unkId), "pad_token": .null, "clean_up_tokenization_spaces": false,
            "model_max_length": 1_000_000_000,
        ])
    }

    static func specialTokens(_ t: any TextTokenizer) -> JSONValue {
        .object(["bos_token": piece(t, t.bosId), "eos_token": piece(t, t.eosId), "unk_token": piece(t, t.unkId)])
    }

    static func generationConfig(_ t: any TextTokenizer) -> JSONValue {
        .object(["bos_token_id": .int(Int(t.bosId)), "eos_token_id": .int(Int(t.eosId)), "do_sample": false])
    }

    /// README.md: what the model is, how it was trained and how to load it.
    static func modelCard(_ m: LoadedModel, directory: String) -> String {
        let c = m.model.config, gpt = c.kind == .gpt
        let loss = m.state.valLoss.isFinite ? String(format: "%.4f nats/token", m.state.valLoss) : "not recorded"
        let bpb = bitsPerByte(m).map { String(format: "%.4f", $0) } ?? "not recorded"
        let config = m.metadata["ngpt.config"] ?? "{}"
        let what =
            gpt
            ? "the ngpt project's baseline GPT (pre-norm RMSNorm, SwiGLU, RoPE, untied head, no biases), which is "
                + "exactly a Llama; it loads with no custom code"
            : "an nGPT (the normalized Transformer\(c.parameterization == .nu ? ", νGPT parameterization" : "")): "
                + "every embedding, matrix row and hidden state on the unit sphere. Hugging Face has no nGPT: the "
                + "modeling code is in this directory (configuration_ngpt.py, modeling_ngpt.py) and loads with "
                + "trust_remote_code=True"
        let remote = gpt ? "" : ", trust_remote_code=True"
        let note =
            gpt
            ? "Query and key rows are reordered per head for Hugging Face's RoPE pairing."
            : "To fine-tune in PyTorch, call `model.normalize_matrices()` after every optimiser step, as ngpt does."
        return """
            ---
            library_name: transformers
            pipeline_tag: text-generation
            tags: [\(gpt ? "llama" : "ngpt, custom_code"), ngpt]
            ---

            # \(gpt ? "A GPT" : "An nGPT") trained with ngpt

            A \(m.model.layout.totalCount)-parameter decoder: \(what). d \(c.dim), \(c.layers) layers, \(c.heads) \
            heads of \(c.headDim), SwiGLU \(c.mlpHidden), context \(c.context), vocabulary \(c.vocabSize) \
            (SentencePiece). Trained for \(m.state.step) steps on \(m.state.tokens) tokens; validation loss at this \
            checkpoint \(loss), \(bpb) bits per byte.

            ```python
            from transformers import AutoModelForCausalLM, AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained("\(directory)")
            model = AutoModelForCausalLM.from_pretrained("\(directory)"\(remote))
            ids = tokenizer("The", return_tensors="pt").input_ids
            print(tokenizer.decode(model.generate(ids, max_new_tokens=64, do_sample=False)[0]))
            ```

            The tokenizer gives the ids ngpt gives (a BOS first, no added prefix space), and the logits are \
            ngpt's (float32). \(note) \
            `ngpt-sample --checkpoint DIR` and `ngpt-train --init-from DIR` read this directory back.

            ## Training configuration

            ```json
            \(config)
            ```

            Exported from `\(m.checkpointPath)` by `ngpt-export --format hf`.

            """
    }

    /// Bits per byte at the checkpoint's step, from the run's metrics.jsonl when it is there.
    static func bitsPerByte(_ m: LoadedModel) -> Double? {
        let metrics = (m.checkpointPath as NSString).deletingLastPathComponent + "/metrics.jsonl"
        guard let text = try? String(contentsOfFile: metrics, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n").reversed() {
            guard let record = try? StrictJSON.parse(Array(line.utf8), what: metrics).object,
                record["type"]?.string == "eval", record["step"]?.int == m.state.step
            else { continue }
            return record["val_bpb"]?.double
        }
        return nil
    }
}
