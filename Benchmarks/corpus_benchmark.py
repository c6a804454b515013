#!/usr/bin/env python3
"""Corpus-data benchmark (docs/benchmarks.md, "Corpus data").

tokenize: time `gpt2kit tokenize --shards` (every core) against tiktoken's `encode_ordinary` on one
thread over the same text folder (the same files in the same order: .txt below the folder, hidden
names skipped, sorted by path bytes; each document starts with <|endoftext|>, as llm.c's fineweb.py
writes them), report MB/s, the ratio and gpt2kit's peak RSS, and check that the shards hold exactly
tiktoken's ids.

    python3 Benchmarks/corpus_benchmark.py tokenize --corpus Benchmarks/corpus-200mb \
        --shards Benchmarks/shards-200mb --gpt2kit .build/release/gpt2kit

finetune: run a short `gpt2kit finetune` on each shard folder and report the peak RSS of each run
(os.wait4's ru_maxrss), so that runs over corpora of different sizes can be compared. `--text FOLDER`
adds runs on text folders (tokenized into memory at start-up) for contrast.

    python3 Benchmarks/corpus_benchmark.py finetune --model Benchmarks/g124 \
        --shards Benchmarks/shards-20mb Benchmarks/shards-200mb [--text Benchmarks/corpus-200mb] --gpt2kit .build/release/gpt2kit

Both references are built offline from fixtures/gpt2-tokenizer (see tokenizer_reference.py).
"""
import argparse
import array
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tokenizer_reference import GPT2_PATTERN, bytes_to_unicode  # noqa: E402


