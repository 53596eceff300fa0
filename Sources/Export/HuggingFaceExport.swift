import Common
import Foundation
import NGPT
import Runs
import Tokenizer

/// Writes a trained model as a Hugging Face directory (`ngpt-export --format hf`): the GPT as a Llama
/// (`LlamaExport`). The directory is written under a temporary name beside `out` and renamed into place when
/// complete, so a half-written export never looks like one; `out` must not exist.
public enum HuggingFaceExport {
    /// The files written, in order.
    public static let files = [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
        "special_tokens_map.json", "README.md",
    ]

    public static func write(_ loaded: LoadedModel, to out: String) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out) else {
            throw UserError("\(out) exists; choose a new --out (an export never overwrites)")
        }
        let model = loaded.model, c = model.config
        guard c.kind == .gpt else {
            throw UserError(
                "exporting an nGPT to Hugging Face is not supported yet (it needs its own modeling code); a GPT "
                    + "exports as a Llama")
        }
        let parent = (out as NSString).deletingLastPathComponent, folder = parent.isEmpty ? "." : parent
        let prefix = ".\((out as NSString).lastPathComponent).partial-"
        // An export killed mid-write leaves its staging folder: remove those whose process is gone.
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
            if let pid = Int32(name.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
                try? fm.removeItem(atPath: folder + "/" + name)
            }
        }
        let staging = folder + "/" + prefix + "\(getpid())"
        try? fm.removeItem(atPath: staging)
        try Directories.create(staging, fix: "choose a writable --out")
        do {
            try AtomicFile.write(
                LlamaExport.config(c, tokenizer: loaded.tokenizer).serialized() + "\n", to: staging + "/config.json")
            try AtomicFile.write(
                generationConfig(loaded.tokenizer).serialized() + "\n", to: staging + "/generation_config.json")
            try AtomicFile.write(
                SafeTensors.serialize(try LlamaExport.tensors(model), metadata: ["format": "pt"]),
                to: staging + "/model.safetensors")
            try AtomicFile.write(loaded.tokenizer.modelBytes, to: staging + "/tokenizer.model")
            try AtomicFile.write(
                tokenizerConfig(loaded.tokenizer).serialized() + "\n", to: staging + "/tokenizer_config.json")
            try AtomicFile.write(
                specialTokens(loaded.tokenizer).serialized() + "\n", to: staging + "/special_tokens_map.json")
            try AtomicFile.write(modelCard(loaded, directory: out), to: staging + "/README.md")
            try fm.moveItem(atPath: staging, toPath: out)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

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
        let c = m.model.config
        let loss = m.state.valLoss.isFinite ? String(format: "%.4f", m.state.valLoss) : "-"
        let config = m.metadata["ngpt.config"] ?? "{}"
        return """
            ---
            library_name: transformers
            pipeline_tag: text-generation
            tags: [llama, ngpt]
            ---

            # A GPT trained with ngpt, as a Llama

            A \(m.model.layout.totalCount)-parameter decoder (the ngpt project's baseline GPT: pre-norm RMSNorm, \
            SwiGLU, RoPE, untied head, no biases) — exactly a Llama: d \(c.dim), \(c.layers) layers, \(c.heads) \
            heads of \(c.headDim), SwiGLU \(c.mlpHidden), context \(c.context), vocabulary \(c.vocabSize) \
            (SentencePiece). Trained for \(m.state.step) steps on \(m.state.tokens) tokens; validation loss at \
            this checkpoint \(loss) nats/token.

            ```python
            from transformers import AutoModelForCausalLM, AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained("\(directory)")
            model = AutoModelForCausalLM.from_pretrained("\(directory)")
            ids = tokenizer("KING HENRY.", return_tensors="pt").input_ids
            print(tokenizer.decode(model.generate(ids, max_new_tokens=64, do_sample=False)[0]))
            ```

            The tokenizer gives the ids ngpt gives (a BOS first, no added prefix space). Query and key rows are
            reordered per head for Hugging Face's RoPE pairing; the logits are ngpt's.

            ## Training configuration

            ```json
            \(config)
            ```

            Exported from `\(m.checkpointPath)` by `ngpt-export --format hf`.

            """
    }
}
