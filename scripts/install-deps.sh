#!/usr/bin/env bash
# Installs what sparsimix needs on Debian 12, plus any package names given as arguments
# (e.g. the comparison runner's OpenBLAS and oneDNN). As root it runs apt-get; otherwise it
# prints the one command to run and fails if anything is missing.
set -euo pipefail
pkgs=(g++ cmake make pkg-config
      libeigen3-dev libxsimd-dev nlohmann-json3-dev catch2 libbenchmark-dev zlib1g-dev libcli11-dev
      libjpeg62-turbo-dev libpng-dev   # image folders (data/image_decode.hpp)
      libopenmpi-dev openmpi-bin       # data-parallel training (SPARSIMIX_MPI, sparsimix_mpi)
      dataset-fashion-mnist   # the real data of the examples
      python3-torch           # reference for golden tests only (under /usr/bin/python3)
      python3-torchvision python3-pil  # preprocessing goldens and the image-folder tests
      python3-scipy           # the statistics goldens (permutation test: tests/golden/gen_statistics.py)
      binutils                # objdump, for the runtime-dispatch instruction check
      doxygen                 # the API reference (target sparsimix_docs, test docs.api_reference)
      libopenblas0-pthread    # PyTorch's BLAS: the reference BLAS makes the guide's teacher 4x slower
      "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "sparsimix: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "sparsimix: missing packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
