#!/usr/bin/python3
"""Checks a `sparsimix demo --avit` run folder against docs/report.md ("demo --avit"): files,
keys, types and ranges; every level has students of each mixer and seed with the same replaced
layers; the A-ViT teachers keep fewer tokens than the dense one."""
import json
import math
import pathlib
import sys


def main():
    run = pathlib.Path(sys.argv[1])
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    errors = []

    def need(cond, msg):
        if not cond:
            errors.append(msg)

    for f in ["config.json", "report.json", "levels.csv", "gap_vs_retention.svg", "retention.svg",
              "halting_depth.svg", "students.jsonl", "teacher_dense.safetensors"]:
        need((run / f).is_file(), f"missing {f}")
    r = json.loads((run / "report.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    a = r["avit"]
    levels = a["levels"]
    need(len(levels) == 1 + len(cfg["avit_levels"]) and len(levels) >= 4, f"{len(levels)} levels")
    need(levels[0]["name"] == "dense" and levels[0]["knob"] is None, "first level is the dense teacher")
    replaced = a["replaced"]
    need(isinstance(replaced, list) and len(replaced) >= 1, "avit.replaced")
    mixers = set()
    for lv in levels:
        name = lv["name"]
        for k in ["name", "knob", "mean_retention", "retention_per_layer", "teacher_test_accuracy", "latency_ms",
                  "images_per_s", "students"]:
            need(k in lv, f"{name}: {k} missing")
        ret = lv["retention_per_layer"]
        need(all(0 <= x <= 1 for x in ret), f"{name}: retention outside [0, 1]")
        need(all(b <= x + 1e-12 for x, b in zip(ret, ret[1:])), f"{name}: retention rises with depth")
        need(abs(lv["mean_retention"] - sum(ret) / len(ret)) < 1e-9, f"{name}: mean_retention")
        need(0 <= lv["teacher_test_accuracy"] <= 1, f"{name}: teacher accuracy")
        need(lv["latency_ms"] > 0 and lv["images_per_s"] > 0, f"{name}: speed")
        if name != "dense":
            need(isinstance(lv["knob"], (int, float)), f"{name}: knob")
            need(lv["mean_retention"] < 1, f"{name}: an A-ViT teacher that keeps every token")
            need((run / f"teacher_{name}.safetensors").is_file(), f"{name}: checkpoint missing")
        per = {}
        for st in lv["students"]:
            for k in ["mixer", "replaced", "seed", "test_accuracy", "gap"]:
                need(k in st, f"{name}: student {k} missing")
            need(st["replaced"] == replaced, f"{name}: a student replaced {st['replaced']}, not {replaced}")
            need(abs(lv["teacher_test_accuracy"] - st["test_accuracy"] - st["gap"]) < 1e-9, f"{name}: gap")
            per.setdefault(st["mixer"], set()).add(st["seed"])
            mixers.add(st["mixer"])
        for m, s in per.items():
            need(len(s) == seeds, f"{name}/{m}: {len(s)} seeds, expected {seeds}")
    need(levels[0]["mean_retention"] == 1, "dense teacher retention")
    claims = r["claims"]["teacher_sparsity_vs_gap"]
    need(set(claims) == mixers and len(mixers) == 2, f"claims for {sorted(claims)}, students {sorted(mixers)}")
    for m, c in claims.items():
        need(isinstance(c["spearman"], (int, float)) and not math.isnan(c["spearman"]), f"claim {m}: spearman")
        need(c["holds"] in (True, False, None), f"claim {m}: holds")
        need(isinstance(c["note"], str) and c["note"], f"claim {m}: note")
    if errors:
        sys.exit("avit report: " + "; ".join(errors))
    print("avit report ok")


if __name__ == "__main__":
    main()
