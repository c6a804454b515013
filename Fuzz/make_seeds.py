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

# gguf: a one-layer GPT-2 (n_embd 32, 8 positions) over the small vocabulary above, F32 and Q8_0 weights,
# written the way GPT2Kit's GGUFModel writes (metadata, tensor infos, data aligned to 32).
def gguf(weight_type):
    import random
    rnd = random.Random(7)
    tokens = sorted(small_vocab, key=small_vocab.get)
    V, C, T, F = len(tokens), 32, 8, 128
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [("general.architecture", 8, s("gpt2")), ("gpt2.context_length", 4, struct.pack("<I", T)),
          ("gpt2.embedding_length", 4, struct.pack("<I", C)), ("gpt2.feed_forward_length", 4, struct.pack("<I", F)),
          ("gpt2.block_count", 4, struct.pack("<I", 1)), ("gpt2.attention.head_count", 4, struct.pack("<I", 4)),
          ("gpt2.attention.layer_norm_epsilon", 6, struct.pack("<f", 1e-5)), ("general.file_type", 4, struct.pack("<I", 0)),
          ("tokenizer.ggml.model", 8, s("gpt2")), ("tokenizer.ggml.pre", 8, s("gpt-2")),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, V) + b"".join(s(t) for t in tokens)),
          ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, V) + b"".join(struct.pack("<i", 3 if t == "<|endoftext|>" else 1) for t in tokens)),
          ("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, len(small_merges)) + b"".join(s(m) for m in small_merges)),
          ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", V - 1)), ("general.alignment", 4, struct.pack("<I", 32))]
    tensors = [("token_embd.weight", [C, V], True), ("position_embd.weight", [C, T], False)]
    for name, ne, mat in [("attn_norm.weight", [C], False), ("attn_norm.bias", [C], False), ("attn_qkv.weight", [C, 3 * C], True),
                          ("attn_qkv.bias", [3 * C], False), ("attn_output.weight", [C, C], True), ("attn_output.bias", [C], False),
                          ("ffn_norm.weight", [C], False), ("ffn_norm.bias", [C], False), ("ffn_up.weight", [C, F], True),
                          ("ffn_up.bias", [F], False), ("ffn_down.weight", [F, C], True), ("ffn_down.bias", [C], False)]:
        tensors.append(("blk.0." + name, ne, mat))
    tensors += [("output_norm.weight", [C], False), ("output_norm.bias", [C], False)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, t, payload in kv:
        head += s(key) + struct.pack("<I", t) + payload
    datas, offset = [], 0
    for name, ne, mat in tensors:
        n = 1
        for d in ne:
            n *= d
        q8 = weight_type == "q8_0" and mat
        if q8:
            data = b""
            for _ in range(n // 32):
                data += struct.pack("<e", 0.01) + bytes(rnd.randrange(256) for _ in range(32))
        else:
            data = struct.pack("<%df" % n, *[rnd.uniform(-0.1, 0.1) for _ in range(n)])
        head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", 8 if q8 else 0, offset)
        data += b"\0" * ((32 - len(data) % 32) % 32)
        datas.append(data)
        offset += len(data)
    head += b"\0" * ((32 - len(head) % 32) % 32)
    return head + b"".join(datas)


put("gguf", "gpt2-q8_0.gguf", gguf("q8_0"))

# llmc: a tiny llm.c checkpoint (V 16, padded 128, 8 positions, 1 layer, 2 heads, 8 channels), fp32 and bf16.
def llmc(version):
    V, Vp, T, L, NH, C = 16, 128, 8, 1, 2, 8
    header = [20240326, version, T, V, L, NH, C, Vp] + [0] * 248
    n = Vp * C + T * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C
    if version == 3:
        body = struct.pack("<%df" % n, *[((i * 37) % 101 - 50) / 500 for i in range(n)])
    else:
        body = b"".join(struct.pack("<H", 0x3C00 + (i % 64)) for i in range(n))
    return struct.pack("<256i", *header) + body


put("llmc", "tiny-f32.bin", llmc(3))
put("llmc", "tiny-bf16.bin", llmc(5))

# shards: llm.c token shards (header 256 int32: magic 20240520, version 1, count; then uint16 ids), one with an
# id past GPT-2's vocabulary.
def shard(ids):
    return struct.pack("<256i", *([20240520, 1, len(ids)] + [0] * 253)) + struct.pack("<%dH" % len(ids), *ids)


put("shards", "eot-docs.bin", shard([50256, 18308, 14179, 318, 257, 2168, 286, 50256, 26548, 8842, 16122, 13]))
put("shards", "out-of-vocab.bin", shard([50256, 1, 2, 50257, 3, 65535, 4, 5]))

# adapter: the committed PEFT configs and variants (a regex target, rsLoRA, layer-specific names).
for name in ["all-modules", "rslora-attn"]:
    put("adapter", name + ".json", read("peft-tiny", name, "adapter_config.json"))
put("adapter", "regex.json", json.dumps({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
                                         "target_modules": ".*h\\.1\\..*c_(attn|fc)", "bias": "none"}))
put("adapter", "named.json", json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["h.0.attn.c_proj", "mlp.c_proj"],
                                         "use_rslora": True, "lora_dropout": 0.1, "rank_pattern": {}, "modules_to_save": None}))
