#!/usr/bin/env bash
# Compile time and peak memory of three representative user programs (bench/compile/*.cpp) with
# g++ -O2 -march=native, one at a time (run it on an idle machine; quote the machine).
#   scripts/compile_times.sh [INCLUDE_DIR]   (default: this checkout's include/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
inc="${1:-$root/include}"
out=$(mktemp -d)
for f in empty_main read_checkpoint train_hybrid; do
  /usr/bin/time -f "$f: %e s, %M KB peak" g++ -std=gnu++20 -O2 -march=native -I"$inc" -I/usr/include/eigen3 \
    -c "$root/bench/compile/$f.cpp" -o "$out/$f.o" 2>&1 | tail -1
done
rm -rf "$out"
