import Common
import Foundation
import NGPT
import Runs
import Tokenizer

/// A trained GPT as a Hugging Face Llama directory that `transformers` loads with no custom code
/// (`AutoModelForCausalLM` and `AutoTokenizer`). The baseline GPT is architecturally a Llama (pre-norm RMSNorm,
/// SwiGLU, RoPE, untied head, no biases); what differs is naming, layout and the RoPE pairing:
///
/// | here | Hugging Face | |
/// |---|---|---|
/// | `tok_embeddings.weight` [V, d] | `model.embed_tokens.weight` | |
/// | `layers.l.attn.wq`, `wk` [d, d] | `model.layers.l.self_attn.q_proj.weight`, `k_proj` | rows permuted per head |
/// | `layers.l.attn.wv` | `v_proj` | |
/// | `layers.l.attn.wo` [d, d] (input rows) | `o_proj` | transposed |
/// | `layers.l.mlp.w_gate`, `w_up` [F, d] | `gate_proj`, `up_proj` | |
/// | `layers.l.mlp.w_down` [F, d] | `down_proj` [d, F] | transposed |
/// | `layers.l.attn_norm`, `mlp_norm` | `input_layernorm`, `post_attention_layernorm` | |
/// | `norm.weight`, `output.weight` | `model.norm.weight`, `lm_head.weight` | |
///
/// RoPE here rotates the interleaved pairs (2i, 2i+1) of a head (design §4.3); Hugging Face's Llama rotates
/// (i, i + d_k/2) with the same frequencies. Reordering each head's query and key rows as [0, 2, 4, …, 1, 3, 5, …]
/// maps one onto the other, and since q·k is summed over the same pairs the attention is unchanged.
enum LlamaExport {
    /// The tensors in Hugging Face's names and layouts, float32.
    static func tensors(_ model: LanguageModel) throws -> [SafeTensors.Tensor] {
        let c = model.config
        let d = c.dim, f = c.mlpHidden
        func values(_ name: String) throws -> [Float] {
            guard let t = model.layout[name] else { throw UserError("the model has no tensor \(name)") }
            return Array(UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count))
        }
        func tensor(_ name: String, _ shape: [Int], _ v: [Float]) -> SafeTensors.Tensor {
            SafeTensors.Tensor(name: name, shape: shape, floats: v)
        }
        var out = [
            tensor("model.embed_tokens.weight", [c.vocabSize, d], try values("tok_embeddings.weight")),
            tensor("model.norm.weight", [d], try values("norm.weight")),
            tensor("lm_head.weight", [c.vocabSize, d], try values("output.weight")),
        ]
        for l in 0..<c.layers {
            let ours = "layers.\(l).", theirs = "model.layers.\(l)."
            out += [
                tensor(
                    theirs + "self_attn.q_proj.weight", [d, d],
                    ropeRowsForHF(try values(ours + "attn.wq"), heads: c.heads, headDim: c.headDim, cols: d)),
                tensor(
                    theirs + "self_attn.k_proj.weight", [d, d],
                    ropeRowsForHF(try values(ours + "attn.wk"), heads: c.heads, headDim: c.headDim, cols: d)),
                tensor(theirs + "self_attn.v_proj.weight", [d, d], try values(ours + "attn.wv")),
                tensor(theirs + "self_attn.o_proj.weight", [d, d], transpose(try values(ours + "attn.wo"), d, d)),
                tensor(theirs + "mlp.gate_proj.weight", [f, d], try values(ours + "mlp.w_gate")),
                tensor(theirs + "mlp.up_proj.weight", [f, d], try values(ours + "mlp.w_up")),
                tensor(theirs + "mlp.down_proj.weight", [d, f], transpose(try values(ours + "mlp.w_down"), f, d)),
                tensor(theirs + "input_layernorm.weight", [d], try values(ours + "attn_norm.weight")),
                tensor(theirs + "post_attention_layernorm.weight", [d], try values(ours + "mlp_norm.weight")),
            ]
        }
        return out
    }

    /// Each head's rows reordered from interleaved RoPE pairs to Hugging Face's halves: row h·d_k + j of the result
    /// is row h·d_k + 2j (j < d_k/2) or h·d_k + 2(j − d_k/2) + 1 of `w` ([heads·d_k, cols]).
    static func ropeRowsForHF(_ w: [Float], heads: Int, headDim dk: Int, cols: Int) -> [Float] {
        reorderRopeRows(w, heads: heads, headDim: dk, cols: cols, toHF: true)
    }

    /// The inverse of `ropeRowsForHF`.
    static func ropeRowsFromHF(_ w: [Float], heads: Int, headDim dk: Int, cols: Int) -> [Float] {
        reorderRopeRows(w, heads: heads, headDim: dk, cols: cols, toHF: false)
    }

    private static func reorderRopeRows(_ w: [Float], heads: Int, headDim dk: Int, cols: Int, toHF: Bool) -> [Float] {
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

    /// config.json: a LlamaConfig with this model's sizes.
    static func config(_ c: ModelConfig, tokenizer: any TextTokenizer) -> JSONValue {
        .object([
            "architectures": .array(["LlamaForCausalLM"]), "model_type": "llama",
            "vocab_size": .int(c.vocabSize), "hidden_size": .int(c.dim), "intermediate_size": .int(c.mlpHidden),
            "num_hidden_layers": .int(c.layers), "num_attention_heads": .int(c.heads),
            "num_key_value_heads": .int(c.heads), "head_dim": .int(c.headDim),
            "max_position_embeddings": .int(c.context), "rms_norm_eps": .double(Double(GPTModel.rmsEps)),
            "rope_theta": 10000.0, "rope_parameters": .object(["rope_type": "default", "rope_theta": 10000.0]),
            "hidden_act": "silu", "attention_bias": false, "mlp_bias": false, "tie_word_embeddings": false,
            "initializer_range": 0.02, "bos_token_id": .int(Int(tokenizer.bosId)),
            "eos_token_id": .int(Int(tokenizer.eosId)), "dtype": "float32", "use_cache": true,
        ])
    }
}
