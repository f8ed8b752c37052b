#!/usr/bin/env bash
# sparsimix vs PyTorch 1.13 (Debian), oneDNN's LSTM primitive and OpenBLAS sgemm, in one run.
#
#   bench/compare/run.sh            # from the repository root or anywhere
#
# 1. dependencies: scripts/install-deps.sh, plus the comparison-only packages below (as root
#    it installs them with apt-get; otherwise it names the command and stops);
# 2. a Release build with OpenMP in build-bench/ (override: BUILD_DIR), targets bench_attention,
#    bench_mh_lstm, bench_selective_scan, bench_scan_kernel, bench_vit (JOBS parallel jobs, default 1);
# 3. g++ builds bench/compare/sgemm_peak.cpp (-lopenblas) and dnnl_lstm.cpp (-ldnnl);
# 4. every program runs with the thread count pinned in OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
#    (and torch.set_num_threads / sparsimix::set_num_threads inside) for T = 1 and 2;
# 5. bench/compare/report.py writes docs/performance.md (tables, machine, this command) from
#    the raw JSON kept in bench/results/.
# Environment: REPS (benchmark repetitions, default 3), QUICK=1 (skip the long shapes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
RESULTS="$ROOT/bench/results"
JOBS="${JOBS:-1}"
REPS="${REPS:-3}"
PY=/usr/bin/python3  # Debian's torch lives only under this interpreter

# Comparison-only packages on top of the project's own.
"$ROOT/scripts/install-deps.sh" libopenblas-dev libdnnl-dev python3-torch python3-numpy

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSPARSIMIX_WITH_OPENMP=ON \
  -DSPARSIMIX_BUILD_TESTS=OFF -DSPARSIMIX_BUILD_EXAMPLES=OFF -DSPARSIMIX_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target bench_attention bench_mh_lstm bench_selective_scan bench_scan_kernel bench_vit
mkdir -p "$BUILD_DIR/compare" "$RESULTS"
g++ -O2 -march=native -o "$BUILD_DIR/compare/sgemm_peak" "$ROOT/bench/compare/sgemm_peak.cpp" -lopenblas
g++ -O2 -march=native -o "$BUILD_DIR/compare/dnnl_lstm" "$ROOT/bench/compare/dnnl_lstm.cpp" -ldnnl

rm -f "$RESULTS"/*.json
full=1
[ "${QUICK:-0}" = 1 ] && full=0
{ uptime; ps -eo pcpu,comm --sort=-pcpu | head -4 | tail -3 | tr -s " " | paste -sd";" -; } > "$RESULTS/load_before.txt"
B="$BUILD_DIR/bench"
gbench() {  # gbench T name binary filter
  local t=$1 name=$2 bin=$3 filter=$4
  echo "compare: $name T=$t" >&2
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t SPARSIMIX_BENCH_FULL=$full OMP_WAIT_POLICY=PASSIVE \
    "$B/$bin" --benchmark_filter="$filter" --benchmark_repetitions="$REPS" --benchmark_min_time=0.2 \
    --benchmark_report_aggregates_only=true --benchmark_format=console \
    --benchmark_out="$RESULTS/sparsimix_${name}_T$t.json" --benchmark_out_format=json >&2
}
for t in 1 2; do
  gbench $t attention bench_attention 'BM_Attention_Forward/|BM_Attention_ForwardBackward/'
  gbench $t mh_lstm bench_mh_lstm 'BM_MultiHeadLSTM'
  gbench $t selective_scan bench_selective_scan 'BM_SelectiveScan_Forward/|BM_SelectiveScan_ForwardBackward/'
done
gbench 1 scan_kernel bench_scan_kernel '.'
# bench_vit sets its own thread count per benchmark (T:1 / T:2 in the names).
gbench 2 vit bench_vit '.'

for t in 1 2; do
  echo "compare: OpenBLAS sgemm, oneDNN LSTM T=$t" >&2
  # OpenBLAS 0.3.21 detects this Zen 5 as Zen (AVX2 kernels); SkylakeX forces its AVX-512
  # kernels. The practical peak is the better of the two.
  OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$BUILD_DIR/compare/sgemm_peak" $t > "$RESULTS/sgemm_default_T$t.json"
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$BUILD_DIR/compare/sgemm_peak" $t \
    > "$RESULTS/sgemm_skylakex_T$t.json"
  for bn in "1 197" "8 197"; do
    set -- $bn
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$BUILD_DIR/compare/dnnl_lstm" "$1" "$2" 3 64 15 \
      > "$RESULTS/dnnl_lstm_B$1_N$2_T$t.json"
  done
  echo "compare: PyTorch T=$t" >&2
  fullflag=()
  [ $full = 1 ] && fullflag=(--full)
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PY" "$ROOT/bench/compare/torch_bench.py" --threads $t \
    --out "$RESULTS/torch_T$t.json" "${fullflag[@]}"
done
# PyTorch again with OpenBLAS's AVX-512 kernels forced: Debian's OpenBLAS 0.3.21 runs its
# AVX2 kernels on this CPU by default, which halves PyTorch's GEMM speed (see the sgemm table).
echo "compare: PyTorch T=1, OPENBLAS_CORETYPE=SkylakeX" >&2
OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PY" "$ROOT/bench/compare/torch_bench.py" \
  --threads 1 --out "$RESULTS/torch_skx_T1.json"
uptime > "$RESULTS/load_after.txt"
lscpu > "$RESULTS/lscpu.txt"
"$PY" "$ROOT/bench/compare/report.py" --results "$RESULTS" --out "$ROOT/docs/performance.md" \
  --command "bench/compare/run.sh${QUICK:+ (QUICK=$QUICK)}"
echo "compare: wrote $ROOT/docs/performance.md and $RESULTS/*.json" >&2
