#!/usr/bin/env python3
"""By-hand check (not part of the test suite): every gpt2kit export loads in the real libraries and gives
the reference logits. Needs torch, transformers and, for the HDF5 check, tensorflow-cpu + tf-keras.

Usage: python3 scripts/verify_exports.py [path/to/gpt2kit]
"""
import json, os, subprocess, sys, tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import torch
from transformers import GPT2LMHeadModel

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
gpt2kit = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, ".build/debug/gpt2kit")
micro = os.path.join(root, "fixtures/micro-gpt2")
golden = json.load(open(os.path.join(micro, "goldens.json")))
ids = golden["input_ids"]
expected = np.array([p["first8"] for p in golden["logits"]])


def check(name, logits):
    err = float(np.abs(logits[:, :8] - expected).max())
    print(f"{name:48s} max |Δ first8 logits| = {err:.2e}", "ok" if err < 1e-4 else "MISMATCH")
    return err < 1e-4


ok = True
with tempfile.TemporaryDirectory() as out:
    for fmt in ["safetensors", "pytorch", "h5"]:
        folder = os.path.join(out, fmt)
        subprocess.run([gpt2kit, "convert", os.path.join(micro, "pytorch_model_legacy.bin"), "--config",
                        os.path.join(micro, "config.json"), folder, "--format", fmt], check=True, capture_output=True)
        if fmt == "h5":
            try:
                import tensorflow as tf
                from transformers import TFGPT2LMHeadModel
            except ImportError:
                print("tensorflow not installed: skipping the tf_model.h5 check")
                continue
            m = TFGPT2LMHeadModel.from_pretrained(folder)
            ok &= check("TFGPT2LMHeadModel.from_pretrained(h5 folder)", m(tf.constant([ids])).logits.numpy()[0])
        else:
            m = GPT2LMHeadModel.from_pretrained(folder).eval()
            with torch.no_grad():
                ok &= check(f"GPT2LMHeadModel.from_pretrained({fmt} folder)", m(torch.tensor([ids])).logits[0].numpy())
            if fmt == "pytorch":
                sd = torch.load(os.path.join(folder, "pytorch_model.bin"), weights_only=True)
                tied = sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()
                print(f"{'torch.load(weights_only=True): lm_head tied to wte':48s} {tied}")
                ok &= tied
sys.exit(0 if ok else 1)
