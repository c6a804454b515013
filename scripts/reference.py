#!/usr/bin/env python3
"""PyTorch's forward pass of a GPT-2 on a prompt, for `gpt2kit verify MODEL --reference ref.json`.

    python3 scripts/reference.py MODEL PROMPT [--tokenizer DIR] [--out ref.json]

MODEL is a Hugging Face folder (`GPT2LMHeadModel.from_pretrained`, loaded in float32 whatever the stored dtype);
the tokenizer is `GPT2TokenizerFast` (else the slow `GPT2Tokenizer`) from `--tokenizer` or from MODEL. Runs on
the CPU in eval mode with `torch.use_deterministic_algorithms(True)` and 2 threads, and writes one JSON object
(to `--out`, else standard output):

    format        "gpt2kit-reference"
    version       1
    model         MODEL as given
    tokenizer     the tokenizer folder used
    prompt        PROMPT
    input_ids     the tokenizer's ids of PROMPT (no special tokens added; at least 2)
    loss          model(input_ids, labels=input_ids).loss: mean cross-entropy of each next token
    logits        [T][V] logits of every position, each the shortest decimal that reads back as the same float32
    torch, transformers   the versions that computed it

Needs torch and transformers (GPT2Kit's goldens use torch 2.13.0+cpu and transformers 4.57.6); GPT2Kit's
tests never run it, they read the committed output in fixtures/verify/.
"""
import argparse, json, os, sys

import numpy as np
import torch
import transformers
from transformers import GPT2LMHeadModel


def load_tokenizer(folder):
    try:
        from transformers import GPT2TokenizerFast
        return GPT2TokenizerFast.from_pretrained(folder)
    except Exception:
        from transformers import GPT2Tokenizer
        return GPT2Tokenizer.from_pretrained(folder)


def float32_text(values):
    """A JSON array of float32 values, each the shortest decimal that reads back as the same float32."""
    if not np.isfinite(values).all():
        sys.exit("error: the logits are not all finite")
    return "[" + ", ".join(str(v) for v in values.astype(np.float32)) + "]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Hugging Face model folder")
    parser.add_argument("prompt")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    parser.add_argument("--out", help="output JSON file (default: standard output)")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    tokenizer_dir = args.tokenizer or args.model
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = tokenizer(args.prompt)["input_ids"]
    if len(ids) < 2:
        sys.exit(f"error: the prompt is {len(ids)} token(s); the loss needs at least 2")
    model = GPT2LMHeadModel.from_pretrained(args.model, dtype=torch.float32).eval()
    with torch.no_grad():
        input_ids = torch.tensor([ids])
        out = model(input_ids, labels=input_ids)
    logits = out.logits[0].float().numpy()

    head = {
        "format": "gpt2kit-reference", "version": 1, "model": args.model, "tokenizer": tokenizer_dir,
        "prompt": args.prompt, "input_ids": ids, "loss": float(out.loss),
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    # json.dumps would print each float32 as its float64 expansion (17 digits); write the rows by hand.
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "logits": [\n' + ",\n".join(float32_text(row) for row in logits) + "]}\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.out}: {len(ids)} tokens, loss {float(out.loss):.6f}, {os.path.getsize(args.out)} bytes", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
