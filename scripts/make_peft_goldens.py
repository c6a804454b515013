#!/usr/bin/env python3
"""Makes fixtures/peft-tiny/: PEFT LoRA adapters on fixtures/tiny-gpt2 and their goldens.

Run once where torch 2.13, transformers 4.57.6 and peft 0.21.2 are installed:
    python3 scripts/make_peft_goldens.py
The project's tests read the committed outputs; they never need Python.
"""
import json, os, sys
import torch
from transformers import GPT2LMHeadModel
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(os.path.join(root, "fixtures"))
base_dir = "tiny-gpt2"  # relative, so adapter_config.json's base_model_name_or_path is "tiny-gpt2"
out_dir = "peft-tiny"
os.makedirs(out_dir, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
golden = json.load(open(os.path.join(base_dir, "goldens.json")))
example = golden["examples"][0]
input_ids = torch.tensor([example["input_ids"]])
labels = torch.tensor([example["labels"]])


def make(name, config, seed, lr):
    torch.manual_seed(seed)
    base = GPT2LMHeadModel.from_pretrained(base_dir, torch_dtype=torch.float32)
    model = get_peft_model(base, config)
    # B = 0 after PEFT's init would make the adapter a no-op: give A and B seeded random values.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder)  # adapter_model.safetensors + adapter_config.json (+ a model card, removed)
    if os.path.exists(os.path.join(folder, "README.md")):
        os.remove(os.path.join(folder, "README.md"))
    model.train()  # dropout is 0 in the configs below
    out = model(input_ids=input_ids, labels=labels)
    out.loss.backward()
    result = {"loss": out.loss.item(), "grads": {}}
    for n, p in model.named_parameters():
        if p.requires_grad:
            key = n.replace(".default", "")
            result["grads"][key] = p.grad.flatten().tolist()
    # Ten AdamW steps on the adapter only (the base stays frozen), losses before each update.
    model.zero_grad()
    params = [p for p in model.parameters() if p.requires_grad]
    # lr is chosen so the run is well conditioned: torch's own fp32 run stays within atol 1e-5 + rtol 1e-4 of the
    # same run in fp64 (rsLoRA's scale 16/√8 at lr 1e-2 is not: fp32 rounding alone exceeds that tolerance).
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        out = model(input_ids=input_ids, labels=labels)
        losses.append(out.loss.item())
        out.loss.backward()
        opt.step()
    result["trajectory_losses"] = losses
    result["trajectory_lr"] = lr
    trained = {n.replace(".default", ""): p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, os.path.join(folder, "after_10_steps.safetensors"))
    # merge_and_unload of the adapter as saved (reload to undo the training).
    torch.manual_seed(seed)
    base = GPT2LMHeadModel.from_pretrained(base_dir, torch_dtype=torch.float32)
    from peft import PeftModel
    merged = PeftModel.from_pretrained(base, folder).merge_and_unload()
    # Only the merged projection weights change; keep those (the rest equals the base).
    sd = {k: v.contiguous() for k, v in merged.state_dict().items()
          if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))}
    save_file(sd, os.path.join(folder, "merged.safetensors"), metadata={"format": "pt"})
    with torch.no_grad():
        result["merged_loss"] = merged(input_ids=input_ids, labels=labels).loss.item()
    json.dump(result, open(os.path.join(folder, "goldens.json"), "w"), indent=1)
    print(name, "loss", result["loss"], "losses", losses[0], "->", losses[-1])


make("all-modules", LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn", "c_proj", "c_fc"],
                               fan_in_fan_out=True, bias="none", task_type="CAUSAL_LM"), seed=7, lr=1e-2)
make("rslora-attn", LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["attn.c_attn"], use_rslora=True,
                               fan_in_fan_out=True, bias="none", task_type="CAUSAL_LM"), seed=8, lr=1e-3)
print("versions: torch", torch.__version__, "peft", __import__("peft").__version__, "transformers", __import__("transformers").__version__)
