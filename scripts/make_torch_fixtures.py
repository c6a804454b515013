"""Generates the small PyTorch fixtures under fixtures/torch/ (run from the package root).

    python3 scripts/make_torch_fixtures.py

noncontiguous.pt  {'t': arange(12.).reshape(3,4).t(), 'row': arange(12.).reshape(3,4)[1], 'h': arange(6, dtype=f16)}
                  zip format; 't' has stride (1, 4); 'row' is a view at storage offset 4 sharing t's storage.
noncontiguous_legacy.pt  the same dict with _use_new_zipfile_serialization=False.
deflated.pt       {'a': arange(64.)} re-zipped with deflate (method 8) to exercise the inflate path.
wrapped.pt        {'state_dict': nn.Linear(2, 3).state_dict()} with weights arange: a wrapper dict around an
                  OrderedDict carrying `_metadata` (pickled with BUILD).
parameter.pt      {'p': nn.Parameter(arange(3.))}: a tensor rebuilt through _rebuild_parameter.
"""
import os, zipfile, torch

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")
os.makedirs(out, exist_ok=True)
base = torch.arange(12.0).reshape(3, 4)
sd = {"t": base.t(), "row": base[1], "h": torch.arange(6, dtype=torch.float16)}
torch.save(sd, os.path.join(out, "noncontiguous.pt"))
torch.save(sd, os.path.join(out, "noncontiguous_legacy.pt"), _use_new_zipfile_serialization=False)

tmp = os.path.join(out, "_stored.pt")
torch.save({"a": torch.arange(64.0)}, tmp)
with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(os.path.join(out, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
os.remove(tmp)

lin = torch.nn.Linear(2, 3)
with torch.no_grad():
    lin.weight.copy_(torch.arange(6.0).reshape(3, 2)); lin.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
torch.save({"state_dict": lin.state_dict()}, os.path.join(out, "wrapped.pt"))
torch.save({"p": torch.nn.Parameter(torch.arange(3.0))}, os.path.join(out, "parameter.pt"))
print(torch.__version__, sorted(os.listdir(out)))
