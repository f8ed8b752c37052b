#!/usr/bin/python3
"""Writes every golden file the C++ tests read, using Debian's PyTorch.

Run with /usr/bin/python3 (the interpreter that has torch). Each module gen_*.py next to
this file defines generate(out_dir); this script calls all of them.
"""
import argparse
import importlib.util
import pathlib
import sys

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="folder to write the golden files into")
    ap.add_argument("--only", default=None, help="run only gen_<ONLY>.py")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    here = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    torch.set_num_threads(1)
    for path in sorted(here.glob("gen_*.py")):
        name = path.stem[len("gen_"):]
        if args.only and name != args.only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.generate(out)
        print(f"golden: {name} -> {out}")


if __name__ == "__main__":
    main()
