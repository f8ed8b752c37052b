#!/usr/bin/env bash
# The main job: builds the sparsimix command and runs `sparsimix demo` on Fashion-MNIST.
# Arguments go to `sparsimix demo` (e.g. --budget full, --out runs/mine).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target sparsimix_cli -j "$(nproc)"
exec "$root/build/examples/sparsimix" demo "$@"
