#!/usr/bin/python3
"""Compares what the `sparsimix` program wrote with the PyTorch reference (gen_vit.py).

  check_vit.py outputs --expected E --actual A --rtol R   infer/grad outputs vs golden
  check_vit.py torch-load --model M --config-from M --input X --actual A --rtol R
      loads a checkpoint written by sparsimix into the reference model with
      load_state_dict(strict=True) and compares its logits with sparsimix's.
Closeness per tensor: |a - e| <= rtol * (|e| + 0.1 * max|e|), i.e. relative, with a floor at
a tenth of the tensor's scale for entries near zero. Exits 1 and prints the worst entry on failure.
"""
import argparse
import json
import struct
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import ref_vit  # noqa: E402

_DT = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[b:e]), dtype=_DT[v["dtype"]]).reshape(v["shape"]).clone()
    return out, meta


def close(name, a, e, rtol):
    a, e = a.double(), e.double()
    if a.shape != e.shape:
        return f"{name}: shape {list(a.shape)} != expected {list(e.shape)}"
    tol = rtol * (e.abs() + 0.1 * e.abs().max())
    err = (a - e).abs()
    bad = ~(err <= tol)
    if bad.any():
        i = int(torch.argmax((err / tol).flatten()))
        return (f"{name}: {int(bad.sum())} of {e.numel()} entries off; worst at {i}: "
                f"actual {a.flatten()[i].item():.8g}, expected {e.flatten()[i].item():.8g}")
    return None


def lstm_block_mask(name, shape, cfg):
    """For mh_lstm weights: 1 inside the per-head blocks, 0 outside (docs/formats.md section 2)."""
    if not name.startswith("blocks."):
        return None
    i = int(name.split(".")[1])
    if cfg["mixers"][i]["kind"] != "mh_lstm":
        return None
    C, H = cfg["embed_dim"], cfg["num_heads"]
    m_ih, m_head = ref_vit.lstm_masks(C, H)
    if ".lstm.weight_" in name:
        return m_ih
    if name.endswith("attn.head_proj.weight"):
        return m_head
    return None


def cmd_outputs(args):
    exp, _ = load(args.expected)
    act, _ = load(args.actual)
    cfg = json.load(open(args.config)) if args.config else None
    failures, checked = [], 0
    for name, e in exp.items():
        if args.only and not name.startswith(args.only):
            continue
        if name not in act:
            failures.append(f"{name}: missing from the output")
            continue
        a = act[name]
        if name.startswith("grad.") and cfg is not None:
            mask = lstm_block_mask(name[5:], e.shape, cfg)
            if mask is not None:
                if (a.double() * (1 - mask)).abs().max() != 0:
                    failures.append(f"{name}: non-zero gradient outside the per-head blocks")
                e = e * mask
        msg = close(name, a, e, args.rtol)
        checked += 1
        if msg:
            failures.append(msg)
    for f in failures:
        print("FAIL", f)
    print(f"checked {checked} tensors, {len(failures)} failed")
    return 1 if failures or (checked == 0 and not args.allow_none) else 0


def cmd_torch_load(args):
    sd, meta = load(args.model)
    cfg = json.loads(meta["sparsimix.config"])
    model = ref_vit.HybridViT(cfg).double()
    model.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    inp, _ = load(args.input)
    act, _ = load(args.actual)
    with torch.no_grad():
        logits = model(inp["images"].double())
    msg = close("logits", act["logits"], logits, args.rtol)
    print(msg or f"torch load_state_dict(strict=True) ok; logits match within rtol {args.rtol}")
    return 1 if msg else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("outputs")
    o.add_argument("--expected", required=True)
    o.add_argument("--actual", required=True)
    o.add_argument("--rtol", type=float, required=True)
    o.add_argument("--only", default=None, help="check only names with this prefix")
    o.add_argument("--allow-none", action="store_true", help="pass when no tensor matches --only")
    o.add_argument("--config", default=None, help="model config JSON (enables the LSTM block-mask check)")
    t = sub.add_parser("torch-load")
    t.add_argument("--model", required=True)
    t.add_argument("--input", required=True)
    t.add_argument("--actual", required=True)
    t.add_argument("--rtol", type=float, required=True)
    args = ap.parse_args()
    sys.exit(cmd_outputs(args) if args.cmd == "outputs" else cmd_torch_load(args))


if __name__ == "__main__":
    main()
