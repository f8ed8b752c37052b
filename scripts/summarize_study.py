#!/usr/bin/env python3
"""Prints the tables of a `sparsimix study` run folder as Markdown (the tables of
docs/results/study-*/README.md are this script's output):

    python3 scripts/summarize_study.py RUN_DIR

1. per variant: replaced layers, roles, sparsity, drop after stage 1 and stage 2 (mean and sd
   over seeds, 95% paired-bootstrap interval over test images), distillation error;
2. per mixer, stage and metric: the sparsest-vs-densest claim (difference, interval,
   verdict), Spearman over the single layers with its permutation p-value, the partial
   Spearman controlling for depth, and the depth-matched pairs;
3. the interaction maps' similarity to the teacher's attention;
4. the run's time: teacher plus the sum of every variant-seed's seconds."""
import csv
import json
import pathlib
import sys


def pct(x):
    return f"{100 * x:+.2f}"


def ci(c):
    return f"[{100 * c[0]:+.2f}, {100 * c[1]:+.2f}]"


def main():
    run = pathlib.Path(sys.argv[1])
    r = json.loads((run / "report.json").read_text())
    t = r["teacher"]
    print(f"Teacher: test accuracy {t['test_accuracy']:.4f} on {t['test_images']} images, "
          f"validation {t['val_accuracy']:.4f}; seeds {r['seeds']}, bootstrap {r['bootstrap']}, "
          f"primary metric {r['metric']}.\n")

    mse = {}
    seconds = 0.0
    with open(run / "seeds.csv") as f:
        for row in csv.DictReader(f):
            mse.setdefault(row["name"], []).append([float(x) for x in row["distill_mse"].split()])
            seconds += float(row["seconds"])

    print("| variant | layers | roles | k90 sparsity | stage-1 drop (sd) | stage-1 95% CI | "
          "drop (sd) | 95% CI | distill MSE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v in r["variants"]:
        s1 = v["stage1"]
        m = mse.get(v["name"], [])
        mean_mse = sum(sum(x) / len(x) for x in m) / len(m) if m else float("nan")
        print(f"| {v['name']} | {','.join(map(str, v['replaced']))} | {' '.join(v['roles'])} | "
              f"{v['sparsity']['k90']:.3f} | {pct(s1['accuracy_drop_mean'])} ({100 * s1['accuracy_drop_sd']:.2f}) | "
              f"{ci(s1['accuracy_drop_ci95'])} | {pct(v['accuracy_drop_mean'])} ({100 * v['accuracy_drop_sd']:.2f}) | "
              f"{ci(v['accuracy_drop_ci95'])} | {mean_mse:.4g} |")
    print("\nDrops in points of test accuracy (teacher - student); sd over seeds; intervals over test images.\n")

    print("| mixer | stage | metric | sparsest | densest | difference | 95% CI | verdict | "
          "Spearman (single layers) | p | partial (depth) | sparser cheaper / depth pairs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mixer, c in r["claims"]["sparse_vs_dense"].items():
        for stage, per_metric in c["stages"].items():
            for metric, x in per_metric.items():
                partial = "n/a" if x["partial_spearman_depth"] is None else f"{x['partial_spearman_depth']:+.2f}"
                dm = x["depth_matched"]
                print(f"| {mixer} | {stage} | {metric} | {','.join(map(str, x['sparsest']))} | "
                      f"{','.join(map(str, x['densest']))} | {pct(x['difference'])} | {ci(x['difference_ci95'])} | "
                      f"{x['verdict']} | {x['spearman']:+.2f} | {x['spearman_p']:.3f} | {partial} | "
                      f"{dm['sparser_cheaper']} / {dm['pairs']} |")
    print()

    if r.get("interaction"):
        print("| interaction map | layer | Spearman vs attention | top-k overlap |")
        print("|---|---|---|---|")
        for m in r["interaction"]:
            print(f"| {m['variant']} | {m['layer']} | {m['spearman']:+.3f} | {m['top_k_overlap']:.3f} |")
        print()

    teacher_seconds = None
    cfg = json.loads((run / "config.json").read_text())
    for line in (run / "results.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("key") == "teacher":
            teacher_seconds = e["result"].get("seconds")
    total = seconds + (teacher_seconds or 0)
    print(f"Time: {seconds / 3600:.2f} h over {sum(len(x) for x in mse.values())} variant-seeds"
          + (f" + teacher {teacher_seconds / 60:.1f} min" if teacher_seconds else " (teacher time not recorded)")
          + f" = {total / 3600:.2f} h; threads {cfg.get('threads', '?')}.")


if __name__ == "__main__":
    main()
