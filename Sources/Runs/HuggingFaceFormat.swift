import Common
import Foundation
import Kernels
import NGPT
import Tokenizer

/// A model as a Hugging Face `transformers` directory (design §8): `config.json`, `model.safetensors` and the
/// SentencePiece `tokenizer.model`. The GPT is a Llama; an nGPT is `model_type` "ngpt" with the modeling code
/// ngpt-export writes beside it. One table (`entries`) maps each of this project's tensors to theirs, and both
/// directions use it: `tensors` for export, `read` for import.
public enum HuggingFaceFormat {
    /// How a tensor of ours becomes theirs.
    public enum Transform: Sendable {
        case same
        /// [rows, cols] ↔ [cols, rows]: this project stores W_o and W_down by input rows, nn.Linear by output rows.
        case transposed
        /// Query and key rows reordered per head from interleaved RoPE pairs to Hugging Face's halves (GPT only).
        case ropeHalves
    }

    public struct Entry: Sendable {
        public let ours: String, theirs: String, transform: Transform
    }

    /// Every tensor of a model of `c`, ours and theirs. Here RoPE rotates the pairs (2i, 2i+1) of a head
    /// (design §4.3), Hugging Face's Llama (i, i + d_k/2) with the same frequencies: reordering each head's query
    /// and key rows as [0, 2, 4, …, 1, 3, 5, …] maps one onto the other, and q·k sums over the same pairs. The nGPT
    /// modeling code rotates interleaved pairs itself, so its rows stay in order.
    public static func entries(_ c: ModelConfig) -> [Entry] {
        func e(_ ours: String, _ theirs: String, _ t: Transform = .same) -> Entry {
            Entry(ours: ours, theirs: theirs, transform: t)
        }
        let gpt = c.kind == .gpt, rope: Transform = gpt ? .ropeHalves : .same
        var out = [e("tok_embeddings.weight", "model.embed_tokens.weight")]
        for l in 0..<c.layers {
            let o = "layers.\(l).", t = "model.layers.\(l)."
            out += [
                e(o + "attn.wq", t + "self_attn.q_proj.weight", rope),
                e(o + "attn.wk", t + "self_attn.k_proj.weight", rope),
                e(o + "attn.wv", t + "self_attn.v_proj.weight"),
                e(o + "attn.wo", t + "self_attn.o_proj.weight", .transposed),
                e(o + "mlp.w_up", t + "mlp.up_proj.weight"),
                e(o + "mlp.w_gate", t + "mlp.gate_proj.weight"),
                e(o + "mlp.w_down", t + "mlp.down_proj.weight", .transposed),
            ]
            out +=
                gpt
                ? [
                    e(o + "attn_norm.weight", t + "input_layernorm.weight"),
                    e(o + "mlp_norm.weight", t + "post_attention_layernorm.weight"),
                ]
                : [
                    e(o + "attn.s_qk", t + "self_attn.s_qk"), e(o + "alpha_attn", t + "alpha_attn"),
                    e(o + "mlp.s_u", t + "mlp.s_u"), e(o + "mlp.s_v", t + "mlp.s_v"),
                    e(o + "alpha_mlp", t + "alpha_mlp"),
                ]
        }
        out += gpt ? [e("norm.weight", "model.norm.weight")] : [e("s_z", "s_z")]
        return out + [e("output.weight", "lm_head.weight")]
    }

    // MARK: - Export

