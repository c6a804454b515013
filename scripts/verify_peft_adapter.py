#!/usr/bin/env python3
"""Checks that an adapter written by `gpt2kit finetune --lora-rank …` loads in PEFT and gives gpt2kit's loss.

    python3 scripts/verify_peft_adapter.py BASE_FOLDER ADAPTER_FOLDER GPT2KIT_LOSS CONTEXT_IDS LABEL_IDS
(by hand, where torch 2.13, transformers 4.57.6 and peft 0.21.2 are installed; the test suite never needs it)
"""
import json, sys
import torch
from transformers import GPT2LMHeadModel
from peft import PeftModel

base_dir, adapter_dir, expected = sys.argv[1], sys.argv[2], float(sys.argv[3])
context, label = json.loads(sys.argv[4]), json.loads(sys.argv[5])
model = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base_dir, dtype=torch.float32), adapter_dir).eval()
ids = torch.tensor([context + label])
labels = torch.tensor([[-100] * len(context) + label])
with torch.no_grad():
    loss = model(input_ids=ids, labels=labels).loss.item()
rel = abs(loss - expected) / abs(expected)
print(f"PEFT loss {loss:.7f}, gpt2kit {expected:.7f}, relative difference {rel:.2e}")
sys.exit(0 if rel < 1e-5 else 1)
