"""Reference for Benchmarks/GenerationBenchmark: transformers' generate on PyTorch CPU, 2 threads.

GPT-2 124M shape (n_embd 768, 12 layers, 12 heads, vocab 50257, n_positions 1024), random weights,
prompt of 8 tokens, 64 new tokens, batch 1 and 3 (the prompt repeated, as num_return_sequences expands it), greedy and sampling (top-k 50),
no EOS stop. Prints the median ms per generated token over --repeats runs after one warm-up.
Tested with torch 2.13.0+cpu, transformers 4.57.6.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("USE_TF", "0")  # transformers would otherwise import TensorFlow when it is installed

import torch
from transformers import GPT2Config, GPT2LMHeadModel

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--new-tokens", type=int, default=64)
parser.add_argument("--prompt-length", type=int, default=8)
args = parser.parse_args()

torch.set_num_threads(2)
torch.manual_seed(0)
config = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)
model = GPT2LMHeadModel(config).eval()
model.generation_config.eos_token_id = None
model.generation_config.pad_token_id = 0
prompt = torch.randint(0, 50257, (1, args.prompt_length))
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; prompt {args.prompt_length}, "
      f"{args.new_tokens} new tokens, median of {args.repeats} runs")
for label, kwargs in [("greedy", dict(do_sample=False)), ("sample top-k 50", dict(do_sample=True, top_k=50))]:
    for batch in (1, 3):
        times = []
        for run in range(args.repeats + 1):
            start = time.perf_counter()
            with torch.inference_mode():
                # the prompt repeated `batch` times: what num_return_sequences expands to (greedy rejects it)
                out = model.generate(prompt.repeat(batch, 1), attention_mask=torch.ones(batch, args.prompt_length, dtype=torch.long),
                                     max_new_tokens=args.new_tokens, use_cache=True, **kwargs)
            ms = (time.perf_counter() - start) * 1000
            assert out.shape == (batch, args.prompt_length + args.new_tokens)
            if run > 0:
                times.append(ms / args.new_tokens)
        print(f"{label}  batch {batch}: {statistics.median(times):.2f} ms/token "
              f"(median; min {min(times):.2f}, max {max(times):.2f})")
