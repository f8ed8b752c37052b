#!/usr/bin/python3
"""`sparsimix study --budget tiny --seeds 2` end to end (docs/study.md, keys in docs/report.md):
  1. a run writes every documented report key, CSV and plot, with finite statistics: each
     variant has 2 seeds with stage-1 and stage-2 accuracies and a distillation error per
     replaced layer, each interval holds its point estimate, each claim has a verdict;
  2. resuming: with the last two results removed from results.jsonl (as if killed), a rerun
     distils only those two and writes the same report (the bootstrap is seeded);
  3. more seeds extend a finished study (--seeds 3 reuses the first two seeds' results);
  4. bad input: --seeds 0, an unknown --metric, and another budget in the same folder each give
     one line and exit status 1.
usage: check_study.py SPARSIMIX_EXE SCRATCH_DIR
"""
import json
import math
import os
import shutil
import subprocess
import sys


def study(exe, out, log, seeds="2"):
    cmd = [exe, "study", "--budget", "tiny", "--seeds", seeds, "--seed", "1", "--bootstrap", "300", "--out", out]
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def numbers(report):
    """What a rerun must reproduce: every statistic, without the timings."""
    r = json.loads(json.dumps(report))
    for v in r["variants"]:
        for s in v["seeds"]:
            s.pop("seconds")
    return r


