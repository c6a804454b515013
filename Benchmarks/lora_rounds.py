#!/usr/bin/env python3
"""Issue 9's speed aims, measured the only way this kind of machine allows: interleaved rounds.

Each round runs, back to back, GPT2Kit's LoRA step and GPT2Kit's full fine-tuning step (odd rounds LoRA first, even
rounds full first) and (where `peft` is installed) PEFT + PyTorch's LoRA step, all at the same shape, then prints
every round and the medians of the per-round ratios (LoRA ÷ our full step, LoRA ÷ PEFT). A shared VM's speed drifts 10–15 % over minutes, so only
ratios within a round mean anything; the median over rounds is the figure to report.

    swift build -c release --product training-benchmark
    python3 Benchmarks/lora_rounds.py --rounds 8                      # GPT-2 124M, (4, 128), rank 8
    python3 Benchmarks/lora_rounds.py --rounds 3 --peft-rounds 0 --baseline /tmp/old-training-benchmark

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from every child's environment (what a user's machine has).
`--baseline BINARY` adds an older build's LoRA step to each round (before/after comparisons).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(command, env):
    """Runs a benchmark with --json and returns its last JSON line as a dict."""
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-2000:]}")
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"{' '.join(command)} printed no JSON line:\n{completed.stdout[-2000:]}")


def host_line(blas_core):
    """The CPU and the BLAS kernels, so figures from different machines can be told apart."""
    model, family, flags = "unknown CPU", "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "cpu family":
                    family = f" (family {value.strip()})"
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    model += family
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"host: {model}, {os.cpu_count()} cores, {vectors}; OpenBLAS kernels {blas_core}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--peft-rounds", type=int, default=3, help="rounds that also run PEFT (it is slow to start)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "training-benchmark"))
    parser.add_argument("--baseline", help="an older training-benchmark binary: its LoRA step joins each round")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    shape = ["--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
             "--warmup", str(args.warmup), "--json"]
    lora = ["--lora", str(args.rank)]
    try:
        import peft  # noqa: F401
        has_peft = True
    except ImportError:
        has_peft = False
        print("peft is not installed: PEFT's step is skipped", file=sys.stderr)

    rows = []
    for r in range(1, args.rounds + 1):
        row = {"round": r}
        if args.baseline:
            row["baseline"] = run([args.baseline] + shape + lora, env)["median_ms"]
        # Alternate which step runs first, so a drift in the VM's speed within a round favours neither.
        if r % 2 == 1:
            ours_lora = run([args.binary] + shape + lora, env)
            ours_full = run([args.binary] + shape, env)
        else:
            ours_full = run([args.binary] + shape, env)
            ours_lora = run([args.binary] + shape + lora, env)
        if r == 1:
            print(host_line(ours_lora.get("blas_core", "unknown")), flush=True)
        row["lora"], row["full"] = ours_lora["median_ms"], ours_full["median_ms"]
        row["lora_rss"], row["full_rss"] = ours_lora["peak_rss_mb"], ours_full["peak_rss_mb"]
        if has_peft and r <= args.peft_rounds:
            reference = [sys.executable, os.path.join(HERE, "training_reference.py")] + shape + lora
            row["peft"] = run(reference, env)["median_ms"]
        rows.append(row)
        line = f"round {r}: LoRA {row['lora']:.0f} ms, full {row['full']:.0f} ms, LoRA/full {row['lora'] / row['full']:.3f}"
        if "peft" in row:
            line += f", PEFT {row['peft']:.0f} ms, LoRA/PEFT {row['lora'] / row['peft']:.3f}"
        if "baseline" in row:
            line += f", baseline LoRA {row['baseline']:.0f} ms"
        print(line, flush=True)

    by_full = [row["lora"] / row["full"] for row in rows]
    print(f"LoRA / our full step: median {statistics.median(by_full):.3f} over {len(rows)} rounds "
          f"({min(by_full):.3f}–{max(by_full):.3f}); aim ≤ 0.65")
    by_peft = [row["lora"] / row["peft"] for row in rows if "peft" in row]
    if by_peft:
        print(f"LoRA / PEFT: median {statistics.median(by_peft):.3f} over {len(by_peft)} rounds "
              f"({min(by_peft):.3f}–{max(by_peft):.3f}); aim ≤ 0.6")
    rss = statistics.median(row["lora_rss"] / row["full_rss"] for row in rows)
    print(f"peak RSS LoRA / full: {rss:.2f}; aim ≤ 0.6")
    if args.baseline:
        print(f"LoRA step now / baseline: median {statistics.median(row['lora'] / row['baseline'] for row in rows):.3f}")


if __name__ == "__main__":
    main()
