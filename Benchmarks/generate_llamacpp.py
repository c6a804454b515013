#!/usr/bin/env python3
"""llama.cpp reference for `generation-benchmark`: greedy ms per generated token on the same random GPT-2 124M
weights, as GGUF f32, f16 and q8_0 files written by `generation-benchmark --write-gguf DIR`.

llama-cpp-python 0.3.36 (CPU, n_threads 2, n_ctx 256), the prompt ids from DIR/prompt.json fed as tokens, 64
new tokens (top_k 1), timed from the first eval to the last token like `generation-benchmark` (prompt included,
divided by the new tokens); median over --repeats runs after one warm-up. `--prompts` times the 8 prompts of
prompt.json one after another (llama-cpp-python's high-level API decodes one sequence at a time) and
reports new tokens/s.

    swift build -c release --product generation-benchmark
    .build/release/generation-benchmark --write-gguf /tmp/genbench
    python3 Benchmarks/generate_llamacpp.py /tmp/genbench [--repeats 5] [--prompts]
"""
import argparse
import json
import os
import statistics
import time

import llama_cpp
from llama_cpp import Llama


def generate(llm, prompt, new_tokens):
    llm.reset()
    out = []
    for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(token)
        if len(out) == new_tokens:
            break
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", action="store_true")
    parser.add_argument("--dtypes", default="f32,f16,q8_0")
    args = parser.parse_args()
    spec = json.load(open(os.path.join(args.dir, "prompt.json")))
    new_tokens = spec["new_tokens"]
    print(f"llama.cpp (llama-cpp-python {llama_cpp.__version__}), {args.threads} threads, GPT-2 124M random weights, "
          f"prompt {len(spec['prompt'])} tokens, {new_tokens} new tokens, median of {args.repeats}")
    for dtype in args.dtypes.split(","):
        path = os.path.join(args.dir, f"gpt2-124m-random-{dtype}.gguf")
        llm = Llama(model_path=path, n_ctx=256, n_batch=256, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
        if args.prompts:
            rates = []
            for run in range(args.repeats + 1):
                start = time.perf_counter()
                total = sum(len(generate(llm, p, new_tokens)) for p in spec["prompts"])
                seconds = time.perf_counter() - start
                if run > 0:
                    rates.append(total / seconds)
            print(f"{dtype:5s} greedy, {len(spec['prompts'])} prompts one after another: {statistics.median(rates):.1f} new tokens/s "
                  f"(median; min {min(rates):.1f}, max {max(rates):.1f})")
        else:
            times = []
            for run in range(args.repeats + 1):
                start = time.perf_counter()
                out = generate(llm, spec["prompt"], new_tokens)
                ms = (time.perf_counter() - start) * 1000
                assert len(out) == new_tokens
                if run > 0:
                    times.append(ms / new_tokens)
            print(f"{dtype:5s} greedy batch 1: {statistics.median(times):.2f} ms/token (median; min {min(times):.2f}, max {max(times):.2f})")
        del llm


if __name__ == "__main__":
    main()
