#!/usr/bin/python3
"""Every row of the bad-input table in docs/errors.md, run as written: the command must exit
with status 1 and print exactly the row's message as its only line on stderr, and it must not
write its output. Then the side effects the table cannot show: what --out names survives
(devices, symlinks, FIFOs, modes, hard links), a failing `train` leaves the old checkpoint, a
killed `demo` leaves the old run folder.

usage: check_errors.py SPARSIMIX_EXE DOCS_ERRORS_MD SCRATCH_DIR
"""
import json
import os
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import st  # noqa: E402  (the golden files' safetensors writer)

TINY = {"img_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 3, "embed_dim": 8, "depth": 2,
        "num_heads": 2, "mlp_ratio": 2.0, "ln_eps": 1e-6, "mixers": [{"kind": "attention"}, {"kind": "attention"}],
        "halting": None}


def write_config(path, **changes):
    c = dict(TINY)
    c.update(changes)
    with open(path, "w") as f:
        json.dump(c, f)


def make_fixtures(exe, tmp):
    """The files the table's commands name, in {tmp}."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "dir"))
    with open(os.path.join(tmp, "file"), "w") as f:
        f.write("not a folder\n")
    write_config(os.path.join(tmp, "tiny.json"))
    write_config(os.path.join(tmp, "lstm.json"), img_size=28, patch_size=7, num_classes=10,
                 mixers=[{"kind": "mh_lstm"}, {"kind": "mh_lstm"}])  # fits Fashion-MNIST
    write_config(os.path.join(tmp, "huge_img.json"), img_size=2 ** 40)
    write_config(os.path.join(tmp, "wide.json"), embed_dim=60000, num_heads=1)
    write_config(os.path.join(tmp, "deep.json"), depth=100000, mixers=[{"kind": "attention"}] * 100000)
    with open(os.path.join(tmp, "garbage.json"), "wb") as f:
        f.write(b"\x8f\x01{\xff")
    for name, cfg in (("tiny", "tiny.json"), ("lstm", "lstm.json")):
        subprocess.run([exe, "init", "--config", os.path.join(tmp, cfg), "--out",
                        os.path.join(tmp, name + ".safetensors")], check=True, capture_output=True)
    # A safetensors header of binary bytes (a random file with a small length field).
    with open(os.path.join(tmp, "binary_header.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 8) + b"\x8f\x00\xfe{\x01\x02\x03\x04")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 8, 8, generator=g)
    st.save(os.path.join(tmp, "images.safetensors"), {"images": images, "labels": torch.tensor([0, 2])})
    st.save(os.path.join(tmp, "no_images.safetensors"), {"pixels": images})
    st.save(os.path.join(tmp, "empty.safetensors"), {"images": torch.zeros(0, 1, 8, 8),
                                                     "labels": torch.zeros(0, dtype=torch.int64)})
    st.save(os.path.join(tmp, "float_labels.safetensors"), {"images": images, "labels": torch.tensor([0.0, 1.5])})
    huge = images.clone()
    huge[0, 0, 0, 0] = 1e30
    huge[1, 0, 0, 0] = -1e30
    st.save(os.path.join(tmp, "overflow.safetensors"), {"images": huge, "labels": torch.tensor([0, 2])})
    # A config asking for gigabytes of weights over a 4-byte tensor.
    big = dict(TINY, embed_dim=4096, num_heads=64, depth=16, mlp_ratio=4.0,
               mixers=[{"kind": "attention"}] * 16)
    st.save(os.path.join(tmp, "huge_config.safetensors"), {"x": torch.zeros(1)},
            metadata={"sparsimix.config": json.dumps(big)})
    # A Fashion-MNIST folder whose test images file is a folder.
    os.makedirs(os.path.join(tmp, "fm", "t10k-images-idx3-ubyte.gz"))
    with open(os.path.join(tmp, "fm", "t10k-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"")
    # An A-ViT run folder holding another sweep.
    os.makedirs(os.path.join(tmp, "other_sweep"))
    with open(os.path.join(tmp, "other_sweep", "config.json"), "w") as f:
        json.dump({"command": "demo --avit", "budget": "small"}, f)


def unquote(cell):
    """A code span's text: `x`, or `` x `` when x holds backticks."""
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3]
    if cell.startswith("`") and cell.endswith("`"):
        return cell[1:-1]
    raise ValueError(f"not a code span: {cell}")


def table_rows(md_path):
    """(case, command, message) of each row of the table under '## Bad input'."""
    rows, in_table = [], False
    with open(md_path) as f:
        for line in f:
            if line.startswith("## "):
                in_table = line.strip() == "## Bad input"
                continue
            if not in_table or not line.startswith("|"):
                continue
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if len(cells) != 3 or cells[0] in ("case", "") or set(cells[0]) <= set("-: "):
                continue
            cmd, msg = (unquote(c) for c in cells[1:])
            rows.append((cells[0], cmd, msg))
    return rows


def run_row(exe, tmp, data, case, cmd, msg):
    subst = lambda s: s.replace("{tmp}", tmp).replace("{data}", data)
    argv = [subst(a) for a in cmd.split()]
    assert argv[0] == "sparsimix", f"{case}: a command starts with 'sparsimix'"
    argv[0] = exe
    outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"]
    before = {o: os.path.exists(o) for o in outs}
    r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=300)
    lines = r.stderr.strip().splitlines()
    expected = subst(msg)
    problems = []
    if r.returncode != 1:
        problems.append(f"exit status {r.returncode}, expected 1")
    if lines != [expected]:
        problems.append(f"stderr {r.stderr.strip()!r}, expected {expected!r}")
    for o in outs:
        if not before[o] and os.path.exists(o) and not o.startswith("/dev/"):
            problems.append(f"wrote {o}")
    return problems


