/// The Python modeling code an exported nGPT carries (`configuration_ngpt.py`, `modeling_ngpt.py`): Hugging Face
/// has no nGPT, so `from_pretrained(DIR, trust_remote_code=True)` loads these, registered by config.json's
/// `auto_map`. They compute what NGPTModel computes (design §4.1, §4.5) and what NGPTDecoder computes with a KV
/// cache; the export tests hold the two to equal losses and greedy tokens.
enum NGPTModelingCode {
    static let configuration = #"""
        """nGPT's configuration for Hugging Face transformers, written by the ngpt project's exporter
        (ngpt-export)."""
        from transformers import PretrainedConfig


        class NGPTConfig(PretrainedConfig):
            """The normalized Transformer (nGPT): sizes, and the init and scale of its learnable scale vectors.

            Each scale vector is stored raw and used as raw * init / scale (alpha_*, s_qk_*, s_z_*): it starts at
            `init` and Adam moves it 1/scale times slower than a plain parameter. "paper" is the 2024 paper's
            parameterization (scales 1/sqrt(d)), "nu" the nuGPT one (constant scale 0.03).
            """

            model_type = "ngpt"
            keys_to_ignore_at_inference = ["cache", "past_key_values"]

            def __init__(
                self,
                vocab_size=32000,
                hidden_size=256,
                intermediate_size=683,
                num_hidden_layers=4,
                num_attention_heads=4,
                max_position_embeddings=256,
                rope_theta=10000.0,
                parameterization="paper",
                alpha_init=0.05,
                alpha_scale=None,
                s_qk_init=1.0,
                s_qk_scale=None,
                s_z_init=1.0,
                s_z_scale=None,
                norm_floor=1e-12,
                use_cache=True,
                bos_token_id=1,
                eos_token_id=2,
                **kwargs,
            ):
                self.vocab_size = vocab_size
                self.hidden_size = hidden_size
                self.intermediate_size = intermediate_size
                self.num_hidden_layers = num_hidden_layers
                self.num_attention_heads = num_attention_heads
                self.head_dim = hidden_size // num_attention_heads
                self.max_position_embeddings = max_position_embeddings
                self.rope_theta = rope_theta
                self.parameterization = parameterization
                default_scale = hidden_size**-0.5
                self.alpha_init, self.alpha_scale = alpha_init, alpha_scale or default_scale
                self.s_qk_init, self.s_qk_scale = s_qk_init, s_qk_scale or default_scale
                self.s_z_init, self.s_z_scale = s_z_init, s_z_scale or default_scale
                self.norm_floor = norm_floor
                self.use_cache = use_cache
                kwargs["tie_word_embeddings"] = False
                super().__init__(bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
        """#

    static let modeling = #"""
        """nGPT (the normalized Transformer, Loshchilov et al. 2024) for Hugging Face transformers, as the ngpt
        project computes it: written by its exporter (ngpt-export), loaded with `trust_remote_code=True`.

        Every embedding, matrix row and hidden state lies on the unit sphere. A block moves the hidden state h a
        learned step alpha towards each sub-block's output and projects it back:

            h <- Norm(h + alpha_A * (Norm(Attention(h)) - h));  h <- Norm(h + alpha_M * (Norm(MLP(h)) - h))

        Attention normalises each head's query and key after RoPE, scales them by s_qk and uses a softmax scale of
        sqrt(d_k); the MLP is SwiGLU with u = s_u * (W_up h) and v = sqrt(d) * s_v * (W_gate h); the logits are
        s_z * (E_out h) with no final norm. RoPE rotates the interleaved pairs (2i, 2i+1) of each head.

        After each optimiser step of a fine-tuning run, call `model.normalize_matrices()` (nGPT keeps its matrices
        on the sphere; without it the model drifts away from what it was trained as).
        """
        import math

        import torch
        import torch.nn.functional as F
        from torch import nn
        from transformers import GenerationMixin, PreTrainedModel
        from transformers.cache_utils import Cache, DynamicCache
        from transformers.modeling_outputs import CausalLMOutputWithPast

        from .configuration_ngpt import NGPTConfig


        def unit(x, floor):
            """x with each last-axis row scaled to length 1 (rows shorter than `floor` are divided by `floor`)."""
            return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(floor)


        def effective(raw, init, scale):
            """A scale vector's value: raw * init / scale, the factor computed in float32 as ngpt computes it."""
            factor = torch.tensor(init, dtype=torch.float32) / torch.tensor(scale, dtype=torch.float32)
            return raw * factor.to(raw.dtype)


        def rotate(x, cos, sin):
            """RoPE on interleaved pairs: x [B, H, T, d_k], cos and sin [B, 1, T, d_k/2]."""
            x0, x1 = x[..., 0::2], x[..., 1::2]
            return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


        class NGPTAttention(nn.Module):
            def __init__(self, config, layer_idx):
                super().__init__()
                d = config.hidden_size
                self.config, self.layer_idx = config, layer_idx
                self.heads, self.head_dim = config.num_attention_heads, config.head_dim
                self.q_proj = nn.Linear(d, d, bias=False)
                self.k_proj = nn.Linear(d, d, bias=False)
                self.v_proj = nn.Linear(d, d, bias=False)
                self.o_proj = nn.Linear(d, d, bias=False)
                self.s_qk = nn.Parameter(torch.full((d,), float(config.s_qk_scale)))

            def forward(self, h, cos, sin, mask, cache):
                c, (B, T, _) = self.config, h.shape
                shape = (B, T, self.heads, self.head_dim)
                q = rotate(self.q_proj(h).view(shape).transpose(1, 2), cos, sin)
                k = rotate(self.k_proj(h).view(shape).transpose(1, 2), cos, sin)
                v = self.v_proj(h).view(shape).transpose(1, 2)
                s_qk = effective(self.s_qk, c.s_qk_init, c.s_qk_scale).view(self.heads, 1, self.head_dim)
                q, k = s_qk * unit(q, c.norm_floor), s_qk * unit(k, c.norm_floor)
                if cache is not None:
                    k, v = cache.update(k, v, self.layer_idx)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=math.sqrt(self.head_dim))
                return unit(self.o_proj(y.transpose(1, 2).reshape(B, T, -1)), c.norm_floor)