def text_files(folder):
    """The .txt files below `folder` in gpt2kit's order (hidden names skipped, sorted by path bytes)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d))]
        out += [os.path.join(root, f) for f in files if not f.startswith(".") and f.lower().endswith(".txt")]
    return sorted(out, key=lambda p: p.encode())


def tiktoken_encoding(tokenizer):
    import tiktoken
    with open(os.path.join(tokenizer, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    byte_decoder = {v: k for k, v in bytes_to_unicode().items()}
    ranks = {bytes(byte_decoder[c] for c in tok): i for tok, i in vocab.items() if tok != "<|endoftext|>"}
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": vocab["<|endoftext|>"]}, explicit_n_vocab=len(vocab))


def run_with_peak(command):
    """Runs `command` (stdout/stderr to files) and returns (stdout, seconds, peak RSS in MB) via wait4."""
    import tempfile
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0); err.seek(0)
        raise_on_failure(process.returncode, command, err.read())
        return out.read().decode(), seconds, usage.ru_maxrss / 1024  # KiB on Linux


def raise_on_failure(code, command, err):
    if code != 0:
        sys.exit(f"{' '.join(command)} exited {code}:\n{err.decode(errors='replace') if isinstance(err, bytes) else err}")


def read_shards(folder):
    ids = array.array("H")
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("shard_") and name.endswith(".bin")):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            header = array.array("i", f.read(1024))
            if sys.byteorder != "little":
                header.byteswap()
            assert header[0] == 20240520 and header[1] == 1, f"{name}: bad header"
            part = array.array("H", f.read())
            if sys.byteorder != "little":
                part.byteswap()
            assert len(part) == header[2], f"{name}: {len(part)} tokens, header says {header[2]}"
            ids.extend(part)
    return ids


def tokenize(args):
    files = text_files(args.corpus)
    total = sum(os.path.getsize(p) for p in files)
    print(f"corpus {args.corpus}: {len(files)} files, {total / 1e6:.1f} MB", file=sys.stderr)
    enc = tiktoken_encoding(args.tokenizer)
    eot = enc.eot_token

    best = float("inf")
    for _ in range(args.repeat):
        reference = array.array("H")
        start = time.perf_counter()
        for path in files:  # read + encode_ordinary on one thread, as fineweb.py's per-document tokenize does
            with open(path, encoding="utf-8") as f:
                text = f.read()
            reference.append(eot)
            reference.extend(enc.encode_ordinary(text))
        best = min(best, time.perf_counter() - start)
    tiktoken_seconds = best

    best, peak, report = float("inf"), 0.0, {}
    for _ in range(args.repeat):
        shutil.rmtree(args.shards, ignore_errors=True)
        out, seconds, rss = run_with_peak([args.gpt2kit, "tokenize", "--tokenizer", args.tokenizer, "--shards", args.shards,
                                           "--shard-tokens", str(args.shard_tokens), "--json", args.corpus])
        if seconds < best:
            best, peak, report = seconds, rss, json.loads(out)
    ours = read_shards(args.shards)
    agree = ours == reference
    print(f"| tokenizer | seconds | MB/s | tokens | peak RSS (MB) |")
    print(f"|---|---:|---:|---:|---:|")
    print(f"| tiktoken {enc.name} encode_ordinary, 1 thread (read + encode) | {tiktoken_seconds:.2f} | "
          f"{total / 1e6 / tiktoken_seconds:.1f} | {len(reference)} | — |")
    print(f"| gpt2kit tokenize --shards (wall, process start and tokenizer load included) | {best:.2f} | "
          f"{total / 1e6 / best:.1f} | {report.get('tokens')} | {peak:.0f} |")
    print(f"\ngpt2kit / tiktoken: {tiktoken_seconds / best:.2f}x (gpt2kit's own timing: {report.get('seconds', 0):.2f} s, "
          f"{report.get('megabytes_per_second', 0):.1f} MB/s); {len(report.get('shards', []))} shards; "
          f"ids {'agree' if agree else 'DIFFER'} ({len(ours)} vs {len(reference)} tokens)")
    if not agree:
        sys.exit(1)


def finetune(args):
    rows = []
    for folder in args.shards + args.text:
        if folder in args.shards:
            tokens = sum((os.path.getsize(os.path.join(folder, n)) - 1024) // 2 for n in os.listdir(folder) if n.endswith(".bin"))
        else:
            tokens = None
        run = os.path.join(args.runs, os.path.basename(os.path.normpath(folder)))
        shutil.rmtree(run, ignore_errors=True)
        command = [args.gpt2kit, "finetune", "--model", args.model, "--tokenizer", args.tokenizer, "--data", folder,
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", "1e-4", "--seed", "0",
                   "--out", run, "--json"]
        if args.block_size:
            command += ["--block-size", str(args.block_size)]
        out, seconds, rss = run_with_peak(command)
        steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        step_seconds = statistics.median(s["tokens_per_s"] for s in steps)
        rows.append((folder, tokens, seconds, rss, step_seconds, steps[-1]["loss"]))
        shutil.rmtree(run, ignore_errors=True)
    print("| data | tokens | shard bytes (MB) | run (s) | median tokens/s | last loss | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for folder, tokens, seconds, rss, tps, loss in rows:
        if tokens is None:
            print(f"| {folder} (text, in memory) | — | — | {seconds:.1f} | {tps:.0f} | {loss:.4f} | {rss:.0f} |")
        else:
            print(f"| {folder} | {tokens} | {(1024 + 2 * tokens) / 1e6:.0f} | {seconds:.1f} | {tps:.0f} | {loss:.4f} | {rss:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenize")
    t.add_argument("--corpus", default="Benchmarks/corpus-200mb")
    t.add_argument("--shards", default="Benchmarks/shards-200mb")
    t.add_argument("--shard-tokens", type=int, default=100_000_000)
    t.add_argument("--repeat", type=int, default=1)
    f = sub.add_parser("finetune")
    f.add_argument("--model", required=True)
    f.add_argument("--shards", nargs="+", required=True)
    f.add_argument("--text", nargs="*", default=[])
    f.add_argument("--runs", default="runs/corpus-benchmark")
    f.add_argument("--steps", type=int, default=10)
    f.add_argument("--batch-size", type=int, default=1)
    f.add_argument("--block-size", type=int)
    for s in (t, f):
        s.add_argument("--gpt2kit", default=".build/release/gpt2kit")
        s.add_argument("--tokenizer", default="fixtures/gpt2-tokenizer")
    args = p.parse_args()
    tokenize(args) if args.command == "tokenize" else finetune(args)


if __name__ == "__main__":
    main()
