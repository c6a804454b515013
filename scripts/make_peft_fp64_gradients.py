#!/usr/bin/env python3
"""Makes fixtures/peft-tiny/*/gradients_fp64.json: PEFT's loss and adapter gradients in float64.

The float32 goldens (`make_peft_goldens.py`) carry torch's own float32 rounding: for the rslora-attn adapter its
gradients differ from the same computation in float64 by up to ~1e-6, as much as the tests' atol, so a float32
result that is equally close to the exact answer can miss them. The tests compare gradients with these instead.

Run once where torch 2.13, transformers 4.57.6 and peft 0.21.2 are installed, after make_peft_goldens.py:
    python3 scripts/make_peft_fp64_gradients.py
"""
import json, os
import torch
from transformers import GPT2LMHeadModel
from peft import PeftModel

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(os.path.join(root, "fixtures"))
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
example = json.load(open("tiny-gpt2/goldens.json"))["examples"][0]
input_ids = torch.tensor([example["input_ids"]])
labels = torch.tensor([example["labels"]])

for name in ("all-modules", "rslora-attn"):
    folder = os.path.join("peft-tiny", name)
    base = GPT2LMHeadModel.from_pretrained("tiny-gpt2", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, folder, is_trainable=True).to(torch.float64)
    model.train()  # dropout is 0 in both adapters' configs and in the base
    # The loss by hand: transformers' loss casts the logits to float32 first.
    logits = model(input_ids=input_ids).logits[:, :-1, :]
    assert logits.dtype == torch.float64
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    result = {"loss": loss.item(), "grads": {}}
    for n, p in model.named_parameters():
        if p.requires_grad:
            result["grads"][n.replace(".default", "")] = p.grad.flatten().tolist()
    with open(os.path.join(folder, "gradients_fp64.json"), "w") as f:
        json.dump(result, f, indent=1)
    float32 = json.load(open(os.path.join(folder, "goldens.json")))["grads"]
    gap = max(abs(a - b) for k, v in result["grads"].items() for a, b in zip(v, float32[k]))
    print(name, "loss", result["loss"], "float32 goldens' largest gradient gap to float64: %.3e" % gap)
print("versions: torch", torch.__version__, "peft", __import__("peft").__version__, "transformers", __import__("transformers").__version__)
