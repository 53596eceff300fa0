import Common
import Foundation
import Kernels
import NGPT
import Tokenizer

/// Reading a Hugging Face directory as a checkpoint (`ngpt-sample --checkpoint DIR`, `ngpt-train --init-from DIR`):
/// a Llama whose tokenizer is SentencePiece (`tokenizer.model`: the Llama-2 / TinyLlama family) becomes a GPT, a
/// directory ngpt-export wrote from an nGPT becomes that nGPT. What this project's models cannot compute is
/// refused with one line naming the field, never approximated.
extension HuggingFaceFormat {
    /// A directory with `config.json` naming a `model_type` and the weights beside it (a run directory has
    /// `config.json` too, but no `model_type` and no model.safetensors).
    public static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
            FileManager.default.fileExists(atPath: path + "/config.json")
        else { return false }
        return ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"].contains {
            FileManager.default.fileExists(atPath: path + "/" + $0)
        }
    }

    /// The directory as a checkpoint in this project's format (its tensor names and layouts, `ngpt.model` in the
    /// metadata, step 0), and the path of its tokenizer. Every refusal names `dir` and the field.
    public static func read(_ dir: String) throws -> (checkpoint: SafeTensors, tokenizerPath: String) {
        let fm = FileManager.default
        let configBytes = try InputFile.read(dir + "/config.json", what: "Hugging Face config", limit: 1 << 20)
        let json = try StrictJSON.parse(configBytes, what: "\(dir)/config.json")
        guard let fields = json.object else { throw UserError("\(dir)/config.json is not a JSON object") }
        let config = try modelConfig(fields, dir: dir)
        guard fm.fileExists(atPath: dir + "/model.safetensors") else {
            throw UserError(
                fm.fileExists(atPath: dir + "/model.safetensors.index.json")
                    ? "\(dir) holds a sharded checkpoint (model.safetensors.index.json); save it as one file "
                        + "(save_pretrained with max_shard_size larger than the model)"
                    : "\(dir) has no model.safetensors (pytorch_model.bin is not read); save it with "
                        + "save_pretrained(..., safe_serialization=True)")
        }
        let tokenizerPath = dir + "/tokenizer.model"
        guard InputFile.isRegular(tokenizerPath) != nil else {
            throw UserError(
                "\(dir) has no tokenizer.model: ngpt reads SentencePiece tokenizers only (the Llama-2 / TinyLlama "
                    + "family); a tokenizer.json-only model cannot be used")
        }
        let theirs: SafeTensors
        do { theirs = try SafeTensors(path: dir + "/model.safetensors") } catch let e as UserError {
            throw UserError("cannot load \(dir)/model.safetensors: \(e.message)")
        }
        let table = entries(config)
        let known = Set(table.map(\.theirs))
        if let extra = theirs.entries.keys.sorted().first(where: { !known.contains($0) && !$0.hasSuffix("inv_freq") }) {
            throw UserError(
                "\(dir)/model.safetensors has a tensor ngpt's \(config.kind.rawValue) lacks: \(extra) (biases, tied "
                    + "or extra weights are not supported)")
        }
        let layout = ParameterLayout(config: config)
        var tensors: [SafeTensors.Tensor] = []
        for e in table {
            guard let spec = layout[e.ours] else { continue }
            let expected = e.transform == .transposed ? [spec.shape[1], spec.shape[0]] : spec.shape
            guard let entry = theirs.entries[e.theirs] else {
                throw UserError("\(dir)/model.safetensors lacks \(e.theirs) (incomplete, or another architecture)")
            }
            guard entry.shape == expected else {
                throw UserError(
                    "\(dir)/model.safetensors: \(e.theirs) has shape \(entry.shape), config.json's sizes need "
                        + "\(expected)")
            }
            let values = try theirs.floats(e.theirs)
            let (_, ours) = convert(values, shape: expected, e.transform, config: config, toHF: false)
            tensors.append(SafeTensors.Tensor(name: e.ours, shape: spec.shape, floats: ours))
        }
        let tokenizerBytes = try InputFile.read(
            tokenizerPath, what: "tokenizer model", limit: SentencePieceModel.maxModelBytes)
        let modelJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let metadata = [
            "format": "pt", "ngpt.version": Checkpoint.version, "ngpt.model": modelJSON, "ngpt.step": "0",
            "ngpt.tokens": "0", "ngpt.tokenizer_sha256": SHA256.hex(SHA256.hash(tokenizerBytes)),
            "ngpt.imported_from": dir,
        ]
        return (try SafeTensors(bytes: SafeTensors.serialize(tensors, metadata: metadata)), tokenizerPath)
    }

    /// This project's ModelConfig from a Hugging Face config.json, or one line naming what it cannot compute.
    static func modelConfig(_ f: [String: JSONValue], dir: String) throws -> ModelConfig {
        let file = "\(dir)/config.json"
        func int(_ key: String) throws -> Int {
            guard let v = f[key]?.int else { throw UserError("\(file): \(key) is missing or not an integer") }
            return v
        }
        func refuse(_ key: String, _ why: String) -> UserError { UserError("\(file): \(key) \(why)") }
        let type = f["model_type"]?.string ?? ""
        guard type == "llama" || type == "ngpt" else {
            throw refuse(
                "model_type", "is \"\(type)\"; ngpt imports a Llama (as its GPT) or an nGPT that ngpt-export wrote")
        }
        let kind: ModelKind = type == "llama" ? .gpt : .ngpt
        var parameterization = Parameterization.paper
        if kind == .ngpt {
            guard let p = Parameterization(rawValue: f["parameterization"]?.string ?? "") else {
                throw refuse("parameterization", "must be one of \(Parameterization.allCases.map(\.rawValue))")
            }
            parameterization = p
        }
        let c = ModelConfig(
            kind: kind, vocabSize: try int("vocab_size"), dim: try int("hidden_size"),
            layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
            mlpHidden: try int("intermediate_size"), context: try int("max_position_embeddings"),
            parameterization: parameterization)
        do { try c.validate(naming: .keys) } catch let e as UserError {
            throw UserError("\(file): the sizes do not make a model ngpt can build: \(e.message)")
        }
        if let v = f["head_dim"], !(v == .null || v.int == c.headDim) {
            throw refuse("head_dim", "\(v) differs from hidden_size / num_attention_heads = \(c.headDim)")
        }
        if f["tie_word_embeddings"] == .bool(true) {
            throw refuse("tie_word_embeddings", "is true; ngpt's models have an untied output matrix")
        }
        let theta = f["rope_theta"]?.double ?? f["rope_parameters"]?.object?["rope_theta"]?.double ?? ropeTheta
        guard theta == ropeTheta else { throw refuse("rope_theta", "is \(theta); ngpt's RoPE uses \(Int(ropeTheta))") }
        if kind == .gpt {
            try checkLlama(f, c, refuse: refuse)
        } else {
            for (name, s) in scaleVectors(c) {
                for (key, value) in [(name + "_init", s.initial), (name + "_scale", s.scale)] {
                    guard let v = f[key]?.double, Float(v) == value else {
                        throw refuse(key, "is \(f[key]?.description ?? "missing"); this size's nGPT has \(value)")
                    }
                }
            }
        }
        return c
    }

    /// The Llama options this project's GPT does not have.
    private static func checkLlama(
        _ f: [String: JSONValue], _ c: ModelConfig, refuse: (String, String) -> UserError
    ) throws {
        if let kv = f["num_key_value_heads"]?.int, kv != c.heads {
            throw refuse(
                "num_key_value_heads",
                "is \(kv) (grouped-query attention); ngpt's GPT has one key/value head per query head (\(c.heads))")
        }
        for key in ["attention_bias", "mlp_bias"] where f[key] == .bool(true) {
            throw refuse(key, "is true; ngpt's GPT has no biases")
        }
        if let act = f["hidden_act"]?.string, act != "silu" {
            throw refuse("hidden_act", "is \(act); ngpt's GPT uses SwiGLU (silu)")
        }
        if let s = f["rope_scaling"], s != .null {
            throw refuse("rope_scaling", "is set; ngpt's RoPE has no scaling")
        }
        if let type = f["rope_parameters"]?.object?["rope_type"]?.string, type != "default" {
            throw refuse("rope_parameters.rope_type", "is \(type); ngpt's RoPE is the default one")
        }
        let eps = f["rms_norm_eps"]?.double ?? 1e-6
        guard Float(eps) == GPTModel.rmsEps else {
            throw refuse("rms_norm_eps", "is \(eps); ngpt's GPT uses \(Double(GPTModel.rmsEps))")
        }
    }
}
