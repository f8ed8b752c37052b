#!/usr/bin/env python3
"""Runs a guide of docs/ as written and checks the claims it marks *(checked)*.

The shell blocks that follow a `<!-- run: docs.<guide> -->` line of the guide's file (GUIDES)
are concatenated into one script and run with bash -e in a scratch folder holding what
the guide's commands expect to find at the repository's root: scripts/, tests/ (links to the
repository's) and build/examples/sparsimix (a link to the command under test).
Guides: distillation_guide (the default), own_data_guide.
Usage: run_guide.py REPO_ROOT SPARSIMIX_BINARY SCRATCH_DIR [GUIDE]
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys


def blocks(md, guide):
    lines = md.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == f"<!-- run: docs.{guide} -->":
            if i + 1 >= len(lines) or lines[i + 1].strip() != "```sh":
                sys.exit(f"{md}:{i + 1}: a run marker not followed by a ```sh block")
            j = i + 2
            while lines[j].strip() != "```":
                j += 1
            out.append("\n".join(lines[i + 2:j]))
    return out


def fail(msg):
    print(f"FAILED: {msg}")
    sys.exit(1)


def check_distillation_guide(scratch, output):
    m = re.search(r"PyTorch test accuracy ([0-9.]+) on 10000 images", output)
    if not m:
        fail("train_timm_vit.py printed no test accuracy")
    torch_acc = float(m.group(1))
    teacher = json.loads((scratch / "teacher_eval.json").read_text())
    if teacher["images"] != 10000 or abs(teacher["test_accuracy"] - torch_acc) > 1.5e-4:
        fail(f"sparsimix eval gives {teacher['test_accuracy']} on {teacher['images']} images, PyTorch {torch_acc}")
    distilled = json.loads((scratch / "distill.json").read_text())
    gap = distilled["teacher_test_accuracy"] - distilled["test_accuracy"]
    if not gap < 0.10:
        fail(f"the student is {gap * 100:.1f} points under the teacher (guide: within 10)")
    pruned = json.loads((scratch / "pruned_eval.json").read_text())
    if not pruned["nonzero_params"] < distilled["nonzero_params"]:
        fail(f"pruning left {pruned['nonzero_params']} non-zero parameters, the student had {distilled['nonzero_params']}")
    return (f"PyTorch {torch_acc:.4f} = sparsimix {teacher['test_accuracy']:.4f}; replaced "
            f"{distilled['replaced']}, student {distilled['test_accuracy']:.4f} ({gap * 100:.2f} pt under); pruned "
            f"{distilled['nonzero_params']} -> {pruned['nonzero_params']} non-zero parameters, "
            f"test {pruned['test_accuracy']:.4f}")


def check_own_data_guide(scratch, output):
    import torch
    own = scratch / "own"

    def tensors(path):
        import struct
        b = path.read_bytes()
        n = struct.unpack("<Q", b[:8])[0]
        header = json.loads(b[8:8 + n])
        meta = header.pop("__metadata__", {})
        return meta, {k: torch.frombuffer(bytearray(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]),
                                          dtype=torch.float32).reshape(v["shape"]) for k, v in header.items()}
    ref_meta, ref = tensors(own / "pytorch_val.safetensors")
    got_meta, got = tensors(own / "val_logits.safetensors")
    if got_meta.get("files") != ref_meta["files"] or not torch.equal(got["images"], ref["images"]):
        fail("infer's files or preprocessed images differ from PyTorch's")
    d = (got["logits"] - ref["logits"]).abs().max().item()
    if not d < 1e-4:
        fail(f"infer's logits differ from PyTorch's by {d}")
    ev = json.loads((own / "eval.json").read_text())
    if abs(ev["test_accuracy"] - float(ref_meta["accuracy"])) > 1e-9 or abs(ev["test_loss"] - float(ref_meta["loss"])) > 1e-5:
        fail(f"eval gives {ev['test_accuracy']} / {ev['test_loss']}, PyTorch {ref_meta['accuracy']} / {ref_meta['loss']}")
    di = json.loads((own / "distill.json").read_text())
    if len(di["replaced"]) != 4:
        fail(f"distill replaced {di['replaced']}, the guide says the four sparsest")
    tr = json.loads((own / "small_vit.safetensors.json").read_text())
    if not tr["test_accuracy"] > 0.5:
        fail(f"the small ViT reaches {tr['test_accuracy']} on val/ (guide: above 50%)")
    return (f"infer = PyTorch (logits within {d:.1e}), eval accuracy {ev['test_accuracy']}; distilled "
            f"{di['replaced']}; small ViT {tr['test_accuracy']:.4f} on val/, {tr['images_per_second']:.0f} trained/s, "
            f"{tr['decode_images_per_second']:.0f} decoded/s, waited {tr['data_wait_seconds']:.2f} s")


GUIDES = {"distillation_guide": ("distillation-guide.md", 5, check_distillation_guide),
          "own_data_guide": ("own-data.md", 3, check_own_data_guide)}


def main():
    root, binary, scratch = (pathlib.Path(a).resolve() for a in sys.argv[1:4])
    guide = sys.argv[4] if len(sys.argv) > 4 else "distillation_guide"
    if guide not in GUIDES:
        fail(f"unknown guide {guide} (known: {', '.join(GUIDES)})")
    file, min_blocks, check = GUIDES[guide]
    md = root / "docs" / file
    script = blocks(md, guide)
    if len(script) < min_blocks:
        fail(f"expected the guide's {min_blocks}+ command blocks, found {len(script)}")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "build" / "examples").mkdir(parents=True)
    for d in ("scripts", "tests"):
        os.symlink(root / d, scratch / d)
    os.symlink(binary, scratch / "build" / "examples" / "sparsimix")
    text = "set -euo pipefail\n" + "\n".join(script) + "\n"
    (scratch / "guide.sh").write_text(text)
    r = subprocess.run(["bash", "guide.sh"], cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(r.stdout)
    if r.returncode != 0:
        fail(f"the guide's commands exited with {r.returncode}")
    print("guide ok: " + check(scratch, r.stdout))


if __name__ == "__main__":
    main()
