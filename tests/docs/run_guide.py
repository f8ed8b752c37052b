#!/usr/bin/env python3
"""Runs docs/distillation-guide.md as written and checks the claims it marks *(checked)*.

The shell blocks that follow a `<!-- run: docs.distillation_guide -->` line are concatenated
into one script and run with bash -e in a scratch folder holding what the guide's commands
expect to find at the repository's root: scripts/, tests/ (links to the repository's) and
build/examples/sparsimix (a link to the command under test).
Usage: run_guide.py REPO_ROOT SPARSIMIX_BINARY SCRATCH_DIR
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys


def blocks(md):
    lines = md.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "<!-- run: docs.distillation_guide -->":
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


def main():
    root, binary, scratch = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    script = blocks(root / "docs" / "distillation-guide.md")
    if len(script) < 5:
        fail(f"expected the guide's 5+ command blocks, found {len(script)}")
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
    m = re.search(r"PyTorch test accuracy ([0-9.]+) on 10000 images", r.stdout)
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
    print(f"guide ok: PyTorch {torch_acc:.4f} = sparsimix {teacher['test_accuracy']:.4f}; replaced "
          f"{distilled['replaced']}, student {distilled['test_accuracy']:.4f} ({gap * 100:.2f} pt under); pruned "
          f"{distilled['nonzero_params']} -> {pruned['nonzero_params']} non-zero parameters, "
          f"test {pruned['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
