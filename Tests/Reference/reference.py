"""Independent PyTorch reference for ngpt's two models, written from the equations in docs/design.md §4.

Runs in float64 and writes the fixtures the Swift tests compare against. See README.md.
"""
import json
import math
import os

import torch
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "NGPTTests", "Fixtures")

CFG = dict(vocab=64, dim=32, layers=2, heads=2, mlp_hidden=40, context=16, batch=3)
# νGPT (design §4.5): base sizes, the constant scale of α, s_qk and s_z, and the per-group learning-rate exponents.
NU = dict(base_dim=256, base_layers=4, scale=0.03, exponents={"embedding": -0.5, "matrix": -0.75, "unembedding": -0.75})


def scales(variant):
    """(α factor, s_qk factor, s_z factor, raw init of α/s_qk/s_z): effective = raw · factor."""
    d, L = CFG["dim"], CFG["layers"]
    if variant == "ngpt-nu":
        s = NU["scale"]
        return 0.05 * NU["base_layers"] / L / s, 1 / s, math.sqrt(d / NU["base_dim"]) / s, s
    return 0.05 * math.sqrt(d), math.sqrt(d), math.sqrt(d), 1 / math.sqrt(d)


def group(name, tensor):
    if name == "tok_embeddings.weight":
        return "embedding"
    if name == "output.weight":
        return "unembedding"
    return "matrix" if tensor.dim() == 2 else "vector"


def unit_rows(w):
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def rope(x):
    """x: [B, T, H, dk]; true rotation of interleaved pairs (2i, 2i+1) by t * 10000^(-2i/dk)."""
    B, T, H, dk = x.shape
    i = torch.arange(dk // 2, dtype=torch.float64)
    theta = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (-2 * i / dk)  # [T, dk/2]
    cos, sin = theta.cos()[None, :, None, :], theta.sin()[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0, y1 = x0 * cos - x1 * sin, x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).reshape(B, T, H, dk)


def causal_attention(q, k, v, scale):
    """q, k, v: [B, T, H, dk] -> [B, T, H*dk]."""
    B, T, H, dk = q.shape
    s = torch.einsum("bthd,bshd->bhts", q, k) * scale
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    p = s.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, H * dk)


def names(kind, L):
    out = ["tok_embeddings.weight"]
    for l in range(L):
        p = f"layers.{l}."
        if kind == "gpt":
            out.append(p + "attn_norm.weight")
        out += [p + "attn." + w for w in ("wq", "wk", "wv", "wo")]
        if kind == "ngpt":
            out += [p + "attn.s_qk", p + "alpha_attn"]
        else:
            out.append(p + "mlp_norm.weight")
        out += [p + "mlp." + w for w in ("w_up", "w_gate", "w_down")]
        if kind == "ngpt":
            out += [p + "mlp.s_u", p + "mlp.s_v", p + "alpha_mlp"]
    out.append("s_z" if kind == "ngpt" else "norm.weight")
    out.append("output.weight")
    return out


def init_params(variant, gen):
    kind = "gpt" if variant == "gpt" else "ngpt"
    V, d, L, F = CFG["vocab"], CFG["dim"], CFG["layers"], CFG["mlp_hidden"]
    raw = scales(variant)[3]
    P = {}
    for n in names(kind, L):
        if n.endswith(("s_u", "s_v")):
            P[n] = 1.0 + 0.3 * torch.randn(F, generator=gen)
        elif n.endswith("s_qk") or n == "s_z":
            size = V if n == "s_z" else d
            P[n] = raw * (1.0 + 0.3 * torch.randn(size, generator=gen))
        elif "alpha" in n:
            a = raw * (1.0 + 0.5 * torch.randn(d, generator=gen))
            a[:3] = -a[:3]  # negative raw α: the forward uses |α|
            P[n] = a
        elif n.endswith(".weight") and ("norm" in n):
            P[n] = 1.0 + 0.2 * torch.randn(d, generator=gen)
        else:
            rows = V if "embeddings" in n or n.startswith("output") else (F if "mlp." in n else d)
            std = 1 / math.sqrt(d) if kind == "ngpt" else 0.02 * 4  # a larger GPT std so the test is not all-linear
            w = std * torch.randn(rows, d, generator=gen)
            P[n] = unit_rows(w) if kind == "ngpt" else w
    # float32 values, so the Swift side loads exactly these numbers
    return {n: t.float().double() for n, t in P.items()}


