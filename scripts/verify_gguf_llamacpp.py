#!/usr/bin/env python3
"""By-hand check (not part of the test suite): GPT2Kit's GGUF files load and run in llama.cpp, and goldens
for a Python-free Swift test.

What it needs
  - a release gpt2kit (`swift build -c release --product gpt2kit`), default .build/release/gpt2kit
  - llama-cpp-python (the Python binding, which builds llama.cpp's own libllama/ggml from its vendored
    tree). If `import llama_cpp` fails and --build is given, it is built from the PyPI sdist
    (LLAMA_CPP_SDIST, default /work/ext/llama_cpp_python-0.3.36.tar.gz) with:
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
                    -DLLAMA_BUILD_SERVER=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
        pip install --no-build-isolation $LLAMA_CPP_SDIST
    (needs scikit-build-core, cmake, a C++ compiler; pip pulls diskcache from PyPI). Nothing built is
    committed.
  - numpy, torch, transformers, safetensors

How to run
  python3 scripts/verify_gguf_llamacpp.py [--gpt2kit PATH] [--build] [--write-fixtures]

What it does
  1. `gpt2kit convert fixtures/tiny-gpt2 tmp/tiny-<dtype>.gguf --tokenizer fixtures/gpt2-tokenizer --dtype
     <dtype>` for dtype in f32, f16, q8_0 (temp dir).
  2. loads each in llama.cpp (CPU, n_ctx 64, n_batch 64, logits_all=True), evaluates the ids of
     "Harry Potter is a series of" ([18308, 14179, 318, 257, 2168, 286]) in one batch and keeps the
     logits of all 6 positions; prints max |llama.cpp - transformers| (transformers runs
     GPT2LMHeadModel.from_pretrained("fixtures/tiny-gpt2"), float32).
  3. also runs `gpt2kit eval --model tiny-<dtype>.gguf --context "Harry" --label " Potter is a series of"`
     and compares its loss with the loss computed from llama.cpp's logits (same file, same tokens).
  4. tokenizes, with llama.cpp's tokenizer built from the vocab/merges embedded in the f32 GGUF (vocab_only),
     every `text` of fixtures/tokenizer-goldens.jsonl plus a few strings containing <|endoftext|>, with no
     BOS added, both with special tokens not parsed (`ids`; compared with the jsonl's `ordinary_ids`) and
     parsed (`ids_parse_special`; compared with the jsonl's `ids`). For the extra strings it compares with
     `gpt2kit tokenize` (default and --ordinary).

What it writes (only with --write-fixtures)
  fixtures/gguf-llamacpp/logits.safetensors   tensors f32, f16, q8_0: F32 [6, 50257] llama.cpp logits
  fixtures/gguf-llamacpp/tokenization.json    [{"text", "ids", "ids_parse_special"}]
  (fixtures/gguf-llamacpp/README.md is written by hand from this script's output.)
"""
import argparse, importlib, json, os, subprocess, sys, tempfile

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--gpt2kit", default=os.path.join(root, ".build/release/gpt2kit"))
ap.add_argument("--build", action="store_true", help="pip-install llama-cpp-python from the sdist if missing")
ap.add_argument("--write-fixtures", action="store_true")
args = ap.parse_args()

PROMPT = [18308, 14179, 318, 257, 2168, 286]
DTYPES = ["f32", "f16", "q8_0"]
tiny = os.path.join(root, "fixtures/tiny-gpt2")
tok_dir = os.path.join(root, "fixtures/gpt2-tokenizer")
EXTRA = [
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "<|endoftext|> The end.",
    "first document.<|endoftext|>\nsecond document",
    "<|endoftext|><|endoftext|>",
    "a <|endoftext|>b",
    "<|endoftext",
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


try:
    import llama_cpp
except ImportError:
    if not args.build:
        sys.exit("llama_cpp not importable: pass --build (see the top of this script)")
    sdist = os.environ.get("LLAMA_CPP_SDIST", "/work/ext/llama_cpp_python-0.3.36.tar.gz")
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2",
               CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", sdist], check=True, env=env)
    llama_cpp = importlib.import_module("llama_cpp")
from llama_cpp import Llama

import torch
from transformers import GPT2LMHeadModel


def llama_logits(path, exact=True):
    # exact: F32 KV cache and no flash attention (llama.cpp's defaults are an F16 KV cache and flash attention
    # "auto", which round K/V to fp16: ~1e-3 on these logits).
    kw = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False) if exact else {}
    llm = Llama(model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True, n_threads=2,
                n_gpu_layers=0, verbose=False, **kw)
    assert llm.n_vocab() == 50257, llm.n_vocab()  # (llama.cpp may round the KV size up: n_ctx() can be > 64)
    llm.eval(PROMPT)
    out = np.array(llm.scores[: len(PROMPT), :], dtype=np.float32, copy=True)
    llm.close()
    return out