        class NGPTMLP(nn.Module):
            def __init__(self, config):
                super().__init__()
                d, f = config.hidden_size, config.intermediate_size
                self.config = config
                self.up_proj = nn.Linear(d, f, bias=False)
                self.gate_proj = nn.Linear(d, f, bias=False)
                self.down_proj = nn.Linear(f, d, bias=False)
                self.s_u = nn.Parameter(torch.ones(f))
                self.s_v = nn.Parameter(torch.ones(f))

            def forward(self, h):
                u = self.s_u * self.up_proj(h)
                v = self.s_v * self.gate_proj(h) * math.sqrt(self.config.hidden_size)
                return unit(self.down_proj(u * F.silu(v)), self.config.norm_floor)


        class NGPTBlock(nn.Module):
            def __init__(self, config, layer_idx):
                super().__init__()
                self.config = config
                self.self_attn = NGPTAttention(config, layer_idx)
                self.mlp = NGPTMLP(config)
                self.alpha_attn = nn.Parameter(torch.full((config.hidden_size,), float(config.alpha_scale)))
                self.alpha_mlp = nn.Parameter(torch.full((config.hidden_size,), float(config.alpha_scale)))

            def step(self, h, target, alpha):
                """Norm(A + |alpha| * (target - A)) with A = Norm(h)."""
                c = self.config
                a = unit(h, c.norm_floor)
                alpha = effective(alpha, c.alpha_init, c.alpha_scale).abs()
                return unit(a + alpha * (target - a), c.norm_floor)

            def forward(self, h, cos, sin, mask, cache):
                h = self.step(h, self.self_attn(h, cos, sin, mask, cache), self.alpha_attn)
                return self.step(h, self.mlp(h), self.alpha_mlp)


        class NGPTPreTrainedModel(PreTrainedModel):
            config_class = NGPTConfig
            base_model_prefix = "model"
            _no_split_modules = ["NGPTBlock"]
            supports_gradient_checkpointing = False