def ngpt_forward(P, tokens, variant="ngpt"):
    d, L, H = CFG["dim"], CFG["layers"], CFG["heads"]
    dk = d // H
    B, T = tokens.shape
    norm = unit_rows
    ca, cqk, cz, _ = scales(variant)
    h = P["tok_embeddings.weight"][tokens]
    for l in range(L):
        p = f"layers.{l}."
        A = norm(h)
        sqk = (P[p + "attn.s_qk"] * cqk).reshape(H, dk)
        q = rope((h @ P[p + "attn.wq"].T).reshape(B, T, H, dk))
        k = rope((h @ P[p + "attn.wk"].T).reshape(B, T, H, dk))
        v = (h @ P[p + "attn.wv"].T).reshape(B, T, H, dk)
        q, k = sqk * norm(q), sqk * norm(k)
        y = causal_attention(q, k, v, math.sqrt(dk))
        hA = norm(y @ P[p + "attn.wo"])
        alpha = (P[p + "alpha_attn"] * ca).abs()
        h = norm(A + alpha * (hA - A))
        A = norm(h)
        u = P[p + "mlp.s_u"] * (h @ P[p + "mlp.w_up"].T)
        nu = P[p + "mlp.s_v"] * (h @ P[p + "mlp.w_gate"].T) * math.sqrt(d)
        x = u * torch.nn.functional.silu(nu)
        hM = norm(x @ P[p + "mlp.w_down"])
        alpha = (P[p + "alpha_mlp"] * ca).abs()
        h = norm(A + alpha * (hM - A))
    return (P["s_z"] * cz) * (h @ P["output.weight"].T)


def rmsnorm(x, g, eps=1e-6):
    return g * x / (x.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt()


def gpt_forward(P, tokens):
    d, L, H = CFG["dim"], CFG["layers"], CFG["heads"]
    dk = d // H
    B, T = tokens.shape
    h = P["tok_embeddings.weight"][tokens]
    for l in range(L):
        p = f"layers.{l}."
        a = rmsnorm(h, P[p + "attn_norm.weight"])
        q = rope((a @ P[p + "attn.wq"].T).reshape(B, T, H, dk))
        k = rope((a @ P[p + "attn.wk"].T).reshape(B, T, H, dk))
        v = (a @ P[p + "attn.wv"].T).reshape(B, T, H, dk)
        h = h + causal_attention(q, k, v, 1 / math.sqrt(dk)) @ P[p + "attn.wo"]
        m = rmsnorm(h, P[p + "mlp_norm.weight"])
        h = h + ((m @ P[p + "mlp.w_up"].T) * torch.nn.functional.silu(m @ P[p + "mlp.w_gate"].T)) @ P[p + "mlp.w_down"]
    return rmsnorm(h, P["norm.weight"]) @ P["output.weight"].T


def loss_of(variant, P, tokens, targets):
    logits = gpt_forward(P, tokens) if variant == "gpt" else ngpt_forward(P, tokens, variant)
    return logits, torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train5(variant, P0, tokens, targets):
    """Five steps at lr 1e-2 (νGPT: times each group's width multiplier; the run-length factor is not part of it)."""
    kind = "gpt" if variant == "gpt" else "ngpt"
    P = {n: t.clone().requires_grad_(True) for n, t in P0.items()}
    groups = []
    for n, t in P.items():
        g = group(n, t)
        mult = 1.0
        if variant == "ngpt-nu" and g in NU["exponents"]:
            mult = (CFG["dim"] / NU["base_dim"]) ** NU["exponents"][g]
        groups.append({"params": [t], "lr": 1e-2 * mult, "weight_decay": 0.1 if kind == "gpt" and t.dim() == 2 else 0.0})
    opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        _, loss = loss_of(variant, P, tokens, targets)
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        if kind == "ngpt":
            with torch.no_grad():
                for n, t in P.items():
                    if t.dim() == 2:
                        t.copy_(unit_rows(t))
    return losses, {n: t.detach() for n, t in P.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    for kind, seed in (("ngpt", 1), ("gpt", 2), ("ngpt-nu", 3)):
        gen = torch.Generator().manual_seed(seed)
        P = init_params(kind, gen)
        B, T, V = CFG["batch"], CFG["context"], CFG["vocab"]
        seq = torch.randint(0, V, (B, T + 1), generator=gen)
        tokens, targets = seq[:, :-1], seq[:, 1:]
        Pg = {n: t.clone().requires_grad_(True) for n, t in P.items()}
        logits, loss = loss_of(kind, Pg, tokens, targets)
        loss.backward()
        losses, final = train5(kind, P, tokens, targets)
        tensors = {n: t.float().contiguous() for n, t in P.items()}
        tensors.update({"grad." + n: t.grad.contiguous() for n, t in Pg.items()})
        tensors.update({"final." + n: t.contiguous() for n, t in final.items()})
        tensors["inputs"] = tokens.contiguous()
        tensors["targets"] = targets.contiguous()
        tensors["logits"] = logits.detach().reshape(B * T, V).contiguous()
        tensors["loss"] = loss.detach().reshape(1)
        tensors["losses5"] = torch.tensor(losses)
        meta = {"format": "pt", "kind": kind, "config": json.dumps(CFG), "torch": torch.__version__}
        save_file(tensors, os.path.join(OUT, f"{kind}.safetensors"), metadata=meta)
        print(kind, "loss", loss.item(), "losses5", losses)


if __name__ == "__main__":
    main()
