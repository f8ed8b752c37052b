"""Golden files for the HybridViT through the `sparsimix` program (infer, grad).

For each case: <case>_model.safetensors (F32 state_dict, metadata "sparsimix.config" unless
the case is a plain timm checkpoint), <case>_input.safetensors (images F32, labels I64) and
<case>_expected.safetensors (F64: logits, blocks.{i}.out, blocks.{i}.attn_map, loss, grad.*).
The reference runs in float64 on the float32-rounded weights and inputs the files hold.
Also writes malformed checkpoints for the bad-input tests (bad_*.safetensors).
"""
import json
import struct

import torch
import torch.nn.functional as F

import ref_vit
import st

CASES = {
    # img, patch, in_chans, classes, C, H, mlp_ratio, mixers, batch, metadata
    "vit_attn": (12, 4, 1, 5, 24, 3, 4.0, [{"kind": "attention"}] * 2, 3, True),
    "vit_mixed": (10, 5, 3, 7, 40, 5, 2.5,
                  [{"kind": "attention"}, {"kind": "mh_lstm"},
                   {"kind": "selective_scan", "d_state": 4, "d_conv": 3, "expand": 1.5, "dt_rank": 3},
                   {"kind": "selective_scan", "d_state": 8, "bidirectional": True}], 2, True),
    "vit_lstm_scan_n17": (16, 4, 1, 4, 24, 2, 2.0,
                          [{"kind": "mh_lstm"}, {"kind": "selective_scan", "bidirectional": True},
                           {"kind": "attention"}], 1, True),
    "vit_timm": (8, 4, 3, 6, 64, 1, 2.0, [{"kind": "attention"}] * 2, 2, False),
    # A-ViT halting: gamma/beta chosen so patch tokens halt at different blocks.
    "vit_halting": (12, 4, 1, 5, 24, 3, 2.0,
                    [{"kind": "attention"}, {"kind": "mh_lstm"}, {"kind": "selective_scan", "bidirectional": True},
                     {"kind": "attention"}], 3, {"gamma": 1.5, "beta": 0.5, "eps": 0.01}),
    # FAR pruning: the dense masked layout with pruned units zeroed (PRUNED below); sparsimix
    # reads them back as pruned and computes at the reduced widths.
    "vit_lstm_pruned": (16, 4, 1, 4, 24, 2, 2.0,
                        [{"kind": "mh_lstm"}, {"kind": "attention"}, {"kind": "mh_lstm"}], 2, True),
}

# Per case: block -> (direction, dense hidden unit h * d + j) pairs to prune. Block 2 loses
# every forward unit of head 1 (a width-0 head and direction).
PRUNED = {
    "vit_lstm_pruned": {0: [(0, 0), (0, 5), (0, 13), (1, 2), (1, 23)],
                        2: [(0, u) for u in range(12, 24)] + [(1, 0), (1, 1)]},
}


def prune_units(model, block, units, C):
    """Zeroes each unit's gate rows, recurrent column, gate biases and head_proj column: the
    unit is disconnected, exactly what sparsimix's pruning leaves in a checkpoint."""
    sd = model.state_dict()
    pre = f"blocks.{block}.attn."
    with torch.no_grad():
        for direction, u in units:
            sfx = "_reverse" if direction else ""
            for g in range(4):
                for name in ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"):
                    sd[pre + name + sfx][g * C + u].zero_()
            sd[pre + "lstm.weight_hh_l0" + sfx][:, u].zero_()
            sd[pre + "head_proj.weight"][:, direction * C + u].zero_()


def config_of(img, patch, chans, classes, C, H, ratio, mixers, halting=None):
    return {"img_size": img, "patch_size": patch, "in_chans": chans, "num_classes": classes, "embed_dim": C,
            "depth": len(mixers), "num_heads": H, "mlp_ratio": ratio, "ln_eps": 1e-6, "mixers": mixers,
            "halting": halting}


