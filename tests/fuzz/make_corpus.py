#!/usr/bin/python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/ (committed;
rerun only to change the seeds). Crashing inputs that fuzzer runs find are added beside them
by hand, named crash-<what>, so that every build replays them.

usage: make_corpus.py SPARSIMIX_EXE
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "golden"))
import torch  # noqa: E402
import st  # noqa: E402

TINY = {"img_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 3, "embed_dim": 8, "depth": 3,
        "num_heads": 2, "mlp_ratio": 1.0, "ln_eps": 1e-6,
        "mixers": [{"kind": "attention"}, {"kind": "mh_lstm"},
                   {"kind": "selective_scan", "d_state": 2, "d_conv": 2, "expand": 1, "dt_rank": 1,
                    "bidirectional": True}],
        "halting": {"gamma": 10, "beta": 3, "eps": 0.01}}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    exe = sys.argv[1]
    write("model_config", "seed-tiny.json", json.dumps(TINY).encode())
    write("model_config", "seed-attention.json", json.dumps({**TINY, "depth": 1, "mixers": [{"kind": "attention"}],
                                                             "halting": None}).encode())
    with tempfile.TemporaryDirectory() as tmp:
        cfg, model = os.path.join(tmp, "c.json"), os.path.join(tmp, "m.safetensors")
        with open(cfg, "w") as f:
            json.dump(TINY, f)
        subprocess.run([exe, "init", "--config", cfg, "--out", model], check=True, capture_output=True)
        ckpt = open(model, "rb").read()
    write("checkpoint", "seed-tiny-hybrid.safetensors", ckpt)
    write("safetensors", "seed-tiny-hybrid.safetensors", ckpt)
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "t.safetensors")
        st.save(p, {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64),
                    "c": torch.ones(2, dtype=torch.float16), "d": torch.ones(1, dtype=torch.bfloat16),
                    "e": torch.zeros(1, dtype=torch.float64)}, metadata={"format": "pt"})
        write("safetensors", "seed-dtypes.safetensors", open(p, "rb").read())
    idx = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 3, 3) + bytes(range(18))
    write("idx", "seed-images.idx", idx)
    write("idx", "seed-images-gzip.idx", gzip.compress(idx, mtime=0))  # no .gz name: gzip is detected by content
    write("idx", "seed-labels.idx", bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([0, 9, 4]))
    write_image_seeds()


def write_image_seeds():
    """Small JPEG and PNG files of every mode the decoder takes, and two it refuses."""
    import io
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(9, 13, 3, generator=g) * 255).to(torch.uint8).numpy()
    gray = rgb[:, :, 0].copy()

    def encoded(img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()
    write("image", "seed-rgb.jpg", encoded(Image.fromarray(rgb, "RGB"), "JPEG", quality=80))
    write("image", "seed-gray.jpg", encoded(Image.fromarray(gray, "L"), "JPEG"))
    write("image", "seed-progressive.jpg", encoded(Image.fromarray(rgb, "RGB"), "JPEG", progressive=True))
    write("image", "seed-cmyk.jpg", encoded(Image.fromarray(rgb, "RGB").convert("CMYK"), "JPEG"))
    write("image", "seed-rgb.png", encoded(Image.fromarray(rgb, "RGB"), "PNG"))
    write("image", "seed-gray.png", encoded(Image.fromarray(gray, "L"), "PNG"))
    write("image", "seed-palette.png", encoded(Image.fromarray(rgb, "RGB").quantize(colors=5), "PNG"))
    write("image", "seed-rgba-interlaced.png", encoded(Image.fromarray(rgb, "RGB").convert("RGBA"), "PNG",
                                                       interlace=1))
    write("image", "seed-one-bit.png", encoded(Image.fromarray(gray > 127), "PNG"))


if __name__ == "__main__":
    main()