def ggml_gelu_fp16(x):
    # ggml's CPU GELU (ggml-cpu/vec.h: `#define GGML_GELU_FP16`): the input is rounded to fp16 and looked up in a
    # table of fp16(gelu_tanh(x)); x <= -10 -> 0, x >= 10 -> x.
    xh = x.half().float()
    y = (0.5 * xh * (1.0 + torch.tanh(0.7978845608028654 * xh * (1.0 + 0.044715 * xh * xh)))).half().float()
    return torch.where(x <= -10.0, torch.zeros_like(x), torch.where(x >= 10.0, x, y))


class GgmlGelu(torch.nn.Module):
    def forward(self, x):
        return ggml_gelu_fp16(x)


def hf_logits(folder, gelu_fp16=False):
    m = GPT2LMHeadModel.from_pretrained(folder).eval()
    if gelu_fp16:
        for blk in m.transformer.h:
            blk.mlp.act = GgmlGelu()
    with torch.no_grad():
        return m(torch.tensor([PROMPT])).logits[0].numpy()


def log_softmax_loss(logits, ids, first_label):
    # mean CE of ids[first_label:] predicted from the preceding position
    x = logits.astype(np.float64)
    lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
    return float(np.mean([lse[t - 1] - x[t - 1, ids[t]] for t in range(first_label, len(ids))]))


