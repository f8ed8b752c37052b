#!/usr/bin/env bash
# Chooses the demo's prune fraction on validation data (issue 13): trains the small demo
# teacher, distils its sparsest third into an mh_lstm student (as the demo does), prunes that
# student at several fractions with `sparsimix prune` and prints each result's validation
# accuracy and non-zero parameters (the test accuracy is in the .json files but is not used to
# choose). Resumable: finished pieces are kept in OUT and skipped.
# Usage: scripts/sweep_prune_fraction.sh [SPARSIMIX] [OUT] [BUDGET] [FRACTIONS...]
set -euo pipefail
bin=${1:-build-demo/examples/sparsimix}
out=${2:-runs/prune-sweep}
budget=${3:-small}
shift $(( $# < 3 ? $# : 3 ))
fractions=("$@")
[ ${#fractions[@]} -eq 0 ] && fractions=(0.5 0.6 0.7 0.75 0.8 0.9)
data=${SPARSIMIX_DATA:-/usr/share/datasets/fashion-mnist}
mkdir -p "$out"
[ -f "$out/teacher.safetensors" ] || "$bin" train --budget "$budget" --seed 0 --data "$data" --out "$out/teacher.safetensors"
[ -f "$out/student.safetensors" ] || "$bin" distill --teacher "$out/teacher.safetensors" --select sparsest \
    --mixer mh_lstm --budget "$budget" --seed 0 --data "$data" --out "$out/student.safetensors"
for f in "${fractions[@]}"; do
  [ -f "$out/pruned_$f.safetensors" ] || "$bin" prune --model "$out/student.safetensors" --fraction "$f" \
      --budget "$budget" --seed 0 --data "$data" --out "$out/pruned_$f.safetensors"
done
/usr/bin/env python3 - "$out" "${fractions[@]}" <<'PY'
import json, sys
out, fr = sys.argv[1], sys.argv[2:]
print("| fraction | validation accuracy | non-zero params | model params |")
print("|---|---|---|---|")
for f in fr:
    j = json.load(open(f"{out}/pruned_{f}.safetensors.json"))
    print(f"| {f} | {j['val_accuracy']:.4f} | {j['nonzero_params']:,} | {j['params']:,} |")
PY
