#!/usr/bin/env python3
"""Makes fixtures/generation/goldens.json: transformers' greedy `generate` with the repetition penalty and
the no-repeat-n-gram ban, on the bundled models, for GPT2Kit's Generator to match id for id.

Run once (from anywhere) where torch 2.13.0+cpu and transformers 4.57.6 are installed:
    python3 scripts/make_generation_goldens.py
The tests (Tests/GenerationTests/LogitsProcessorGoldenTests.swift) read the committed file; they never need
Python.

Models: fixtures/tiny-gpt2 (vocab 50257, 64 positions) and fixtures/micro-gpt2 (vocab 1000, 32 positions),
fp32, CPU, `torch.use_deterministic_algorithms(True)`, 2 threads, eval mode. Decoding: greedy
(`do_sample=False`), `max_new_tokens` as recorded, `eos_token_id` 50256 (never produced here: tiny-gpt2 is
random, micro-gpt2's vocabulary stops at 999), `pad_token_id` 50256. Settings: repetition_penalty 1.3 and
0.8, no_repeat_ngram_size 2 and 3, and penalty 1.3 with n-gram size 2 together; plus the plain greedy run
for reference.

Each case records `model`, `prompt_ids`, `max_new_tokens`, `repetition_penalty`, `no_repeat_ngram_size`,
`output_ids` (prompt then new ids) and `min_margin`: over every step, the smallest gap between the largest
and the second-largest processed score (transformers' `output_scores`, i.e. after the processors). A
margin far above float32 rounding of the logits (~1e-6 here) means the argmax cannot flip between two
correct implementations; the script refuses to write a case whose margin is below 1e-4.
"""
import json, os
import torch
from transformers import GPT2LMHeadModel

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out_dir = os.path.join(root, "fixtures", "generation")
os.makedirs(out_dir, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)

MODELS = {
    # "Harry Potter is a series of", "The cat sat on the mat because"
    "tiny-gpt2": {"prompts": [[18308, 14179, 318, 257, 2168, 286], [464, 3797, 3332, 319, 262, 2603, 780]],
                  "max_new_tokens": 24},
    "micro-gpt2": {"prompts": [[5, 17, 230, 999, 42], [1, 2, 3, 1, 2, 3, 1]], "max_new_tokens": 16},
}
SETTINGS = [
    {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0},
    {"repetition_penalty": 1.3, "no_repeat_ngram_size": 0},
    {"repetition_penalty": 0.8, "no_repeat_ngram_size": 0},
    {"repetition_penalty": 1.0, "no_repeat_ngram_size": 2},
    {"repetition_penalty": 1.0, "no_repeat_ngram_size": 3},
    {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2},
]
MIN_MARGIN = 1e-4

cases = []
for name, spec in MODELS.items():
    model = GPT2LMHeadModel.from_pretrained(os.path.join(root, "fixtures", name), torch_dtype=torch.float32)
    model.eval()
    for prompt in spec["prompts"]:
        for setting in SETTINGS:
            kwargs = dict(do_sample=False, max_new_tokens=spec["max_new_tokens"], eos_token_id=50256,
                          pad_token_id=50256, output_scores=True, return_dict_in_generate=True,
                          repetition_penalty=setting["repetition_penalty"],
                          no_repeat_ngram_size=setting["no_repeat_ngram_size"])
            with torch.no_grad():
                out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long), **kwargs)
            margins = []
            for scores in out.scores:
                top = torch.topk(scores[0], 2).values
                margins.append((top[0] - top[1]).item())
            margin = min(margins)
            label = f"{name} {prompt} {setting}"
            if margin < MIN_MARGIN:
                raise SystemExit(f"{label}: greedy margin {margin} below {MIN_MARGIN}; pick another prompt")
            cases.append({"model": name, "prompt_ids": prompt, "max_new_tokens": spec["max_new_tokens"],
                          "repetition_penalty": setting["repetition_penalty"],
                          "no_repeat_ngram_size": setting["no_repeat_ngram_size"],
                          "output_ids": out.sequences[0].tolist(), "min_margin": margin})
            print(f"{label}: new {out.sequences[0].tolist()[len(prompt):]} margin {margin:.3g}")

with open(os.path.join(out_dir, "goldens.json"), "w") as f:
    json.dump({"torch": torch.__version__, "transformers": __import__("transformers").__version__,
               "cases": cases}, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases")
