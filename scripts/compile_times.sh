#!/usr/bin/env bash
# Compile time and peak memory of three representative user programs (bench/compile/*.cpp) with
# g++ -O2 -march=native, one at a time (run it on an idle machine; quote the machine), in both
# modes: header-only, and against sparsimix::compiled (-DSPARSIMIX_EXTERN_TEMPLATES: the float
# and double instantiations come from the library; docs/build-time.md).
#   scripts/compile_times.sh [INCLUDE_DIR]   (default: this checkout's include/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
inc="${1:-$root/include}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for mode in header-only compiled; do
  defs=()
  [[ $mode == compiled ]] && defs=(-DSPARSIMIX_EXTERN_TEMPLATES)
  for f in empty_main read_checkpoint train_hybrid; do
    /usr/bin/time -f "$mode $f: %e s, %M KB peak" g++ -std=gnu++20 -O2 -march=native "${defs[@]}" -I"$inc" \
      -I/usr/include/eigen3 -c "$root/bench/compile/$f.cpp" -o "$out/$f.o" 2>&1 | tail -1
  done
done
