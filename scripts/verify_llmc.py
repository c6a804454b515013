#!/usr/bin/env python3
"""By-hand check (not part of the test suite): GPT2Kit's llm.c checkpoint runs in karpathy/llm.c's CPU trainer.

What it needs
  - a release gpt2kit (`swift build -c release --product gpt2kit`), default .build/release/gpt2kit
  - llm.c's `train_gpt2.c` and `llmc/*.h`, unmodified, in LLMC_DIR (default /work/ext/llmc; outside the
    project, never committed). E.g. from a snapshot of github.com/karpathy/llm.c:
        git --git-dir=<mirror> archive HEAD train_gpt2.c llmc | tar x -C /work/ext/llmc
  - gcc (OpenMP optional), python3 with numpy, torch, transformers

How to run
  python3 scripts/verify_llmc.py [--gpt2kit PATH] [--llmc-dir DIR] [--write-fixtures]

What it does (all in a temp dir; llm.c's source is not edited)
  1. `gpt2kit convert fixtures/tiny-gpt2 gpt2_124M.bin --format llmc` (f32, header version 3: the only
     version train_gpt2.c accepts) -- the checkpoint name main() hard-codes.
  2. writes gpt2_tokenizer.bin (llm.c tokenizer format, version 2, EOT 50256) from fixtures/gpt2-tokenizer,
     so the sampling at steps 20/40 has a valid EOT id (without the file, tokenizer.eot_token is never set).
  3. builds deterministic English text, tokenizes it with `gpt2kit tokenize`, and writes llm.c token files
     (256 int32 header: 20240520, 1, count; then uint16 tokens) to the paths main() looks for first:
     dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin.
  4. compiles train_gpt2.c (gcc -O3 [-fopenmp -DOMP] -lm; -O3 not the Makefile's -Ofast, to keep IEEE
     float semantics) and runs it; parses the first "val loss" (step 0, before any update, mean over
     5 sequential val batches) and "step 0: train loss" (forward on the first shuffled train batch,
     computed before the first update).
  5. compiles a small harness that #defines TESTING and #includes train_gpt2.c (as llm.c's own test_gpt2.c
     does) to (a) draw the first train batch with llm.c's own DataLoader (dataloader_init(..., B=4, T=64,
     rank 0, 1 process, shuffle=1) then dataloader_next_batch: shuffled with llm.c's mt19937, seed 42)
     and print its inputs/targets, and (b) print gpt2_forward's mean_loss on it with 9 significant digits.
  6. computes the same loss with transformers (GPT2LMHeadModel.from_pretrained("fixtures/tiny-gpt2"),
     mean cross-entropy over all B*T targets) and the val loss the same way.
  7. `gpt2kit convert gpt2_124M.bin back/` (llm.c -> HF folder) and checks transformers' logits of back/
     equal tiny-gpt2's on the batch. Also round-trips the bf16 (version 5) checkpoint for information.

What it writes (only with --write-fixtures): fixtures/llmc/batch.json (B, T, inputs, targets as [B][T]
lists, val_tokens, the losses) and prints the numbers recorded in fixtures/llmc/README.md.
"""
import argparse, json, os, re, shutil, struct, subprocess, sys, tempfile

import numpy as np
import torch
from transformers import GPT2LMHeadModel

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--gpt2kit", default=os.path.join(root, ".build/release/gpt2kit"))
ap.add_argument("--llmc-dir", default=os.environ.get("LLMC_DIR", "/work/ext/llmc"))
ap.add_argument("--write-fixtures", action="store_true")
args = ap.parse_args()

B, T = 4, 64
tiny = os.path.join(root, "fixtures/tiny-gpt2")
tok_dir = os.path.join(root, "fixtures/gpt2-tokenizer")


def run(cmd, **kw):
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def deterministic_text():
    # Plain English, fixed; about 2.6k GPT-2 tokens (needs > 5*B*T+1 = 1281 for the val file).
    animals = ["fox", "dog", "cat", "owl", "horse", "rabbit", "badger", "heron"]
    colours = ["brown", "grey", "white", "black", "red", "golden", "silver", "green"]
    places = ["the river", "the old mill", "the village", "the forest", "the harbour", "the hill"]
    lines = []
    for i in range(200):
        a, c, p = animals[i % 8], colours[(i * 3) % 8], places[(i * 5) % 6]
        lines.append(f"On day {i + 1}, the {c} {a} walked to {p} and counted {(i * 7) % 23 + 2} stones.")
        if i % 4 == 3:
            lines.append("")
    return "\n".join(lines) + "\n"


