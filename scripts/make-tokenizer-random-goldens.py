#!/usr/bin/env python3
"""Make fixtures/tokenizer-random-goldens.jsonl: seeded random strings built to stress the GPT-2
pre-tokenizer (contractions, space/number/letter runs, every White_Space scalar, U+001C–U+001F,
combining marks, CJK, emoji, astral letters and digits, unassigned and private-use scalars),
each with the ids of three references that must agree: transformers' slow GPT2Tokenizer
(Python `regex`), tiktoken (`encode_ordinary`, Rust regex) and `tokenizers` (ByteLevel BPE).

    python3 scripts/make-tokenizer-random-goldens.py fixtures/gpt2-tokenizer fixtures/tokenizer-random-goldens.jsonl
"""
import json
import random
import sys

import tiktoken
import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Tokenizer

PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PIECES = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "''", "'", " '", "  ", "   ", "\t", "\n", "\r\n",
          "\u00a0", "\u0085", "\u1680", "\u2000", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\u000b", "\u000c", "\u001c", "\u001f", "\u200b", "\ufeff", "a", "Z", "é", "ß", "ǅ", "ʰ", "中", "ｱ", "٣", "²",
          "½", "Ⅻ", "𝟙", "𐐀", "𝔸", "😀", "👍🏽", "\u0301", "\u0903", "x\u0301", "1", "42", "3.14", "-", "!", "?!", "$",
          "€", "\ue000", "\U000f0000", "\u0378", "\U0001fffe", "<|endoftext|>", "<|endoftext", "the", "The", " the", "Hello",
          "don't", "I'M", "ﬁ", "ǈ"]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(PIECES))
        elif r < 0.8:
            parts.append(chr(rng.randint(0x20, 0x7e)))
        else:
            while True:
                cp = rng.randint(0, 0x10ffff) if rng.random() < 0.5 else rng.randint(0x80, 0x3000)
                if not 0xd800 <= cp <= 0xdfff:
                    break
            parts.append(chr(cp))
    return "".join(parts)


def main():
    folder, output = sys.argv[1], sys.argv[2]
    slow = GPT2Tokenizer(f"{folder}/vocab.json", f"{folder}/merges.txt")
    vocab = json.load(open(f"{folder}/vocab.json", encoding="utf-8"))
    byte_encoder = slow.byte_encoder
    byte_decoder = {c: b for b, c in byte_encoder.items()}
    ranks = {bytes(byte_decoder[c] for c in t): i for t, i in vocab.items() if t != "<|endoftext|>"}
    enc = tiktoken.Encoding("gpt2-local", pat_str=PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
    fast = Tokenizer(models.BPE.from_file(f"{folder}/vocab.json", f"{folder}/merges.txt"))
    fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    fast.decoder = decoders.ByteLevel()
    rng = random.Random(20261125)
    count = 0
    with open(output, "w", encoding="utf-8") as f:
        for _ in range(400):
            text = random_text(rng)
            ordinary = enc.encode_ordinary(text)
            special = enc.encode(text, allowed_special="all")
            assert slow.encode(text) == special, text
            if "<|endoftext|>" not in text:
                assert fast.encode(text).ids == ordinary, text
            f.write(json.dumps({"text": text, "ids": special, "ordinary_ids": ordinary}) + "\n")
            count += 1
    print(f"wrote {count} cases; tiktoken {tiktoken.__version__}, transformers {transformers.__version__}, "
          f"tokenizers {tokenizers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