def main():
    print(f"llama-cpp-python {llama_cpp.__version__}")
    model = GPT2LMHeadModel.from_pretrained(tiny).eval()
    with torch.no_grad():
        ref = model(torch.tensor([PROMPT])).logits[0].numpy()
    ref_loss = log_softmax_loss(ref, PROMPT, 1)
    ok = True
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for dt in DTYPES:
            path = os.path.join(tmp, f"tiny-{dt}.gguf")
            run([args.gpt2kit, "convert", tiny, path, "--tokenizer", tok_dir, "--dtype", dt])
            files[dt] = path
            try:
                lg = llama_logits(path)
            except Exception as e:  # re-run verbosely so llama.cpp's loader log shows why
                print(f"{dt}: llama.cpp refused the file: {e!r}; loader log follows")
                try:
                    Llama(model_path=path, n_ctx=64, logits_all=True, verbose=True)
                except Exception:
                    pass
                ok = False
                continue
            results[dt] = lg
            d = float(np.abs(lg - ref).max())
            # the same weights as GPT2Kit reads them back from this GGUF (dequantized), through transformers,
            # with torch's GELU and with ggml's fp16-table GELU
            deq = os.path.join(tmp, f"deq-{dt}")
            run([args.gpt2kit, "convert", path, deq])
            deq_logits = hf_logits(deq)
            d_deq = float(np.abs(lg - deq_logits).max())
            deq_loss = log_softmax_loss(deq_logits, PROMPT, 1)
            d_deq16 = float(np.abs(lg - hf_logits(deq, gelu_fp16=True)).max())
            d_ref16 = float(np.abs(lg - hf_logits(tiny, gelu_fp16=True)).max())
            d_default = float(np.abs(llama_logits(path, exact=False) - ref).max())
            top_same = bool((lg.argmax(-1) == ref.argmax(-1)).all())
            ll = log_softmax_loss(lg, PROMPT, 1)
            ev = json.loads(run([args.gpt2kit, "eval", "--model", path, "--context", "Harry",
                                 "--label", " Potter is a series of", "--json"]).stdout)
            rows.append((dt, d, top_same, ll, ev["loss"], d_deq, d_deq16, d_ref16, d_default))
            print(f"{dt:5s} ({os.path.getsize(path):>9,d} B)  max |llama.cpp - transformers| = {d:.3e}  "
                  f"argmax equal: {top_same}  loss: llama.cpp {ll:.6f} gpt2kit-eval(.gguf) {ev['loss']:.6f} "
                  f"transformers {ref_loss:.6f}")
            print(f"      vs transformers on GPT2Kit's read-back weights (gpt2kit convert X.gguf folder/): {d_deq:.3e} (their loss {deq_loss:.6f}); "
                  f"same with ggml's fp16-table GELU: {d_deq16:.3e}  (tiny-gpt2 f32 weights + fp16 GELU: {d_ref16:.3e})")
            print(f"      llama.cpp with its default context (F16 KV cache, flash attention auto) vs transformers: {d_default:.3e}")
        print(f"(logit scale: max |transformers logit| = {float(np.abs(ref).max()):.3f})")

        # tokenizer from the embedded vocab
        tok = Llama(model_path=files["f32"], vocab_only=True, verbose=False)
        goldens = [json.loads(l) for l in open(os.path.join(root, "fixtures/tokenizer-goldens.jsonl"))]
        entries, n_ord, n_spec, bad = [], 0, 0, []
        for g in goldens:
            b = g["text"].encode("utf-8")
            ids = tok.tokenize(b, add_bos=False, special=False) if b else []
            ids_s = tok.tokenize(b, add_bos=False, special=True) if b else []
            entries.append({"text": g["text"], "ids": ids, "ids_parse_special": ids_s})
            n_ord += ids == g["ordinary_ids"]
            n_spec += ids_s == g["ids"]
            if ids != g["ordinary_ids"] or ids_s != g["ids"]:
                bad.append((g["text"], ids, g["ordinary_ids"], ids_s, g["ids"]))
        print(f"tokenizer-goldens.jsonl: {len(goldens)} texts; llama.cpp (special not parsed) == ordinary_ids: "
              f"{n_ord}/{len(goldens)}; llama.cpp (special parsed) == ids: {n_spec}/{len(goldens)}")
        for t in bad[:10]:
            print("  differs:", json.dumps(t)[:400])
        # extra strings vs gpt2kit tokenize
        src = os.path.join(tmp, "extra.jsonl")
        with open(src, "w") as f:
            for t in EXTRA:
                f.write(json.dumps({"text": t}) + "\n")
        kit = [json.loads(l)["ids"] for l in run([args.gpt2kit, "tokenize", "--tokenizer", tok_dir, "--jsonl",
                                                   "--file", src]).stdout.splitlines()]
        kit_o = [json.loads(l)["ids"] for l in run([args.gpt2kit, "tokenize", "--tokenizer", tok_dir, "--jsonl",
                                                     "--ordinary", "--file", src]).stdout.splitlines()]
        n_x = 0
        for t, k, ko in zip(EXTRA, kit, kit_o):
            ids = tok.tokenize(t.encode(), add_bos=False, special=False)
            ids_s = tok.tokenize(t.encode(), add_bos=False, special=True)
            entries.append({"text": t, "ids": ids, "ids_parse_special": ids_s})
            same = ids == ko and ids_s == k
            n_x += same
            print(f"  {t!r:52s} llama.cpp {ids} / special {ids_s}  gpt2kit {'same' if same else f'DIFFERS {ko} / {k}'}")
        print(f"<|endoftext|> strings: {n_x}/{len(EXTRA)} agree with gpt2kit tokenize (--ordinary / default)")
        tok.close()
        ok &= n_ord == len(goldens) and n_spec == len(goldens) and n_x == len(EXTRA)
        ok &= len(results) == len(DTYPES)

    if args.write_fixtures and len(results) == len(DTYPES):
        from safetensors.numpy import save_file
        outdir = os.path.join(root, "fixtures/gguf-llamacpp")
        os.makedirs(outdir, exist_ok=True)
        save_file({dt: np.ascontiguousarray(results[dt]) for dt in DTYPES}, os.path.join(outdir, "logits.safetensors"),
                  metadata={"prompt_ids": json.dumps(PROMPT), "llama_cpp_python": llama_cpp.__version__})
        os.chmod(os.path.join(outdir, "logits.safetensors"), 0o644)
        with open(os.path.join(outdir, "tokenization.json"), "w") as f:  # one entry a line
            f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in entries) + "\n]\n")
        print("wrote", outdir)
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


main()
