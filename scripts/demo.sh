#!/usr/bin/env bash
# The main job: builds the sparsimix command (Release, OpenMP on both cores) and runs
# `sparsimix demo` on Fashion-MNIST. Arguments go to `sparsimix demo`
# (e.g. --budget full, --out runs/mine, --seed 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build-demo"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPARSIMIX_WITH_OPENMP=ON \
      -DSPARSIMIX_BUILD_TESTS=OFF -DSPARSIMIX_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target sparsimix_cli -j "$(nproc)"
# Passive waits: OpenMP's spinning collapses when another process shares the cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$build/examples/sparsimix" demo "$@"