def main():
    exe, tmp = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    problems = []
    out = os.path.join(tmp, "study")
    if study(exe, out, os.path.join(tmp, "first.log")) != 0:
        sys.exit("FAIL the first run failed:\n" + open(os.path.join(tmp, "first.log")).read()[-3000:])
    for f in ["config.json", "teacher.safetensors", "results.jsonl", "report.json", "variants.csv", "seeds.csv",
              "differences.csv", "drop_vs_sparsity.svg", "accuracy.svg", "sparsity_heatmap.svg"]:
        if not os.path.exists(os.path.join(out, f)):
            problems.append(f"missing {f}")
    rep = json.load(open(os.path.join(out, "report.json")))
    for k in ["metric", "seeds", "group_size", "bootstrap", "teacher", "sparsity", "variants", "claims", "interaction"]:
        if k not in rep:
            problems.append(f"report.json has no '{k}'")
    if rep["teacher"]["test_accuracy"] < 0.5:
        problems.append(f"teacher test accuracy {rep['teacher']['test_accuracy']} (expected > 0.5)")
    mixers = {v["mixer"] for v in rep["variants"]}
    if mixers != {"mh_lstm", "selective_scan"}:
        problems.append(f"mixers {mixers}")
    # depth 3, groups of 1: every layer once per mixer, each also a group and an extreme.
    if len(rep["variants"]) != 6:
        problems.append(f"{len(rep['variants'])} variants, expected 6 (3 layers x 2 mixers)")
    for v in rep["variants"]:
        for k in ["name", "mixer", "replaced", "roles", "mean_sparsity", "sparsity", "seeds", "test_accuracy_mean",
                  "test_accuracy_sd", "accuracy_drop_mean", "accuracy_drop_sd", "accuracy_drop_ci95", "stage1"]:
            if k not in v:
                problems.append(f"{v.get('name')}: no '{k}'")
        if [s["seed"] for s in v["seeds"]] != [0, 1]:
            problems.append(f"{v['name']}: seeds {[s['seed'] for s in v['seeds']]}")
        for s in v["seeds"]:
            if len(s["distill_mse"]) != len(v["replaced"]) or not all(math.isfinite(x) and x >= 0 for x in s["distill_mse"]):
                problems.append(f"{v['name']} seed {s['seed']}: distill_mse {s['distill_mse']}")
            for k in ["test_accuracy", "stage1_test_accuracy"]:
                if not 0 < s[k] <= 1:
                    problems.append(f"{v['name']} seed {s['seed']}: {k} {s[k]}")
        for stage in [v, v["stage1"]]:
            lo, hi = stage["accuracy_drop_ci95"]
            if not lo <= stage["accuracy_drop_mean"] <= hi:
                problems.append(f"{v['name']}: drop {stage['accuracy_drop_mean']} outside its interval [{lo}, {hi}]")
    for mixer, c in rep["claims"]["sparse_vs_dense"].items():
        for k in ["sparsest_drop", "densest_drop", "difference", "difference_ci95", "verdict", "spearman", "spearman_p",
                  "partial_spearman_depth", "stages"]:
            if k not in c:
                problems.append(f"claim {mixer}: no '{k}'")
        for stage in ["stage1", "stage2"]:
            for metric in ["k90", "cls_k90", "entropy", "top_k_mass"]:
                cm = c["stages"][stage][metric]
                if cm["verdict"] not in ("holds", "fails", "cannot_tell"):
                    problems.append(f"claim {mixer} {stage} {metric}: verdict {cm['verdict']}")
                if not 0 < cm["spearman_p"] <= 1:
                    problems.append(f"claim {mixer} {stage} {metric}: p {cm['spearman_p']}")
    # one map per mixer (the best variant replaces one layer), compared with the teacher's attention
    inter = rep.get("interaction", [])
    if sorted(m["mixer"] for m in inter) != ["mh_lstm", "selective_scan"]:
        problems.append(f"interaction maps for {[m['mixer'] for m in inter]}")
    for m in inter:
        if not (-1 <= m["spearman"] <= 1 and 0 <= m["top_k_overlap"] <= 1 and len(m["per_head"]) == m["heads"]):
            problems.append(f"interaction {m}")
        if not os.path.exists(os.path.join(out, f"interaction_{m['mixer']}_layer{m['layer']}.svg")):
            problems.append(f"no interaction SVG for {m['mixer']} layer {m['layer']}")
    # the standalone command on a kept student
    student = os.path.join(out, "student_mh_lstm_0_seed0.safetensors")
    maps = os.path.join(tmp, "maps")
    p = subprocess.run([exe, "interaction", "--model", student, "--teacher", os.path.join(out, "teacher.safetensors"),
                        "--count", "8", "--out", maps], capture_output=True, text=True)
    if p.returncode != 0:
        problems.append(f"interaction: exit {p.returncode}: {p.stderr[-800:]}")
    else:
        j = json.load(open(os.path.join(maps, "interaction.json")))
        if [l["layer"] for l in j["layers"]] != [0] or j["layers"][0]["spearman"] is None:
            problems.append(f"interaction.json layers {j['layers']}")
        if not os.path.exists(os.path.join(maps, "interaction_layer0.svg")):
            problems.append("interaction: no interaction_layer0.svg")
    want = numbers(rep)

    # 2. resume after a "kill": the last two results are gone.
    lines = open(os.path.join(out, "results.jsonl")).read().splitlines()
    if len(lines) != 12:
        problems.append(f"results.jsonl has {len(lines)} lines, expected 12")
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        f.write("\n".join(lines[:-2]) + "\n" + lines[-2][: len(lines[-2]) // 2])  # and a cut line
    os.remove(os.path.join(out, "report.json"))
    log = os.path.join(tmp, "resume.log")
    if study(exe, out, log) != 0:
        problems.append("the resumed run failed: " + open(log).read()[-1500:])
    else:
        text = open(log).read()
        trained = text.count("after stage 2")
        if trained != 2 or "teacher: reusing" not in text:
            problems.append(f"the resumed run distilled {trained} variants (expected 2) or retrained the teacher")
        if numbers(json.load(open(os.path.join(out, "report.json")))) != want:
            problems.append("the resumed run's report differs from the uninterrupted run's")

    # 3. a third seed reuses the first two.
    log = os.path.join(tmp, "more_seeds.log")
    if study(exe, out, log, seeds="3") != 0:
        problems.append("--seeds 3 on a 2-seed study failed: " + open(log).read()[-1500:])
    else:
        rep3 = json.load(open(os.path.join(out, "report.json")))
        if open(log).read().count("after stage 2") != 6 or any(len(v["seeds"]) != 3 for v in rep3["variants"]):
            problems.append("--seeds 3 did not add exactly one seed per variant")

    # 4. bad input.
    for args, needle in [(["--seeds", "0"], "--seeds"), (["--metric", "k42"], "k42"), (["--budget", "small"], "budget")]:
        log = os.path.join(tmp, "bad.log")
        cmd = [exe, "study", "--budget", "tiny", "--seed", "1", "--out", out] + args
        if "--budget" in args:
            cmd = [exe, "study", "--seed", "1", "--out", out] + args
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines_ = [l for l in p.stderr.splitlines() if l.strip()]
        if p.returncode != 1 or len(lines_) != 1 or needle not in lines_[0] or not lines_[0].startswith("sparsimix:"):
            problems.append(f"{' '.join(args)}: exit {p.returncode}, stderr {p.stderr!r}")

    if problems:
        print("\n".join("FAIL " + p for p in problems))
        sys.exit(1)
    print("study ok")


if __name__ == "__main__":
    main()