            @torch.no_grad()
            def _init_weights(self, module):
                """nGPT's initialisation: unit rows (along the embedding axis), scale vectors at their raw start."""
                c = self.config
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, c.hidden_size**-0.5)
                if isinstance(module, NGPTAttention):
                    module.s_qk.fill_(c.s_qk_scale)
                elif isinstance(module, NGPTMLP):
                    module.s_u.fill_(1.0)
                    module.s_v.fill_(1.0)
                elif isinstance(module, NGPTBlock):
                    module.alpha_attn.fill_(c.alpha_scale)
                    module.alpha_mlp.fill_(c.alpha_scale)
                elif isinstance(module, NGPTForCausalLM):
                    module.s_z.fill_(c.s_z_scale)
                    module.normalize_matrices()

            @torch.no_grad()
            def normalize_matrices(self):
                """Every matrix back on the sphere along the embedding axis: the rows of the embeddings, the
                unembedding and the input projections; the columns of o_proj and down_proj (which map into the
                embedding space)."""
                floor = self.config.norm_floor
                for name, p in self.named_parameters():
                    if p.dim() != 2:
                        continue
                    if name.endswith(("o_proj.weight", "down_proj.weight")):
                        p.copy_(unit(p.t(), floor).t())
                    else:
                        p.copy_(unit(p, floor))


        class NGPTModel(NGPTPreTrainedModel):
            def __init__(self, config):
                super().__init__(config)
                self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
                self.layers = nn.ModuleList(NGPTBlock(config, l) for l in range(config.num_hidden_layers))
                self.post_init()

            def get_input_embeddings(self):
                return self.embed_tokens

            def set_input_embeddings(self, value):
                self.embed_tokens = value

            def rope(self, positions, dtype):
                """cos and sin [B, 1, T, d_k/2] of positions [B, T]: angle t * theta^(-2i/d_k), in float64."""
                dk = self.config.head_dim
                inv = self.config.rope_theta ** (-torch.arange(0, dk, 2, dtype=torch.float64) / dk)
                angles = positions.to(torch.float64)[:, None, :, None] * inv.to(positions.device)
                return angles.cos().to(dtype), angles.sin().to(dtype)

            def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None,
                        inputs_embeds=None, use_cache=None, past_key_values=None, **kwargs):
                cache = cache if cache is not None else past_key_values
                use_cache = self.config.use_cache if use_cache is None else use_cache
                if (input_ids is None) == (inputs_embeds is None):
                    raise ValueError("give exactly one of input_ids and inputs_embeds")
                h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
                B, T, _ = h.shape
                if use_cache and cache is None:
                    cache = DynamicCache(config=self.config)
                past = cache.get_seq_length() if cache is not None else 0
                if position_ids is None:
                    position_ids = (torch.arange(T, device=h.device) + past)[None].expand(B, T)
                cos, sin = self.rope(position_ids, h.dtype)
                # Causal over the cache and the new tokens; padded keys (attention_mask 0) hidden. A large
                # negative bias rather than -inf keeps a fully padded row finite.
                keys = torch.arange(past + T, device=h.device)
                allowed = keys[None, :] <= (past + torch.arange(T, device=h.device))[:, None]
                allowed = allowed[None, None].expand(B, 1, T, past + T)
                if attention_mask is not None and attention_mask.dim() == 2:
                    allowed = allowed & attention_mask[:, None, None, -(past + T):].bool()
                mask = torch.zeros(allowed.shape, dtype=h.dtype, device=h.device)
                mask = mask.masked_fill(~allowed, torch.finfo(h.dtype).min)
                for layer in self.layers:
                    h = layer(h, cos, sin, mask, cache)
                return h, cache


        class NGPTForCausalLM(NGPTPreTrainedModel, GenerationMixin):
            def __init__(self, config):
                super().__init__(config)
                self.model = NGPTModel(config)
                self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
                self.s_z = nn.Parameter(torch.full((config.vocab_size,), float(config.s_z_scale)))
                self.post_init()

            def get_input_embeddings(self):
                return self.model.embed_tokens

            def set_input_embeddings(self, value):
                self.model.embed_tokens = value

            def get_output_embeddings(self):
                return self.lm_head

            def set_output_embeddings(self, value):
                self.lm_head = value

            def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None,
                        inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, past_key_values=None,
                        **kwargs):
                """logits = s_z * (E_out h); with `labels`, also the mean next-token loss (labels shifted inside,
                -100 ignored), as transformers' causal language models compute it."""
                h, cache = self.model(input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache,
                                      past_key_values)
                if isinstance(logits_to_keep, int) and logits_to_keep > 0:
                    h = h[:, -logits_to_keep:]
                c = self.config
                logits = effective(self.s_z, c.s_z_init, c.s_z_scale) * self.lm_head(h)
                loss = None
                if labels is not None:
                    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
                    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                                           ignore_index=-100)
                name = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
                return CausalLMOutputWithPast(loss=loss, logits=logits, **{name: cache})
        """#
}