    /// The model's tensors in Hugging Face's names and layouts, float32.
    public static func tensors(_ model: LanguageModel) throws -> [SafeTensors.Tensor] {
        let c = model.config
        return try entries(c).map { e in
            guard let t = model.layout[e.ours] else { throw UserError("the model has no tensor \(e.ours)") }
            let values = Array(UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count))
            let (shape, theirs) = convert(values, shape: t.shape, e.transform, config: c, toHF: true)
            return SafeTensors.Tensor(name: e.theirs, shape: shape, floats: theirs)
        }
    }

    /// Values of shape `shape` in one layout → the other's values and shape (`toHF`: ours → theirs).
    static func convert(_ v: [Float], shape: [Int], _ t: Transform, config c: ModelConfig, toHF: Bool)
        -> ([Int], [Float])
    {
        switch t {
        case .same: (shape, v)
        case .transposed: ([shape[1], shape[0]], transpose(v, shape[0], shape[1]))
        case .ropeHalves: (shape, reorderRopeRows(v, heads: c.heads, headDim: c.headDim, cols: shape[1], toHF: toHF))
        }
    }

    /// `toHF`: row h·d_k + j of the result is row h·d_k + 2j (j < d_k/2) or h·d_k + 2(j − d_k/2) + 1 of `w`
    /// ([heads·d_k, cols]); otherwise the inverse.
    static func reorderRopeRows(_ w: [Float], heads: Int, headDim dk: Int, cols: Int, toHF: Bool) -> [Float] {
        var out = w
        for h in 0..<heads {
            for j in 0..<dk {
                let hf = h * dk + j, ours = h * dk + (j < dk / 2 ? 2 * j : 2 * (j - dk / 2) + 1)
                let (to, from) = toHF ? (hf, ours) : (ours, hf)
                for c in 0..<cols { out[to * cols + c] = w[from * cols + c] }
            }
        }
        return out
    }

    /// A [rows, cols] matrix transposed to [cols, rows].
    static func transpose(_ w: [Float], _ rows: Int, _ cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: w.count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = w[r * cols + c] } }
        return out
    }

    /// config.json: a LlamaConfig for the GPT; for an nGPT the configuration its modeling code reads, with each
    /// scale vector's init and scale as this project computes them (float32 values, written exactly).
    public static func config(_ c: ModelConfig, tokenizer: any TextTokenizer) -> JSONValue {
        var o: [String: JSONValue] = [
            "vocab_size": .int(c.vocabSize), "hidden_size": .int(c.dim), "intermediate_size": .int(c.mlpHidden),
            "num_hidden_layers": .int(c.layers), "num_attention_heads": .int(c.heads), "head_dim": .int(c.headDim),
            "max_position_embeddings": .int(c.context), "rope_theta": .double(ropeTheta),
            "tie_word_embeddings": false, "bos_token_id": .int(Int(tokenizer.bosId)),
            "eos_token_id": .int(Int(tokenizer.eosId)), "dtype": "float32", "use_cache": true,
        ]
        if c.kind == .gpt {
            o.merge([
                "architectures": .array(["LlamaForCausalLM"]), "model_type": "llama",
                "num_key_value_heads": .int(c.heads), "rms_norm_eps": .double(Double(GPTModel.rmsEps)),
                "rope_parameters": .object(["rope_type": "default", "rope_theta": .double(ropeTheta)]),
                "hidden_act": "silu", "attention_bias": false, "mlp_bias": false, "initializer_range": 0.02,
            ]) { $1 }
        } else {
            o.merge([
                "architectures": .array(["NGPTForCausalLM"]), "model_type": "ngpt",
                "auto_map": .object([
                    "AutoConfig": "configuration_ngpt.NGPTConfig",
                    "AutoModelForCausalLM": "modeling_ngpt.NGPTForCausalLM",
                ]),
                "parameterization": .string(c.parameterization.rawValue),
                "norm_floor": .double(Double(RowNorm.l2Floor)),
            ]) { $1 }
            for (name, s) in scaleVectors(c) {
                o[name + "_init"] = .double(Double(s.initial))
                o[name + "_scale"] = .double(Double(s.scale))
            }
        }
        return .object(o)
    }

    static let ropeTheta = 10000.0

    /// nGPT's scale vectors by their config.json prefix.
    static func scaleVectors(_ c: ModelConfig) -> [(String, ScaleVector)] {
        [("alpha", .alpha(c)), ("s_qk", .qk(c)), ("s_z", .z(c))]
    }
}
