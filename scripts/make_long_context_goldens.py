#!/usr/bin/env python3
"""Makes fixtures/long-context/: a small-width GPT-2 at the full context (T = 1024) and its goldens.

Run once (from anywhere) where torch 2.13.0+cpu and transformers 4.57.6 are installed:
    python3 scripts/make_long_context_goldens.py
The project's tests (Tests/GPT2Tests/LongContextParityTests.swift) read the committed outputs; they never
need Python. The goldens pin the training path at sequence lengths where attention and the lm head are
large (B·T = 2048 rows × 50257 vocabulary; 1024² scores per head), so that a linear-memory attention or a
row-chunked lm head + cross-entropy can be checked against PyTorch, not only against the code it replaces.

Model: GPT2LMHeadModel(GPT2Config(vocab_size 50257, n_positions 1024, n_embd 64, n_layer 2, n_head 4,
gelu_new, every dropout 0)), seed 20261202. Init: transformers' normal(0, 0.02), then every c_attn weight
redrawn with std 0.25 (peaked attention: on rows t ≥ 100 of sequence 0 the mean largest probability is
0.44 / 0.22 in layers 0 / 1, the mean entropy 2.2 / 3.7 nats against 6.2 for uniform), wte with std 0.1
(logits of std ≈ 0.8), and every bias and LayerNorm parameter shifted by N(0, 0.1²). Stored in F16
(`model.safetensors`, `save_pretrained` layout: keys prefixed `transformer.`, no `lm_head.weight`); every
golden is computed from those F16 weights upcast to F32, so it is exact for a loader that upcasts too.
Attention is transformers' "eager" implementation (explicit softmax), fp32, CPU,
`torch.use_deterministic_algorithms(True)`, 2 threads, eval mode (dropout is 0 anyway).

Tokens: `input_ids` (2, 1024), seeded (torch.Generator seed 7): each position is, with probability ½, a
token from [0, 512) (so many tokens repeat and wte's gradient rows accumulate), else any of the 50257.

`goldens.json` (floats are numbers; "stats" = {"sum", "l2", "first" (first 4 values of the row-major
flattened tensor), "numel"} as in tiny-gpt2's goldens):
- `config`, `input_ids`.
- `full`: batch (2, 1024), no padding, no attention mask, labels = input_ids. `loss` (mean cross-entropy
  over the 2·1023 shifted positions); `logits[]`: rows {b, t} for b in 0, 1 and t in 0, 1, 511, 512, 1023,
  each with `first16`, `last16` (vocab ids 50241…50256), `argmax`, `logsumexp`, `sum`; `grads[name]` stats
  of every parameter (wte's includes the tied lm head's share); `grad_slices`: first 8 values of wte's
  gradient rows of `slice_tokens` (keys "wte[<id>]"), of wpe's rows 0 and 1023, of layer 0's
  c_attn.weight row 0 and row 63 and of layer 1's c_proj.weight row 0.
- `padded`: batch (2, 1024) with right padding: row 1 is real for 700 tokens, then token 50256 with
  `attention_mask` 0 and labels -100; labels are also -100 on row 0's first 128 and row 1's first 64
  positions (a context, as in the context/label examples). `input_ids`, `attention_mask`, `labels`,
  `loss` (mean over the label positions of the whole batch), `grads` stats.
- `trajectory`: 3 steps of torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0),
  no clipping, on row 0 of `input_ids` as a (1, 1024) batch (`batch_row`), labels = inputs: `losses[i]`
  before update i+1, `grad_norms[i]` (global L2 of all gradients before update i+1), `final_params[name]`
  stats after the 3 updates, except each `h.N.attn.c_attn.bias`, whose stats (key
  "<name>[query,value]") cover its query and value thirds: the key third has a mathematically zero
  gradient, so after Adam it is rounding noise (`key_bias_sums` records it, and `fp64_check` how much
  float32 and float64 torch disagree on it); `final_slices` (first 8 of ln_f.weight, wte rows 0 and
  `slice_tokens[0]`, layer 0's c_attn.weight row 0).
- `short[]`: single sequences T = 512 (`input_ids[0][:512]`) and T = 257 (`input_ids[1][:257]`, not a
  multiple of any tile size), labels = inputs: `T`, `input_ids`, `loss`, `grads` stats.
- `fp64_check`: the largest relative differences between this fp32 run and the same computation in
  float64 (same weights; the loss then computed in float64 too), per kind, to show how much of the
  tolerance float32 itself uses.
"""
import json, os
import torch
from transformers import GPT2Config, GPT2LMHeadModel

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out_dir = os.path.join(root, "fixtures", "long-context")
os.makedirs(out_dir, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)
torch.manual_seed(20261202)

