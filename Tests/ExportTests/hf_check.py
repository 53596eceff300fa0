"""What an exported Hugging Face directory computes in PyTorch, for the export tests (and for anyone checking an
export by hand): the ids of a text, the mean loss on a text in the windows `ngpt-sample --perplexity` uses, and
greedy continuations of prompts through `generate()` (KV cache). Prints one JSON object.

    python3 hf_check.py DIR [--ids FILE] [--loss FILE] [--prompt TEXT ...] [--max-new-tokens 64]
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--ids", help="a UTF-8 file whose token ids to print")
    ap.add_argument("--loss", help="a UTF-8 file to score: [BOS] + ids in consecutive windows of the context")
    ap.add_argument("--prompt", action="append", default=[], help="a prompt to continue greedily")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(a.dir, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(a.dir, trust_remote_code=True, dtype=torch.float32).eval()
    out = {"class": type(model).__name__, "tokenizer": type(tokenizer).__name__}
    if a.ids:
        out["ids"] = tokenizer(open(a.ids, encoding="utf-8").read()).input_ids
    if a.loss:
        ids = tokenizer(open(a.loss, encoding="utf-8").read()).input_ids
        T = model.config.max_position_embeddings
        windows = (len(ids) - 1) // T
        total = 0.0
        with torch.no_grad():
            for start in range(0, windows, 8):
                rows = range(start, min(start + 8, windows))
                x = torch.tensor([ids[w * T:(w + 1) * T] for w in rows])
                y = torch.tensor([ids[w * T + 1:(w + 1) * T + 1] for w in rows])
                logits = model(x, use_cache=False).logits
                ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                       reduction="none")
                total += ce.double().sum().item()
        out["loss"] = total / (windows * T)
        out["windows"] = windows
    greedy = []
    with torch.no_grad():
        for p in a.prompt:
            ids = tokenizer(p, return_tensors="pt").input_ids
            g = model.generate(ids, max_new_tokens=a.max_new_tokens, do_sample=False, eos_token_id=None,
                               pad_token_id=0)
            greedy.append(g[0, ids.shape[1]:].tolist())
    out["greedy"] = greedy
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