def generate(out):
    torch.set_num_threads(1)
    for seed, (name, case) in enumerate(CASES.items()):
        img, patch, chans, classes, C, H, ratio, mixers, batch, meta = case
        halting = meta if isinstance(meta, dict) else None
        cfg = config_of(img, patch, chans, classes, C, H, ratio, mixers, halting)
        gen = torch.Generator().manual_seed(100 + seed)
        model = ref_vit.HybridViT(cfg).double()
        model.randomize(gen)
        for block, units in PRUNED.get(name, {}).items():
            prune_units(model, block, units, C)
        images = torch.randn(batch, chans, img, img, generator=gen, dtype=torch.float64).float().double()
        labels = torch.randint(0, classes, (batch,), generator=gen)
        logits, outs, maps = model(images, capture=True)
        loss = F.cross_entropy(logits, labels)
        model.zero_grad()
        loss.backward()
        metadata = {"format": "pt"}
        if meta:
            metadata["sparsimix.config"] = json.dumps(cfg)
        st.save(out / f"{name}_model.safetensors", {k: v.float() for k, v in model.state_dict().items()}, metadata)
        st.save(out / f"{name}_input.safetensors", {"images": images.float(), "labels": labels})
        expected = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
        for i, (o, m) in enumerate(zip(outs, maps)):
            expected[f"blocks.{i}.out"] = o.detach()
            if m is not None:
                expected[f"blocks.{i}.attn_map"] = m.detach()
        for k, p in model.named_parameters():
            expected["grad." + k] = p.grad
        if halting:
            expected["halting.depth"] = model.depth
            depths = set(model.depth[:, 1:].flatten().tolist())
            assert len(depths) >= 2, f"{name}: tokens must halt at different blocks, got depths {depths}"
        st.save(out / f"{name}_expected.safetensors", expected)
        with open(out / f"{name}_config.json", "w") as f:
            json.dump(cfg, f)
    write_bad_files(out)


def write_bad_files(out):
    """Malformed models, one per kind of docs/formats.md section 1 (and name/shape mismatches)."""
    good = (out / "vit_attn_model.safetensors").read_bytes()
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    data = good[8 + n:]

    def with_header(h, d=data, claimed=None):
        raw = json.dumps(h).encode()
        return struct.pack("<Q", claimed if claimed is not None else len(raw)) + raw + d

    keys = [k for k in header if k != "__metadata__"]
    first, second = keys[0], keys[1]
    b2, e2 = header[second]["data_offsets"]
    bad = {
        "bad_truncated": good[: len(good) - 10],
        "bad_short": good[:5],
        "bad_header_len": struct.pack("<Q", 200_000_000) + good[8:],
        "bad_json": struct.pack("<Q", 9) + b"{not json" + data,
        "bad_dtype": with_header({**header, first: {**header[first], "dtype": "Q4"}}),
        "bad_overlap": with_header({**header, second: {**header[second], "data_offsets": [b2 - 4, e2 - 4]}}),
        "bad_size": with_header({**header, first: {**header[first], "shape": [1]}}),
        "bad_trailing": with_header(header, data + b"\0" * 8),
    }
    for k, v in bad.items():
        (out / f"{k}.safetensors").write_bytes(v)
    model_sd = st_load_dict(good)
    meta = header["__metadata__"]
    broken = dict(model_sd)
    broken.pop("blocks.1.mlp.fc2.bias")
    st.save(out / "bad_missing.safetensors", broken, meta)
    extra = dict(model_sd)
    extra["blocks.0.attn.rel_pos"] = torch.zeros(3)
    st.save(out / "bad_unexpected.safetensors", extra, meta)
    shaped = dict(model_sd)
    shaped["blocks.0.mlp.fc1.weight"] = torch.zeros(5, 24)
    st.save(out / "bad_shape.safetensors", shaped, meta)
    nan = dict(model_sd)
    nan["head.bias"] = nan["head.bias"].clone()
    nan["head.bias"][1] = float("nan")
    st.save(out / "bad_nan.safetensors", nan, meta)
    cfg = json.loads(meta["sparsimix.config"])
    cfg["mixers"][0] = {"kind": "transformer"}
    st.save(out / "bad_kind.safetensors", model_sd, {"format": "pt", "sparsimix.config": json.dumps(cfg)})
    dist = dict(model_sd)
    dist["dist_token"] = torch.zeros(1, 1, 24)
    st.save(out / "bad_distilled.safetensors", dist, {"format": "pt"})


def st_load_dict(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    outd = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        outd[k] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(v["shape"]).clone()
    return outd
