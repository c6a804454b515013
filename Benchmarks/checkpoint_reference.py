#!/usr/bin/env python3
"""Reference timings for loading a GPT-2 124M checkpoint with PyTorch and safetensors.

Usage: python3 Benchmarks/checkpoint_reference.py DIR [--repeat 9]
DIR must hold model.safetensors and pytorch_model.bin of a 124M-sized GPT-2 (make them with
`gpt2kit init --out DIR` then `gpt2kit convert DIR DIR/pytorch_model.bin --format pytorch`).
Prints one JSON object with median milliseconds.
"""
import argparse, json, os, statistics, time

import torch
from safetensors import safe_open
from safetensors.torch import load_file

torch.set_num_threads(2)


def median_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def touch_all(sd):
    # Read one float per 4 KiB page of every tensor, so lazily mapped pages are really read
    # (Benchmarks/CheckpointBenchmark does the same).
    return sum(float(t.reshape(-1)[::1024].float().sum()) for t in sd.values())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--repeat", type=int, default=9)
    a = p.parse_args()
    st = os.path.join(a.dir, "model.safetensors")
    pt = os.path.join(a.dir, "pytorch_model.bin")
    first = "transformer.wte.weight"

    def st_first():
        with safe_open(st, framework="pt") as f:
            f.get_tensor(first)

    res = {
        "safetensors_load_file_ms": median_ms(lambda: load_file(st), a.repeat),
        "safetensors_first_tensor_ms": median_ms(st_first, a.repeat),
        "safetensors_all_touched_ms": median_ms(lambda: touch_all(load_file(st)), a.repeat),
        "torch_load_ms": median_ms(lambda: torch.load(pt, weights_only=True), a.repeat),
        "torch_load_mmap_ms": median_ms(lambda: torch.load(pt, weights_only=True, mmap=True), a.repeat),
        "torch_all_touched_ms": median_ms(lambda: touch_all(torch.load(pt, weights_only=True)), a.repeat),
        "torch_mmap_all_touched_ms": median_ms(lambda: touch_all(torch.load(pt, weights_only=True, mmap=True)), a.repeat),
        "torch_version": torch.__version__,
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