T, V, C = 1024, 50257, 64
config = GPT2Config(vocab_size=V, n_positions=T, n_embd=C, n_layer=2, n_head=4, activation_function="gelu_new",
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.02)
config._attn_implementation = "eager"
model = GPT2LMHeadModel(config)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("attn.c_attn.weight"):
            p.normal_(0, 0.25)
        elif name == "transformer.wte.weight":
            p.normal_(0, 0.1)
        elif name.endswith(".bias") or ".ln_" in name:
            p.add_(torch.randn_like(p) * 0.1)
model.half().save_pretrained(out_dir)  # F16 safetensors + config.json
for extra in ("generation_config.json",):
    if os.path.exists(os.path.join(out_dir, extra)):
        os.remove(os.path.join(out_dir, extra))


def load(dtype):
    m = GPT2LMHeadModel.from_pretrained(out_dir, torch_dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


g = torch.Generator().manual_seed(7)
frequent = torch.randint(0, 512, (2, T), generator=g)
anywhere = torch.randint(0, V, (2, T), generator=g)
pick = torch.rand((2, T), generator=g) < 0.5
input_ids = torch.where(pick, frequent, anywhere)
slice_tokens = [int(input_ids[0, 0]), int(input_ids[1, 1023]), 50256]


def stats(t):
    f = t.detach().flatten().double()
    return {"sum": f.sum().item(), "l2": f.norm().item(), "first": t.detach().flatten()[:4].tolist(), "numel": f.numel()}


def causal_lm_loss(out, labels):
    """GPT2LMHeadModel's loss (shifted, mean over labels != -100), but in the logits' dtype: transformers upcasts
    to float32, which would make the float64 check run its loss in float32. In float32 both are the same."""
    logits = out.logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                             ignore_index=-100, reduction="mean")
    if logits.dtype == torch.float32:
        assert abs(loss.item() - out.loss.item()) <= 1e-6 * abs(out.loss.item()), (loss.item(), out.loss.item())
    return loss


def run(m, ids, labels, mask=None):
    m.zero_grad(set_to_none=True)
    out = m(input_ids=ids, attention_mask=mask, labels=labels)
    loss = causal_lm_loss(out, labels)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    return loss.item(), out.logits.detach(), grads


def row8(t, r):
    return t[r, :8].tolist()


models = {torch.float32: load(torch.float32), torch.float64: load(torch.float64)}
results = {}
for dtype, m in models.items():
    r = {}
    loss, logits, grads = run(m, input_ids, input_ids.clone())
    rows = []
    for b in (0, 1):
        for t in (0, 1, 511, 512, 1023):
            row = logits[b, t]
            rows.append({"b": b, "t": t, "first16": row[:16].tolist(), "last16": row[-16:].tolist(),
                         "argmax": int(row.argmax()), "logsumexp": torch.logsumexp(row.double(), 0).item(),
                         "sum": row.double().sum().item()})
    del logits
    slices = {f"wte[{tok}]": row8(grads["transformer.wte.weight"], tok) for tok in slice_tokens}
    slices["wpe[0]"] = row8(grads["transformer.wpe.weight"], 0)
    slices["wpe[1023]"] = row8(grads["transformer.wpe.weight"], 1023)
    slices["h.0.attn.c_attn.weight[0]"] = row8(grads["transformer.h.0.attn.c_attn.weight"], 0)
    slices["h.0.attn.c_attn.weight[63]"] = row8(grads["transformer.h.0.attn.c_attn.weight"], 63)
    slices["h.1.attn.c_proj.weight[0]"] = row8(grads["transformer.h.1.attn.c_proj.weight"], 0)
    r["full"] = {"loss": loss, "logits": rows, "grads": {n: stats(v) for n, v in grads.items()}, "grad_slices": slices}

    ids_p = input_ids.clone()
    mask_p = torch.ones_like(ids_p)
    labels_p = ids_p.clone()
    ids_p[1, 700:] = 50256
    mask_p[1, 700:] = 0
    labels_p[1, 700:] = -100
    labels_p[0, :128] = -100
    labels_p[1, :64] = -100
    loss, _, grads = run(m, ids_p, labels_p, mask_p)
    r["padded"] = {"input_ids": ids_p.tolist(), "attention_mask": mask_p.tolist(), "labels": labels_p.tolist(),
                   "loss": loss, "grads": {n: stats(v) for n, v in grads.items()}}

    short = []
    for b, t_len in ((0, 512), (1, 257)):
        ids_s = input_ids[b:b + 1, :t_len].clone()
        loss, _, grads = run(m, ids_s, ids_s.clone())
        short.append({"T": t_len, "input_ids": ids_s[0].tolist(), "loss": loss, "grads": {n: stats(v) for n, v in grads.items()}})
    r["short"] = short

    # Trajectory last: it changes the weights. One sequence (1, 1024) keeps the Swift test's debug runtime modest.
    traj_ids = input_ids[:1]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, norms = [], []
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        out = m(input_ids=traj_ids, labels=traj_ids)
        loss = causal_lm_loss(out, traj_ids)
        loss.backward()
        losses.append(loss.item())
        norms.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in m.parameters())).item())
        opt.step()
    P = dict(m.named_parameters())
    finals, key_bias_sums = {}, {}
    for n, p in P.items():
        if n.endswith("attn.c_attn.bias"):
            # The key third of c_attn.bias has a mathematically zero gradient (it adds q·b_k to every score of a
            # row, which softmax ignores), so its float32 gradient is rounding noise that Adam (eps 1e-8) turns
            # into steps of up to lr: a value of noise, not of the model. Stats cover the query and value thirds.
            finals[n + "[query,value]"] = stats(torch.cat([p[:C], p[2 * C:]]))
            key_bias_sums[n] = p[C:2 * C].double().sum().item()
        else:
            finals[n] = stats(p)
    r["trajectory"] = {
        "optimizer": {"name": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "clip_grad_norm": None, "steps": 3},
        "batch_row": 0, "losses": losses, "grad_norms": norms, "final_params": finals,
        "final_slices": {"ln_f.weight": P["transformer.ln_f.weight"][:8].tolist(),
                         "wte[0]": row8(P["transformer.wte.weight"], 0),
                         f"wte[{slice_tokens[0]}]": row8(P["transformer.wte.weight"], slice_tokens[0]),
                         "h.0.attn.c_attn.weight[0]": row8(P["transformer.h.0.attn.c_attn.weight"], 0)},
        "key_bias_sums": key_bias_sums,
    }
    results[dtype] = r
    print(dtype, "loss", r["full"]["loss"], "padded", r["padded"]["loss"], "traj", losses)

