#!/usr/bin/env python3
"""PyTorch reference for `training-benchmark`: one GPT-2 124M training step (zero_grad → forward with
labels in train mode (dropout on) → backward → clip_grad_norm_(1.0) → AdamW) on random tokens.

transformers' GPT2LMHeadModel(GPT2Config()) with random initialisation, fp32 on CPU,
torch.set_num_threads(2). Prints the median ms/step over --steps steps after --warmup warm-up steps and
the peak RSS (ru_maxrss).

    python3 Benchmarks/training_reference.py --batch 4 --seq 64 --steps 5 --warmup 1 [--json]
    python3 Benchmarks/training_reference.py --batch 4 --seq 128 --lora 8 [--preset gpt2-xl]   # PEFT LoRA (peft 0.21)
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
    parser.add_argument("--lora", type=int, default=0, help="PEFT LoRA rank on c_attn, c_proj, c_fc (0: full fine-tuning)")
    parser.add_argument("--preset", default="gpt2", choices=["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    shapes = {"gpt2": (768, 12, 12), "gpt2-medium": (1024, 24, 16), "gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}
    n_embd, n_layer, n_head = shapes[args.preset]
    config = GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head)
    model = GPT2LMHeadModel(config)
    if args.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=args.lora, lora_alpha=2 * args.lora, lora_dropout=0.0,
                                                 target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True,
                                                 task_type="CAUSAL_LM"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)

    times, losses = [], []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=generator)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        elapsed = (time.perf_counter() - start) * 1000
        if step >= args.warmup:
            times.append(elapsed)
            losses.append(loss.item())

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(times)
    if args.json:
        print(json.dumps({"implementation": "pytorch" + ("+peft" if args.lora else ""), "torch": torch.__version__,
                          "model": args.preset, "lora_rank": args.lora, "batch": args.batch, "seq": args.seq,
                          "steps": args.steps, "warmup": args.warmup, "median_ms": round(median, 2),
                          "min_ms": round(min(times), 2), "peak_rss_mb": round(rss_mb), "first_loss": round(losses[0], 4)}))
    else:
        print(f"PyTorch {torch.__version__} GPT-2 124M training step, batch {args.batch} x {args.seq}, "
              f"{args.steps} steps after {args.warmup} warm-up")
        print(f"median {median:.1f} ms/step (min {min(times):.1f}), peak RSS {rss_mb:.0f} MB, first loss {losses[0]:.4f}")


if __name__ == "__main__":
    main()
