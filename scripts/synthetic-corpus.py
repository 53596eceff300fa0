#!/usr/bin/env python3
"""Writes a synthetic corpus of a given size for measuring data preparation (not for training anything useful).

Text: words drawn from a Zipf-like distribution over a fixed vocabulary of made-up words (so a BPE tokenizer
finds structure, as in real text), lines of 4 to 24 words, a blank line between paragraphs. Deterministic for
a given --seed. Formats: plain text (one document), JSON Lines ({"id": ..., "text": ...} per paragraph), either
gzip-compressed with --gzip.

    scripts/synthetic-corpus.py --mb 200 --out /tmp/corpus-200mb.txt
    scripts/synthetic-corpus.py --mb 50 --format jsonl --gzip --out /tmp/corpus.jsonl.gz
"""
import argparse
import gzip
import json
import sys

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, required=True, help="size of the text in megabytes (10^6 bytes)")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--format", choices=["text", "jsonl"], default="text", help="plain text or JSON Lines (default: text)")
    p.add_argument("--gzip", action="store_true", help="gzip-compress the output")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    letter_p = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.2, 2.4, 2.0, 1.9,
                         1.0, 1.5, 2.0, 0.8, 0.2, 0.1, 0.2, 0.1])
    letter_p /= letter_p.sum()
    vocab = 30000
    lengths = np.clip(rng.poisson(4.5, vocab) + 1, 1, 14)
    words = ["".join(rng.choice(letters, n, p=letter_p)) for n in lengths]
    words[:8] = ["the", "of", "and", "to", "a", "in", "that", "is"]
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    word_p = 1 / ranks**1.07
    word_p /= word_p.sum()
    word_array = np.array(words, dtype=object)

    target = int(args.mb * 1e6)
    opener = (lambda f: gzip.open(f, "wt", encoding="utf-8", compresslevel=3)) if args.gzip else (lambda f: open(f, "w", encoding="utf-8"))
    written = 0
    doc = 0
    with opener(args.out) as out:
        while written < target:
            ids = rng.choice(vocab, 200_000, p=word_p)
            line_lengths = rng.integers(4, 25, 200_000 // 4)
            cuts = np.cumsum(line_lengths)
            cuts = cuts[cuts < len(ids)]
            lines = [" ".join(chunk) for chunk in np.split(word_array[ids], cuts)]
            paragraphs = []
            i = 0
            while i < len(lines):
                n = int(rng.integers(3, 12))
                paragraphs.append("\n".join(s[:1].upper() + s[1:] + "." for s in lines[i:i + n]))
                i += n
            if args.format == "text":
                block = "\n\n".join(paragraphs) + "\n\n"
            else:
                block = "".join(json.dumps({"id": doc + k, "text": t}) + "\n" for k, t in enumerate(paragraphs))
                doc += len(paragraphs)
            if written + len(block) > target:
                block = block[: max(0, target - written)]
                block = block[: block.rfind("\n") + 1]
            out.write(block)
            written += len(block)
            if not block:
                break
            print(f"\r{written / 1e6:.0f} of {target / 1e6:.0f} MB", end="", file=sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
