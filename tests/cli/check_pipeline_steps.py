"""Checks the files of `sparsimix train -> sparsity -> distill -> eval` run one by one
(tests/cli/CMakeLists.txt, cli.pipeline_steps): each step read the previous step's files
and wrote its own, with the keys a user scripts against."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def load(name):
    p = out / name
    if not p.is_file():
        sys.exit(f"missing {p}")
    return json.loads(p.read_text())


def prob(d, key, where):
    v = d.get(key)
    if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        sys.exit(f"{where}: {key} = {v!r}, expected a number in [0, 1]")


train = load("teacher.safetensors.json")
for k in ("best_val_accuracy", "test_accuracy"):
    prob(train, k, "train")
sp = load("sparsity/sparsity.json")
depth = len(sp["layers"])
if depth != 3 or sorted(sp["ranking"]) != list(range(depth)):
    sys.exit(f"sparsity: {depth} layers, ranking {sp['ranking']}; expected the tiny teacher's 3 layers ranked")
if not (out / "sparsity" / "sparsity_heatmap.svg").is_file():
    sys.exit("sparsity: no heatmap")
dist = load("student.safetensors.json")
for k in ("teacher_val_accuracy", "val_accuracy", "teacher_test_accuracy", "test_accuracy"):
    prob(dist, k, "distill")
# --select sparsest picks depth/3 = 1 layer, the first of the ranking
if dist["replaced"] != [sp["ranking"][0]] or dist["mixer"] != "mh_lstm":
    sys.exit(f"distill replaced {dist['replaced']} with {dist['mixer']}; expected [{sp['ranking'][0]}] with mh_lstm")
if abs(dist["teacher_test_accuracy"] - train["test_accuracy"]) > 1e-9:
    sys.exit("distill's teacher is not the trained checkpoint (test accuracies differ)")
ev = load("eval.json")
prob(ev, "test_accuracy", "eval")
if ev["images"] != 500 or ev["params"] <= 0:
    sys.exit(f"eval: {ev['images']} images, {ev['params']} params")
# Sizes: params counts what can be non-zero, stored_params the checkpoint's dense layout.
if not ev["nonzero_params"] <= ev["params"] < ev["stored_params"]:
    sys.exit(f"eval: params {ev['params']}, nonzero {ev['nonzero_params']}, stored {ev['stored_params']}")
# Pruning the student's mh_lstm layer: a quarter of its units, reported per block and head,
# and the pruned checkpoint's non-zero count falls by at least their biases and weights.
pr = load("pruned.safetensors.json")
prob(pr, "test_accuracy", "prune")
units = pr["units"]
if pr["pruned_units"] != round(0.25 * units) or abs(pr["pruned_fraction"] - pr["pruned_units"] / units) > 1e-12:
    sys.exit(f"prune: {pr['pruned_units']} of {units} units pruned, expected a quarter")
kept = sum(sum(w) for b in pr["blocks"] for w in b["widths"])
if [b["block"] for b in pr["blocks"]] != dist["replaced"] or kept != units - pr["pruned_units"]:
    sys.exit(f"prune: blocks {pr['blocks']}, expected the replaced layer with {units - pr['pruned_units']} units kept")
pev = load("pruned_eval.json")
if pev.get("blocks") != pr["blocks"] or abs(pev.get("pruned_fraction", -1) - pr["pruned_fraction"]) > 1e-12:
    sys.exit("eval of the pruned model: the pruning read back from the checkpoint differs from prune's")
if "blocks" in ev:
    sys.exit("eval: pruning keys belong to pruned models only")
d_head = 48 // 2  # tiny teacher: C 48, 2 heads
if pev["params"] != ev["params"] or pev["stored_params"] != ev["stored_params"] or \
        pev["nonzero_params"] > ev["nonzero_params"] - pr["pruned_units"] * (4 * d_head + 8 + d_head):
    sys.exit(f"eval of the pruned model: {pev} against {ev}")
# speed: the three models timed side by side, each against the first (the teacher), with the
# sizes eval reports.
spd = load("speed.json")
names = [m.get("model") for m in spd.get("models", [])]
if spd.get("batch") != 16 or spd.get("rounds") != 3 or names != ["teacher.safetensors", "student.safetensors",
                                                                   "pruned.safetensors"]:
    sys.exit(f"speed: {spd}")
for m in spd["models"]:
    if not (m["latency_ms"] > 0 and m["images_per_s"] > 0) or \
            abs(m["speedup"] - m["images_per_s"] / spd["models"][0]["images_per_s"]) > 1e-9:
        sys.exit(f"speed: {m}")
if spd["models"][2]["nonzero_params"] != pev["nonzero_params"] or spd["models"][1]["params"] != ev["params"]:
    sys.exit(f"speed: parameter counts differ from eval's: {spd['models']}")
# distill --prune: two replaced layers, half of their units pruned in one global cut.
dp = load("student_pruned.safetensors.json")
prob(dp, "test_accuracy", "distill --prune")
if dp.get("pruned") is not True or abs(dp["pruned_fraction"] - 0.5) > 1e-12 or \
        [b["block"] for b in dp["blocks"]] != [0, 2] or not dp["nonzero_params"] < dp["params"]:
    sys.exit(f"distill --prune: {dp}")
# A-ViT fine-tune of the teacher: the knobs on record, retention per block in (0, 1] and never
# rising with depth, the same numbers from eval; sparsity still measured for every layer.
avit = load("avit.safetensors.json")
prob(avit, "test_accuracy", "train --halting")
h = avit.get("halting", {})
if h.get("gamma") != 5 or h.get("beta") != 3 or h.get("ponder_weight") != 0.01 or h.get("target_depth") != 2:
    sys.exit(f"train --halting: halting = {h}, expected gamma 5, beta 3, ponder_weight 0.01, target_depth 2")
ret = avit.get("retention_per_layer")
if not isinstance(ret, list) or len(ret) != 3 or any(not 0 < r <= 1 for r in ret) or \
        any(b > a + 1e-12 for a, b in zip(ret, ret[1:])):
    sys.exit(f"train --halting: retention_per_layer = {ret}")
if abs(avit["mean_retention"] - sum(ret) / 3) > 1e-9:
    sys.exit("train --halting: mean_retention is not the mean of retention_per_layer")
aev = load("avit_eval.json")
prob(aev, "mean_retention", "eval of the A-ViT model")
if len(aev.get("retention_per_layer", [])) != 3 or "mean_retention" in ev:
    sys.exit("eval: retention keys belong to halting models only")
if len(load("avit_sparsity/sparsity.json")["layers"]) != 3:
    sys.exit("sparsity of the A-ViT model: expected 3 layers")
rj = load("avit_retention/retention.json")
if rj["images"] != 200 or len(rj["retention_per_layer"]) != 3 or len(rj["depth_histogram"]) != 4 or \
        sum(rj["depth_histogram"]) != 200 * 16:  # tiny budget: 28 / 7 = 4 x 4 patches
    sys.exit(f"retention: {rj}")
for f in ("retention.svg", "halting_depth.svg"):
    text = (out / "avit_retention" / f).read_text()
    if not text.startswith("<svg") or not text.rstrip().endswith("</svg>"):
        sys.exit(f"retention: {f} is not an SVG document")
ad = load("avit_student.safetensors.json")
prob(ad, "test_accuracy", "distill --mask-guided")
if ad.get("mask_guided") is not True or ad["replaced"] != [1] or len(ad.get("retention_per_layer", [])) != 3:
    sys.exit(f"distill --mask-guided: {ad}")
prob(ad, "teacher_mean_retention", "distill --mask-guided")
print("pipeline steps ok")