def tokenize(text, tmp):
    path = os.path.join(tmp, "corpus.txt")
    with open(path, "w") as f:
        f.write(text)
    return json.loads(run(TOKENIZE_CMD(path)).stdout)


def TOKENIZE_CMD(path):
    return [args.gpt2kit, "tokenize", "--tokenizer", tok_dir, "--file", path, "--json"]


def write_tokens(path, ids):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, len(ids)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(ids, dtype=np.uint16).tobytes())


def write_llmc_tokenizer(path):
    # GPT-2 byte-level BPE: vocab.json strings map back to bytes through the bytes_to_unicode table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    dec = {chr(c): b for b, c in zip(bs, cs)}
    vocab = json.load(open(os.path.join(tok_dir, "vocab.json"), encoding="utf-8"))
    table = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in table] == list(range(50257))
    header = np.zeros(256, dtype=np.uint32)
    header[:4] = [20240328, 2, 50257, 50256]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for s, _ in table:
            bts = bytes(dec[ch] for ch in s)
            assert 0 < len(bts) < 256
            f.write(bytes([len(bts)]) + bts)


HARNESS = r"""
#define TESTING
#include "train_gpt2.c"
int main(int argc, char** argv) {
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);
    int B = 4, T = 64;
    DataLoader loader;
    dataloader_init(&loader, argv[2], B, T, 0, 1, 1);   /* exactly as train_gpt2.c's train_loader */
    dataloader_next_batch(&loader);
    gpt2_forward(&model, loader.inputs, loader.targets, B, T);
    printf("{\"inputs\": [");
    for (int i = 0; i < B*T; i++) printf(i ? ",%d" : "%d", loader.inputs[i]);
    printf("], \"targets\": [");
    for (int i = 0; i < B*T; i++) printf(i ? ",%d" : "%d", loader.targets[i]);
    printf("], \"mean_loss\": %.9g}\n", model.mean_loss);
    dataloader_free(&loader);
    gpt2_free(&model);
    return 0;
}
"""


def compile_c(src_dir, out, source):
    base = ["gcc", "-O3", "-Wno-unused-result", "-I", src_dir]
    try:
        run(base + ["-fopenmp", "-DOMP", source, "-lm", "-o", out])
        return "gcc -O3 -fopenmp -DOMP"
    except subprocess.CalledProcessError:
        run(base + [source, "-lm", "-o", out])
        return "gcc -O3 (no OpenMP)"


def hf_loss(model, inputs, targets):
    with torch.no_grad():
        logits = model(torch.tensor(inputs)).logits.double()
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   torch.tensor(targets).reshape(-1)))


