#!/usr/bin/env python3
"""PyTorch reference for `training-benchmark`: one GPT-2 124M training step (zero_grad → forward with
labels in train mode (dropout on) → backward → clip_grad_norm_(1.0) → AdamW) on random tokens.

transformers' GPT2LMHeadModel(GPT2Config()) with random initialisation, fp32 on CPU,
torch.set_num_threads(2). Prints the median ms/step over --steps steps after --warmup warm-up steps and
the peak RSS (ru_maxrss).

    python3 Benchmarks/training_reference.py --batch 4 --seq 64 --steps 5 --warmup 1 [--json]
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = GPT2Config()
    model = GPT2LMHeadModel(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)

    times, losses = [], []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=generator)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        elapsed = (time.perf_counter() - start) * 1000
        if step >= args.warmup:
            times.append(elapsed)
            losses.append(loss.item())

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(times)
    if args.json:
        print(json.dumps({"implementation": "pytorch", "torch": torch.__version__, "batch": args.batch, "seq": args.seq,
                          "steps": args.steps, "warmup": args.warmup, "median_ms": round(median, 2),
                          "min_ms": round(min(times), 2), "peak_rss_mb": round(rss_mb), "first_loss": round(losses[0], 4)}))
    else:
        print(f"PyTorch {torch.__version__} GPT-2 124M training step, batch {args.batch} x {args.seq}, "
              f"{args.steps} steps after {args.warmup} warm-up")
        print(f"median {median:.1f} ms/step (min {min(times):.1f}), peak RSS {rss_mb:.0f} MB, first loss {losses[0]:.4f}")


if __name__ == "__main__":
    main()
