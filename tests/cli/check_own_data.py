#!/usr/bin/python3
"""Your own data end to end (issue 16): a DeiT-Tiny-shaped timm model and a generated image
folder (scripts/make_own_data_example.py), then

  infer     on val/: the preprocessed images equal PyTorch's (timm's DeiT transform on PIL)
            exactly and the logits agree to 1e-4; same file order as ImageFolder
  eval      --data FOLDER: PyTorch's accuracy on val/, the data and preprocessing recorded
  sparsity  --data FOLDER: a ranking of all 12 layers
  train     --augment on the folder: random resized crops streamed through the decoder pool,
            decode and wait times reported
  distill   --data FOLDER: a student with the replaced layers, the data recorded
  CIFAR-10  binaries: eval reads them (generated records in the real layout)
  bad input: each a one-line error naming the file, non-zero exit, no output file

Usage: check_own_data.py SPARSIMIX_EXE REPO_ROOT WORK_DIR
"""
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import torch

exe, repo, work = os.path.abspath(sys.argv[1]), pathlib.Path(sys.argv[2]).resolve(), pathlib.Path(sys.argv[3]).resolve()
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args, expect_ok=True):
    r = subprocess.run([exe, *map(str, args)], cwd=work, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        sys.exit(f"sparsimix {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def load_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {"__metadata__": header.pop("__metadata__", {})}
    for k, v in header.items():
        s, e = v["data_offsets"]
        dt = {"F32": torch.float32, "I64": torch.int64}[v["dtype"]]
        out[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=dt).reshape(v["shape"])
    return out


subprocess.run([sys.executable, str(repo / "scripts" / "make_own_data_example.py"), "--out", str(work),
                "--train-per-class", "12", "--val-per-class", "4"], check=True)
images = work / "images"
ref = load_st(work / "pytorch_val.safetensors")

# infer on the folder of val images
run("infer", "--model", "deit_tiny.safetensors", "--input", images / "val", "--out", "val_logits.safetensors")
got = load_st(work / "val_logits.safetensors")
check(got["__metadata__"]["files"] == ref["__metadata__"]["files"], "infer reads val/ in ImageFolder's order")
d_img = (got["images"] - ref["images"]).abs().max().item()
check(d_img == 0.0, f"infer's preprocessed images equal timm's DeiT transform (max |diff| {d_img})")
d_log = (got["logits"] - ref["logits"]).abs().max().item()
check(d_log < 1e-4, f"infer's logits match PyTorch's (max |diff| {d_log:.2e}, 12 blocks at 224x224)")

# eval on the folder: PyTorch's accuracy
ev = json.loads(run("eval", "--model", "deit_tiny.safetensors", "--data", images).stdout)
acc = float(ref["__metadata__"]["accuracy"])
loss = float(ref["__metadata__"]["loss"])
check(abs(ev["test_accuracy"] - acc) < 1e-9 and abs(ev["test_loss"] - loss) < 1e-5 and ev["images"] == ref["logits"].shape[0],
      f"eval's accuracy and loss on val/ are PyTorch's ({ev['test_accuracy']}, {ev['test_loss']:.6f} vs {acc}, {loss:.6f})")
pre = ev["data"]["preprocessing"]
check(ev["data"]["format"] == "image-folder" and pre["eval"]["resize"] == 256 and pre["interpolation"] == "bicubic"
      and pre["resize_rounding"] == "pil" and pre["mean"] == [0.485, 0.456, 0.406], "eval records the preprocessing")

# sparsity on held-out training images
run("sparsity", "--model", "deit_tiny.safetensors", "--data", images, "--count", "4", "--out", "sparsity")
sp = json.loads((work / "sparsity" / "sparsity.json").read_text())
check(sorted(sp["ranking"]) == list(range(12)), "sparsity ranks the 12 layers")

# train with --augment: streamed random resized crops
cfg = {"img_size": 64, "patch_size": 16, "in_chans": 3, "num_classes": 4, "embed_dim": 64, "depth": 2,
       "num_heads": 1, "mlp_ratio": 2.0, "mixers": [{"kind": "attention"}, {"kind": "attention"}]}
(work / "small.json").write_text(json.dumps(cfg))
run("train", "--config", "small.json", "--data", images, "--steps", "6", "--batch", "8", "--augment",
    "--budget", "tiny", "--out", "small.safetensors")
tr = json.loads((work / "small.safetensors.json").read_text())
check(tr["decode_images_per_second"] > 0 and tr["data_wait_seconds"] >= 0 and tr["fit"]["augment"] is True,
      f"train streams augmented images ({tr['decode_images_per_second']:.0f} decoded/s, "
      f"{tr['data_wait_seconds']:.2f} s waited, {tr['images_per_second']:.0f} trained/s)")

# distill on the folder
run("distill", "--teacher", "deit_tiny.safetensors", "--data", images, "--layers", "0,5", "--mixer", "mh_lstm",
    "--stage1-steps", "2", "--stage2-steps", "1", "--batch", "8", "--budget", "tiny", "--out", "student.safetensors")
di = json.loads((work / "student.safetensors.json").read_text())
check(di["replaced"] == [0, 5] and di["data"]["format"] == "image-folder", "distill runs on the folder")

# CIFAR-10 binaries, generated in the real layout (1 label byte + 3072 planar pixels)
cifar = work / "cifar"
cifar.mkdir()
g = torch.Generator().manual_seed(1)
for name, n in [(f"data_batch_{i}.bin", 20) for i in range(1, 6)] + [("test_batch.bin", 30)]:
    labels = torch.randint(0, 10, (n, 1), generator=g, dtype=torch.uint8)
    pixels = torch.randint(0, 256, (n, 3072), generator=g, dtype=torch.uint8)
    (cifar / name).write_bytes(torch.cat([labels, pixels], 1).numpy().tobytes())
cfg32 = dict(cfg, img_size=32, patch_size=8, num_classes=10)
(work / "cifar.json").write_text(json.dumps(cfg32))
run("init", "--config", "cifar.json", "--out", "cifar_model.safetensors")
ce = json.loads(run("eval", "--model", "cifar_model.safetensors", "--data", cifar).stdout)
check(ce["images"] == 30 and ce["data"]["format"] == "cifar-10" and ce["data"]["preprocessing"]["eval"]["crop_pct"] == 1,
      "eval reads CIFAR-10 binaries")

# bad input: one clear line naming the file, non-zero exit, nothing written
bad_cases = []
empty = work / "bad_empty_class"
shutil.copytree(images, empty)
(empty / "train" / "zebra").mkdir()
bad_cases.append(("an empty class folder", ["eval", "--model", "deit_tiny.safetensors", "--data", empty],
                  str(empty / "train" / "zebra")))
extra = work / "bad_val_class"
shutil.copytree(images, extra)
shutil.copytree(images / "val" / "circles", extra / "val" / "ovals")
bad_cases.append(("a class in val but not in train", ["eval", "--model", "deit_tiny.safetensors", "--data", extra],
                  "class 'ovals'"))
corrupt = work / "bad_corrupt"
shutil.copytree(images, corrupt)
victim = sorted((corrupt / "val" / "vertical").glob("*.jpg"))[0]
victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
bad_cases.append(("a truncated JPEG", ["eval", "--model", "deit_tiny.safetensors", "--data", corrupt], str(victim)))
sixteen = work / "bad_sixteen"
shutil.copytree(images, sixteen)
from PIL import Image  # noqa: E402
deep = sixteen / "val" / "circles" / "deep.png"
Image.fromarray((torch.arange(400, dtype=torch.int32).reshape(20, 20) * 100).numpy(), "I").convert("I;16").save(deep)
bad_cases.append(("a 16-bit PNG", ["eval", "--model", "deit_tiny.safetensors", "--data", sixteen], str(deep)))
noimg = work / "bad_no_images"
(noimg / "train" / "a").mkdir(parents=True)
(noimg / "train" / "a" / "readme.txt").write_text("no images here")
bad_cases.append(("a folder with no images", ["eval", "--model", "deit_tiny.safetensors", "--data", noimg],
                  str(noimg / "train" / "a")))
(cifar / "test_batch.bin").write_bytes((cifar / "test_batch.bin").read_bytes()[:-5])
bad_cases.append(("a CIFAR file of the wrong size", ["eval", "--model", "cifar_model.safetensors", "--data", cifar],
                  str(cifar / "test_batch.bin")))
bad_cases.append(("infer on a truncated image", ["infer", "--model", "deit_tiny.safetensors", "--input", victim,
                                                 "--out", "never.safetensors"], str(victim)))
for what, args, needle in bad_cases:
    r = run(*args, expect_ok=False)
    lines = [l for l in r.stderr.strip().splitlines() if l]
    check(r.returncode != 0 and len(lines) == 1 and needle in lines[0] and not (work / "never.safetensors").exists(),
          f"{what}: {lines[0] if lines else '(no message)'}")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("own data ok")