def main():
    llmc = os.path.abspath(args.llmc_dir)
    assert os.path.exists(os.path.join(llmc, "train_gpt2.c")), f"no train_gpt2.c in {llmc}"
    model = GPT2LMHeadModel.from_pretrained(tiny).eval()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "gpt2_124M.bin")
        run([args.gpt2kit, "convert", tiny, ckpt, "--format", "llmc"])
        hdr = np.fromfile(ckpt, dtype=np.int32, count=8)
        print("checkpoint header:", hdr.tolist())
        write_llmc_tokenizer(os.path.join(tmp, "gpt2_tokenizer.bin"))
        ids = tokenize(deterministic_text(), tmp)
        print(f"corpus: {len(ids)} tokens")
        assert len(ids) > 2 * (5 * B * T + 1), "text too short"
        val_ids, train_ids = ids[:5 * B * T + 1], ids[5 * B * T + 1:]
        train_bin = os.path.join(tmp, "dev/data/tinyshakespeare/tiny_shakespeare_train.bin")
        write_tokens(train_bin, train_ids)
        write_tokens(os.path.join(tmp, "dev/data/tinyshakespeare/tiny_shakespeare_val.bin"), val_ids)

        # llm.c itself, unmodified
        src = os.path.join(tmp, "llmc-src")
        shutil.copytree(llmc, src)
        flags = compile_c(src, os.path.join(tmp, "train_gpt2"), os.path.join(src, "train_gpt2.c"))
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
        out = run([os.path.join(tmp, "train_gpt2")], cwd=tmp, env=env).stdout
        with open(os.path.join(tmp, "train_gpt2.log"), "w") as f:
            f.write(out)
        print("\n".join(out.splitlines()[:20]))
        val_loss = float(re.search(r"^val loss ([-\d.naif]+)", out, re.M).group(1))
        step0 = float(re.search(r"^step 0: train loss ([-\d.naif]+)", out, re.M).group(1))
        later = re.findall(r"^step (\d+): train loss ([-\d.naif]+)", out, re.M)
        print(f"llm.c train_gpt2: val loss (step 0) {val_loss:.6f}, step 0 train loss {step0:.6f},"
              f" step {later[-1][0]} train loss {later[-1][1]}")

        # harness: the exact first batch and the full-precision loss, from llm.c's own code
        with open(os.path.join(src, "harness.c"), "w") as f:
            f.write(HARNESS)
        compile_c(src, os.path.join(tmp, "harness"), os.path.join(src, "harness.c"))
        h = json.loads(run([os.path.join(tmp, "harness"), ckpt, train_bin], cwd=tmp, env=env).stdout.splitlines()[-1])
        inputs = np.array(h["inputs"]).reshape(B, T)
        targets = np.array(h["targets"]).reshape(B, T)
        # where in train_ids does each row start? (documents llm.c's shuffle)
        starts = []
        for b in range(B):
            row = inputs[b].tolist()
            starts.append(next(i for i in range(len(train_ids)) if train_ids[i:i + T] == row))
        print(f"first batch rows start at train token offsets {starts} (sample index {starts[0] // (B * T)})")
        assert abs(h["mean_loss"] - step0) < 1e-5, (h["mean_loss"], step0)

        hf = hf_loss(model, inputs, targets)
        val_in = np.array(val_ids[:-1]).reshape(5, B, T)
        val_tg = np.array(val_ids[1:]).reshape(5, B, T)
        hf_val = float(np.mean([hf_loss(model, val_in[i], val_tg[i]) for i in range(5)]))
        rel = abs(h["mean_loss"] - hf) / hf
        print(f"step-0 loss: llm.c {h['mean_loss']:.9g}  transformers {hf:.9g}  rel diff {rel:.2e}")
        print(f"val loss:    llm.c {val_loss:.6f}  transformers {hf_val:.9g}  rel diff {abs(val_loss - hf_val) / hf_val:.2e}")
        ok &= rel < 1e-4

        # llm.c -> HF folder round trip
        back = os.path.join(tmp, "back")
        run([args.gpt2kit, "convert", ckpt, back])
        m2 = GPT2LMHeadModel.from_pretrained(back).eval()
        with torch.no_grad():
            a = model(torch.tensor(inputs)).logits
            b2 = m2(torch.tensor(inputs)).logits
        d_back = float((a - b2).abs().max())
        print(f"convert gpt2_124M.bin back/: max |logits(back) - logits(tiny-gpt2)| = {d_back:.3e}")
        ok &= d_back < 1e-5

        # bf16 (version 5) round trip, for information (train_gpt2.c only reads version 3)
        bf = os.path.join(tmp, "bf16.bin")
        run([args.gpt2kit, "convert", tiny, bf, "--format", "llmc", "--dtype", "bf16"])
        print("bf16 checkpoint header:", np.fromfile(bf, dtype=np.int32, count=8).tolist())
        back16 = os.path.join(tmp, "back16")
        run([args.gpt2kit, "convert", bf, back16])
        with torch.no_grad():
            b3 = GPT2LMHeadModel.from_pretrained(back16).eval()(torch.tensor(inputs)).logits
        d16 = float((a - b3).abs().max())
        print(f"bf16 round trip: max |Δ logits| = {d16:.3e}; loss {hf_loss(GPT2LMHeadModel.from_pretrained(back16).eval(), inputs, targets):.6f}")

        if args.write_fixtures:
            outdir = os.path.join(root, "fixtures/llmc")
            os.makedirs(outdir, exist_ok=True)
            doc = {
                "B": B, "T": T,
                "inputs": inputs.tolist(), "targets": targets.tolist(),
                "train_row_offsets": starts,
                "llmc_step0_train_loss": h["mean_loss"],
                "llmc_step0_train_loss_printed": step0,
                "llmc_step0_val_loss_printed": val_loss,
                "val_tokens": val_ids,
                "transformers_loss": hf,
                "transformers_val_loss": hf_val,
            }
            with open(os.path.join(outdir, "batch.json"), "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
            print("wrote", os.path.join(outdir, "batch.json"))
        print("compiled with:", flags)
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


main()
