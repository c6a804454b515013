#!/usr/bin/env python3
"""Time tiktoken and Hugging Face `tokenizers` on the tokenizer benchmark corpus, run GPT2Kit's
`bench-tokenizer` on the same corpus, and check that all three produce the same ids.

Both references are built offline from the same vocab.json/merges.txt GPT2Kit loads:
tiktoken's Encoding gets GPT-2's pattern and ranks (GPT-2's ids are its merge ranks), and
tokenizers gets a BPE model with the ByteLevel pre-tokenizer/decoder.

The corpus is cut at line ends into chunks of at least --chunk-bytes (the rule GPT2Kit's
benchmark uses), and every tokenizer encodes the chunks without special tokens.

    python3 Benchmarks/tokenizer_reference.py --tokenizer fixtures/gpt2-tokenizer \
        --corpus Benchmarks/tokenizer-corpus.txt --gpt2kit .build/release/gpt2kit
"""
import argparse
import array
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def chunks_of(data, minimum):
    out, start, i = [], 0, 0
    while True:
        i = data.find(b"\n", i)
        if i < 0:
            break
        if i + 1 - start >= minimum:
            out.append(data[start:i + 1].decode("utf-8"))
            start = i + 1
        i += 1
    if start < len(data):
        out.append(data[start:].decode("utf-8"))
    return out


def best_of(repeat, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", default="fixtures/gpt2-tokenizer")
    p.add_argument("--corpus", default="Benchmarks/tokenizer-corpus.txt")
    p.add_argument("--gpt2kit", default=".build/release/gpt2kit")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk-bytes", type=int, default=65536)
    p.add_argument("--skip-tokenizers", action="store_true")
    args = p.parse_args()

    data = open(args.corpus, "rb").read()
    chunks = chunks_of(data, args.chunk_bytes)
    mb = len(data) / 1e6
    rows = []

    # GPT2Kit
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "ids.bin")
        out = subprocess.run([args.gpt2kit, "bench-tokenizer", "--tokenizer", args.tokenizer, "--corpus", args.corpus,
                              "--threads", str(args.threads), "--repeat", str(args.repeat),
                              "--chunk-bytes", str(args.chunk_bytes), "--ids-out", ids_path, "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)
        ours_ids = array.array("i")
        with open(ids_path, "rb") as f:
            ours_ids.frombytes(f.read())
        if sys.byteorder != "little":
            ours_ids.byteswap()
    rows.append(("GPT2Kit", ours["encode_mb_s"], ours["batch_encode_mb_s"], ours["decode_mb_s"]))
    print(f"GPT2Kit: cold first pass {ours['encode_cold_mb_s']:.1f} MB/s, {ours['tokens']} tokens", file=sys.stderr)

    vocab = json.load(open(os.path.join(args.tokenizer, "vocab.json"), encoding="utf-8"))
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}

    # tiktoken
    import tiktoken
    ranks = {bytes(byte_decoder[c] for c in tok): i for tok, i in vocab.items() if tok != "<|endoftext|>"}
    enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": vocab["<|endoftext|>"]}, explicit_n_vocab=len(vocab))
    t_single, tk_ids = best_of(args.repeat, lambda: [enc.encode_ordinary(c) for c in chunks])
    t_batch, tk_batch = best_of(args.repeat, lambda: enc.encode_ordinary_batch(chunks, num_threads=args.threads))
    t_dec, _ = best_of(args.repeat, lambda: [enc.decode(i) for i in tk_ids])
    assert tk_batch == tk_ids
    flat_tk = [i for ids in tk_ids for i in ids]
    rows.append(("tiktoken " + tiktoken.__version__, mb / t_single, mb / t_batch, mb / t_dec))
    agree_tk = flat_tk == list(ours_ids)
    print(f"tiktoken ids == GPT2Kit ids: {agree_tk} ({len(flat_tk)} vs {len(ours_ids)})", file=sys.stderr)

    agree_hf = None
    if not args.skip_tokenizers:
        import tokenizers
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        tok = Tokenizer(models.BPE.from_file(os.path.join(args.tokenizer, "vocab.json"),
                                             os.path.join(args.tokenizer, "merges.txt")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        t_single, hf = best_of(args.repeat, lambda: [tok.encode(c, add_special_tokens=False).ids for c in chunks])
        t_batch, hf_batch = best_of(args.repeat, lambda: [e.ids for e in tok.encode_batch(chunks, add_special_tokens=False)])
        t_dec, _ = best_of(args.repeat, lambda: [tok.decode(i) for i in hf])
        assert hf_batch == hf
        flat_hf = [i for ids in hf for i in ids]
        rows.append(("tokenizers " + tokenizers.__version__, mb / t_single, mb / t_batch, mb / t_dec))
        agree_hf = flat_hf == flat_tk
        print(f"tokenizers ids == tiktoken ids: {agree_hf}", file=sys.stderr)

    print(f"corpus: {args.corpus}, {len(data)} bytes, {len(chunks)} chunks, {len(ours_ids)} tokens")
    print(f"| tokenizer | encode, 1 thread (MB/s) | encode batch, {args.threads} threads (MB/s) | decode, 1 thread (MB/s) |")
    print("|---|---:|---:|---:|")
    for name, single, batch, dec in rows:
        print(f"| {name} | {single:.1f} | {batch:.1f} | {dec:.1f} |")
    if not agree_tk or agree_hf is False:
        print("ids DISAGREE", file=sys.stderr)
        sys.exit(1)
    print("all ids agree")


if __name__ == "__main__":
    main()