def side_effects(exe, tmp):
    """What the table cannot show. Returns a list of problems."""
    p = []
    model, images = os.path.join(tmp, "tiny.safetensors"), os.path.join(tmp, "images.safetensors")
    infer = lambda out: subprocess.run([exe, "infer", "--model", model, "--input", images, "--out", out],
                                       capture_output=True, text=True)
    # /dev/full stays a device (as root, a rename over it deleted the node).
    if os.path.exists("/dev/full"):
        infer("/dev/full")
        if not stat.S_ISCHR(os.stat("/dev/full").st_mode):
            p.append("/dev/full is no longer a character device")
    # A symlink stays a link; the file it names gets the logits.
    real, link = os.path.join(tmp, "real.safetensors"), os.path.join(tmp, "link.safetensors")
    with open(real, "w") as f:
        f.write("old")
    os.symlink(real, link)
    r = infer(link)
    if r.returncode != 0 or not os.path.islink(link) or os.path.getsize(real) < 16:
        p.append(f"--out through a symlink: rc {r.returncode}, link kept {os.path.islink(link)}")
    # The mode of an existing file is kept.
    moded = os.path.join(tmp, "moded.safetensors")
    with open(moded, "w") as f:
        f.write("old")
    os.chmod(moded, 0o640)
    infer(moded)
    if stat.S_IMODE(os.stat(moded).st_mode) != 0o640:
        p.append(f"mode {oct(stat.S_IMODE(os.stat(moded).st_mode))} after rewrite, expected 0o640")
    # Hard links keep sharing the new content.
    a, b = os.path.join(tmp, "hard_a.safetensors"), os.path.join(tmp, "hard_b.safetensors")
    with open(a, "w") as f:
        f.write("old")
    os.link(a, b)
    infer(a)
    if os.stat(a).st_ino != os.stat(b).st_ino or os.path.getsize(b) < 16:
        p.append("a hard-linked --out was detached from its other name")
    # A FIFO is written through, and stays a FIFO.
    fifo = os.path.join(tmp, "out.fifo")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    infer(fifo)
    reader.join(timeout=60)
    if not stat.S_ISFIFO(os.stat(fifo).st_mode) or not got or len(got[0]) < 16:
        p.append("--out FIFO was not written through")
    # A diverging `train` (NaN loss) exits 1 and leaves the old checkpoint and no OUT.json.
    old = os.path.join(tmp, "keep.safetensors")
    shutil.copy(model, old)
    before = open(old, "rb").read()
    r = subprocess.run([exe, "train", "--config", os.path.join(tmp, "tiny.json"), "--budget", "tiny", "--steps", "8",
                        "--lr", "1e30", "--out", old], capture_output=True, text=True)
    if r.returncode != 1 or open(old, "rb").read() != before or os.path.exists(old + ".json"):
        p.append(f"a failing train touched its --out (rc {r.returncode}, {r.stderr.strip()[-200:]!r})")
    # A full disk, simulated by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so the
    # write fails with EFBIG instead of killing the process): one line naming the file and the
    # reason, exit 1, the old file byte for byte, no temporary left beside it.
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    full = os.path.join(tmp, "full_disk")
    os.makedirs(full)
    kept = os.path.join(full, "kept.safetensors")
    shutil.copy(model, kept)
    before = open(kept, "rb").read()
    r = subprocess.run([exe, "init", "--config", os.path.join(tmp, "lstm.json"), "--out", kept], capture_output=True,
                       text=True, preexec_fn=small_files)
    want = f"sparsimix: io_error: writing '{kept}' failed: File too large; the file that was there is unchanged"
    if r.returncode != 1 or r.stderr.strip() != want:
        p.append(f"a write past the file-size limit: rc {r.returncode}, stderr {r.stderr.strip()!r}, expected {want!r}")
    if open(kept, "rb").read() != before or os.listdir(full) != ["kept.safetensors"]:
        p.append(f"a failed write changed its folder: {os.listdir(full)}")
    # A killed demo leaves the old run folder as it was (the new run sits in OUT.partial).
    run = os.path.join(tmp, "demo_run")
    os.makedirs(run)
    with open(os.path.join(run, "report.json"), "w") as f:
        f.write('{"old": true}\n')
    proc = subprocess.Popen([exe, "demo", "--budget", "tiny", "--out", run], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(run + ".partial", "config.json")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if sorted(os.listdir(run)) != ["report.json"] or open(os.path.join(run, "report.json")).read() != '{"old": true}\n':
        p.append(f"a killed demo changed the old run folder: {sorted(os.listdir(run))}")
    return p


def main():
    exe, md, tmp = os.path.abspath(sys.argv[1]), sys.argv[2], os.path.abspath(sys.argv[3])
    data = "/usr/share/datasets/fashion-mnist"
    make_fixtures(exe, tmp)
    rows = table_rows(md)
    failures = 0
    for case, cmd, msg in rows:
        problems = run_row(exe, tmp, data, case, cmd, msg)
        print(("ok   " if not problems else "FAIL ") + case + "".join("\n     " + x for x in problems))
        failures += bool(problems)
    for x in side_effects(exe, tmp):
        print("FAIL side effect: " + x)
        failures += 1
    print(f"{len(rows)} table rows and the side-effect checks: {failures} failed")
    if len(rows) < 30:
        print("FAIL: the table has fewer rows than docs/errors.md should hold (parser broken?)")
        failures += 1
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