golden = results[torch.float32]
wide = results[torch.float64]


# How far float32 itself is from float64, per kind (relative, floor 1e-3 on the denominator as the tests' log).
def rel(a, b, floor=1e-3):
    return abs(a - b) / max(abs(b), floor)


check = {}
def note(kind, a, b, floor=1e-3):
    check[kind] = max(check.get(kind, 0.0), rel(a, b, floor))


for part in ("full", "padded"):
    note("loss", golden[part]["loss"], wide[part]["loss"])
    for n, s in golden[part]["grads"].items():
        note("grad l2", s["l2"], wide[part]["grads"][n]["l2"])
        note("grad sum (floor 1e-2)", s["sum"], wide[part]["grads"][n]["sum"], 1e-2)
        for a, b in zip(s["first"], wide[part]["grads"][n]["first"]):
            note("grad first (floor 1e-3)", a, b)
for a, b in zip(golden["full"]["logits"], wide["full"]["logits"]):
    for x, y in zip(a["first16"] + a["last16"], b["first16"] + b["last16"]):
        note("logits (floor 1e-2)", x, y, 1e-2)
    note("logsumexp", a["logsumexp"], b["logsumexp"])
for k, v in golden["full"]["grad_slices"].items():
    for x, y in zip(v, wide["full"]["grad_slices"][k]):
        note("grad slices (floor 1e-3)", x, y)
for s32, s64 in zip(golden["short"], wide["short"]):
    note("loss", s32["loss"], s64["loss"])
    for n, s in s32["grads"].items():
        note("grad l2", s["l2"], s64["grads"][n]["l2"])
for a, b in zip(golden["trajectory"]["losses"], wide["trajectory"]["losses"]):
    note("trajectory losses", a, b)
for a, b in zip(golden["trajectory"]["grad_norms"], wide["trajectory"]["grad_norms"]):
    note("trajectory grad norms", a, b)
for n, s in golden["trajectory"]["final_params"].items():
    note("final params l2", s["l2"], wide["trajectory"]["final_params"][n]["l2"])
    note("final params sum (floor 1e-2)", s["sum"], wide["trajectory"]["final_params"][n]["sum"], 1e-2)
    for a, b in zip(s["first"], wide["trajectory"]["final_params"][n]["first"]):
        note("final params first (floor 1e-3)", a, b)
for k, v in golden["trajectory"]["final_slices"].items():
    for x, y in zip(v, wide["trajectory"]["final_slices"][k]):
        note("final slices (floor 1e-3)", x, y)

for n, v in golden["trajectory"]["key_bias_sums"].items():
    check["key-bias sum after 3 steps, absolute (not compared)"] = max(
        check.get("key-bias sum after 3 steps, absolute (not compared)", 0.0), abs(v - wide["trajectory"]["key_bias_sums"][n]))
golden["fp64_check"] = check
golden = {"config": {"vocab_size": V, "n_positions": T, "n_embd": C, "n_layer": 2, "n_head": 4, "weights": "F16 upcast to F32",
                     "attn_implementation": "eager", "seed": 20261202, "token_seed": 7},
          "slice_tokens": slice_tokens, "input_ids": input_ids.tolist(), **golden}
with open(os.path.join(out_dir, "goldens.json"), "w") as f:
    json.dump(golden, f, separators=(",", ":"))
for k, v in sorted(check.items()):
    print(f"fp32 vs fp64 {k}: {v:.2e}")
print("versions: torch", torch.__version__, "transformers", __import__("transformers").__version__)
