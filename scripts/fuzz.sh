#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer (Debian's clang): each target of tests/fuzz/ is built
# with -fsanitize=fuzzer,address,undefined and run for FUZZ_SECONDS (default 60) from the
# committed corpus. A crash stops with the input's path: add it to
# tests/fuzz/corpus/<target>/crash-<what> (every test build replays that folder) and fix it.
# Usage: scripts/fuzz.sh [target...]   (targets: safetensors model_config checkpoint idx image)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" clang libclang-rt-14-dev
seconds=${FUZZ_SECONDS:-60}
out="$root/build-fuzz"
mkdir -p "$out"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors model_config checkpoint idx image)
for t in "${targets[@]}"; do
  echo "== fuzz $t: build"
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/include" -I/usr/include/eigen3 "$root/tests/fuzz/fuzz_$t.cpp" -lz -ljpeg -lpng -o "$out/fuzz_$t"
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  echo "== fuzz $t: ${seconds} s"
  # The working corpus grows in build-fuzz/; the committed seeds are read-only inputs.
  "$out/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" "$root/tests/fuzz/corpus/$t" 2>"$out/fuzz_$t.log" || {
    tail -40 "$out/fuzz_$t.log"
    echo "fuzz $t: FOUND A CRASH: $(ls "$out/artifacts/$t/")" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz_$t.log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets ran clean for ${seconds} s each"
