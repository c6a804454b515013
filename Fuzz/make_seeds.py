#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (Fuzz/seeds/<harness>/) from the repository's fixtures/.

Deterministic, standard library only. HDF5 seeds are written by the hdf5 harness itself
(GPT2KIT_FUZZ_WRITE_SEEDS=<dir> .build-fuzz/bin/fuzz-hdf5), since no HDF5 library is assumed here;
scripts/fuzz.sh does that when Fuzz/seeds/hdf5/ is empty.
"""
import json
import os
import struct
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures")
OUT = os.path.join(ROOT, "Fuzz", "seeds")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(*parts):
    with open(os.path.join(FIX, *parts), "rb") as f:
        return f.read()


# safetensors: the smallest tensors of each fixture with fresh contiguous offsets; the whole micro header
# with every tensor shrunk to two elements; one tensor of each integer/bool dtype.
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(entries, metadata):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


for fixture in ["model.safetensors", "model.fp16.safetensors", "model.bf16.safetensors"]:
    b = read("micro-gpt2", fixture)
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])[:3]
    entries = [(k, v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0] : 8 + n + v["data_offsets"][1]]) for k, v in items]
    put("safetensors", fixture.replace(".safetensors", "-small.safetensors"), safetensors(entries, meta))
    if fixture == "model.safetensors":
        shrunk = [(k, v["dtype"], [2], bytes(range(2 * SIZES[v["dtype"]]))) for k, v in header.items()]
        put("safetensors", "model-all-names.safetensors", safetensors(shrunk, meta))
put("safetensors", "dtypes.safetensors", safetensors(
    [(f"t.{d.lower()}", d, [2, 1], bytes(range(2 * s))) for d, s in SIZES.items()] + [("scalar", "F32", [], b"\0\0\x80?")],
    {"format": "pt", "note": "fuzz"}))
put("safetensors", "empty.safetensors", safetensors([], None))

# zip and torch: the torch fixtures (zip archives and one legacy stream); torch also gets the raw data.pkl pickles.
for name in sorted(os.listdir(os.path.join(FIX, "torch"))):
    b = read("torch", name)
    if b.startswith(b"PK\x03\x04"):
        put("zip", name, b)
        with zipfile.ZipFile(os.path.join(FIX, "torch", name)) as z:
            for info in z.infolist():
                if info.filename.endswith("/data.pkl"):
                    put("torch", name.replace(".pt", ".pkl"), z.read(info))
    put("torch", name, b)

# config: config.json and generation_config.json of both fixtures, plus edge values.
for model in ["micro-gpt2", "tiny-gpt2"]:
    put("config", f"{model}-config.json", read(model, "config.json"))
    put("config", f"{model}-generation_config.json", read(model, "generation_config.json"))
put("config", "generation-list.json", json.dumps({"eos_token_id": [1, 2], "do_sample": True, "temperature": 0.7,
                                                  "top_k": 50, "top_p": 0.9, "max_new_tokens": 20, "pad_token_id": None}))
put("config", "inner-ctx.json", json.dumps({"n_ctx": 16, "n_inner": 32, "n_embd": 8, "n_head": 2, "n_layer": 1,
                                            "vocab_size": 300, "activation_function": "gelu", "extra": {"a": [1, 2.5e3]}}))

# tokenizer: a small byte-level BPE cut from the GPT-2 files (the 256 byte tokens, the first merges, <|endoftext|>).
vocab = json.loads(read("gpt2-tokenizer", "vocab.json"))
merges = read("gpt2-tokenizer", "merges.txt").decode().split("\n")
K = 40
small_merges = [m for m in merges[1 : 1 + K] if m]
small_vocab = {t: i for t, i in vocab.items() if i < 256 + len(small_merges)}
small_vocab["<|endoftext|>"] = len(small_vocab)
vocab_text = json.dumps(small_vocab, ensure_ascii=False)
merges_text = "#version: 0.2\n" + "\n".join(small_merges) + "\n"
put("tokenizer", "vocab-merges", b"\x01" + vocab_text.encode() + b"\0" + merges_text.encode())
tok = {"version": "1.0", "added_tokens": [{"id": small_vocab["<|endoftext|>"], "content": "<|endoftext|>", "special": True}],
       "model": {"type": "BPE", "vocab": small_vocab, "merges": small_merges}}
put("tokenizer", "tokenizer-strings.json", b"\x00" + json.dumps(tok, ensure_ascii=False).encode())
tok["model"]["merges"] = [m.split(" ") for m in small_merges]
tok["added_tokens"].append({"id": len(small_vocab), "content": "<pad>", "special": True})
put("tokenizer", "tokenizer-pairs.json", b"\x00" + json.dumps(tok, ensure_ascii=False).encode())

# jsonl: each record form, blank lines, CRLF, unicode.
put("jsonl", "pairs.jsonl", '{"context": "The capital of France is", "label": " Paris."}\n\n'
                           '{"prompt": "2 + 2 =", "completion": " 4"}\r\n')
put("jsonl", "text.jsonl", '{"text": "Hello world"}\n{"text": "naïve café \\u00e9 \\ud83e\\udd16"}\n   \n')
put("jsonl", "long.jsonl", json.dumps({"context": "a" * 40, "label": "b" * 40}) + "\n" + json.dumps({"text": "x" * 30}) + "\n")
lines = read("tokenizer-goldens.jsonl").decode().split("\n")[:6]
put("jsonl", "goldens.jsonl", "\n".join(json.dumps({"text": json.loads(l)["text"]}) for l in lines if l) + "\n")
