#!/usr/bin/python3
"""Checks a `sparsimix demo` run folder against docs/formats.md section 4 (keys, types, ranges)
and that the trained teacher beats chance (0.1 on Fashion-MNIST) by a wide margin."""
import json
import pathlib
import sys


def main():
    run = pathlib.Path(sys.argv[1])
    min_teacher = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    errors = []

    def need(cond, msg):
        if not cond:
            errors.append(msg)

    for f in ["config.json", "report.json", "sparsity.csv", "variants.csv", "sparsity_heatmap.svg",
              "drop_vs_sparsity.svg", "accuracy.svg", "params.svg", "latency.svg", "pareto.svg", "teacher.safetensors"]:
        need((run / f).is_file(), f"missing {f}")
    r = json.loads((run / "report.json").read_text())
    json.loads((run / "config.json").read_text())
    t = r["teacher"]
    for k in ["test_accuracy", "params", "nonzero_params", "stored_params", "latency_ms", "images_per_s",
              "multiply_adds", "train_seconds"]:
        need(k in t, f"teacher.{k} missing")
    need(t.get("images_per_s", 0) > 0 and t.get("latency_ms", 0) > 0, "teacher timing not positive")
    need(0 <= t["test_accuracy"] <= 1, "teacher.test_accuracy not a fraction")
    need(t["test_accuracy"] >= min_teacher, f"teacher accuracy {t['test_accuracy']} below {min_teacher} (chance 0.1)")
    s = r["sparsity"]
    need(s["metric"] == "k90", "sparsity.metric")
    depth = len(s["layers"])
    need(sorted(s["ranking"]) == list(range(depth)), "sparsity.ranking is not a permutation of the layers")
    for layer in s["layers"]:
        for k in ["layer", "entropy", "top_k_mass", "k90", "threshold", "heads"]:
            need(k in layer, f"sparsity.layers[].{k} missing")
        need(0 < layer["k90"] <= 1, "k90 out of (0, 1]")
        need(len(layer["heads"]) >= 1, "no heads")
    need(len(r["variants"]) >= 4, "too few variants")
    need(sum(1 for v in r["variants"] if v.get("pruned")) == 3, "expected the sparsest, densest and all-layer mh_lstm pruned")
    for mixer in ["mh_lstm", "selective_scan"]:
        every = [v for v in r["variants"] if v["mixer"] == mixer and v["selection"] == "all" and not v["pruned"]]
        need(len(every) == 1 and every[0]["replaced"] == list(range(depth)), f"{mixer}: no variant replacing every layer")
    for v in r["variants"]:
        for k in ["name", "mixer", "replaced", "selection", "mean_sparsity", "test_accuracy", "accuracy_drop", "params",
                  "nonzero_params", "stored_params", "latency_ms", "images_per_s", "multiply_adds", "speedup_allowed",
                  "speedup_measured", "pruned", "pruned_fraction"]:
            need(k in v, f"variants[].{k} missing")
        need(v.get("multiply_adds", 0) > 0 and
             abs(v.get("speedup_allowed", 0) * v.get("multiply_adds", 0) - t.get("multiply_adds", -1)) < 1e-6 * t["multiply_adds"],
             f"{v['name']}: speedup_allowed is not teacher / variant multiply-adds")
        need(abs(v.get("speedup_measured", 0) * t["images_per_s"] - v.get("images_per_s", -1)) < 1e-6 * v["images_per_s"],
             f"{v['name']}: speedup_measured is not variant / teacher images/s")
        need(v.get("nonzero_params", 0) <= v.get("params", -1) <= v.get("stored_params", -1), "sizes out of order")
        need(v.get("images_per_s", 0) > 0, f"{v['name']}: images_per_s not positive")
        if v.get("pruned"):
            # A pruned variant is its unpruned sibling with a fraction of the LSTM units gone.
            base = [u for u in r["variants"] if u["name"] == v["name"].removesuffix("/pruned")]
            need(v["mixer"] == "mh_lstm" and len(base) == 1 and 0 < v["pruned_fraction"] < 1,
                 f"{v['name']}: not a pruned mh_lstm variant")
            if base:
                need(v["nonzero_params"] < base[0]["nonzero_params"] and v["params"] == base[0]["params"],
                     f"{v['name']}: pruning did not shrink the non-zero count")
                need(v["multiply_adds"] < base[0]["multiply_adds"], f"{v['name']}: pruning did not cut multiply-adds")
        else:
            need(v.get("pruned_fraction") == 0, f"{v['name']}: pruned_fraction without pruning")
        need(v["selection"] in ("sparsest", "densest", "group", "all"), "bad selection")
        need(abs(t["test_accuracy"] - v["test_accuracy"] - v["accuracy_drop"]) < 1e-9, "accuracy_drop inconsistent")
        need(0 <= v["test_accuracy"] <= 1, "variant accuracy not a fraction")
    claims = r["claims"]["sparse_vs_dense"]
    for mixer in ["mh_lstm", "selective_scan"]:
        need(mixer in claims, f"claims.sparse_vs_dense.{mixer} missing")
        c = claims.get(mixer, {})
        for k in ["sparsest_drop", "densest_drop", "holds", "spearman"]:
            need(k in c, f"claims.{mixer}.{k} missing")
        if "holds" in c:
            need(c["holds"] == (c["sparsest_drop"] < c["densest_drop"]), "holds inconsistent")
            need(-1 <= c["spearman"] <= 1, "spearman out of range")
    for e in errors:
        print("FAIL", e)
    print(f"report {run}: {'ok' if not errors else str(len(errors)) + ' problems'}; teacher test accuracy "
          f"{t['test_accuracy']:.4f}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
