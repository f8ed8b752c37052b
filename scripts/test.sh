#!/usr/bin/env bash
# Builds and runs the whole test suite. Usage: scripts/test.sh [--sanitize | --tsan]
#   --sanitize  a second build (build-asan/) with -fsanitize=address,undefined
#   --tsan      the concurrency tests (test_concurrency) under ThreadSanitizer (build-tsan/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)
werror=OFF; [ "${CI:-}" = "true" ] && werror=ON
if [ "${1:-}" = "--tsan" ]; then
  build="$root/build-tsan"
  # OpenMP off (the default): libgomp is not instrumented, so TSan would report its barriers.
  # Without the compiled library the test's one TU instantiates only what it calls.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
        -DSPARSIMIX_SANITIZE=thread -DSPARSIMIX_BUILD_COMPILED=OFF -DSPARSIMIX_BUILD_BENCH=OFF \
        -DSPARSIMIX_BUILD_EXAMPLES=OFF -DSPARSIMIX_HEADER_CHECK=OFF >/dev/null
  cmake --build "$build" -j "$jobs" --target test_concurrency
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$build/tests/test_concurrency"
elif [ "${1:-}" = "--sanitize" ]; then
  build="$root/build-asan"
  # -O0: with the sanitizers, -O1 made the compiler 3-4x slower (tests/mixers/mh_lstm as one TU:
  # 107 s at -O1 -g, 32 s at -O0 -g) and compiling is most of this pass; the tests run longer
  # but still in well under a minute or two.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g" \
        -DSPARSIMIX_SANITIZE=address,undefined -DSPARSIMIX_BUILD_BENCH=OFF -DSPARSIMIX_HEADER_CHECK=OFF >/dev/null
  # (No -Werror here: the plain pass enforces warnings; GCC 12 emits extra false ones with
  # the sanitizers' instrumentation.)
  cmake --build "$build" -j "$jobs"
  # The packaging tests rebuild consumers without sanitizers, and the demo's reproducibility
  # is a Release property: both run in the plain pass only. example.custom_mixer_cli trains on
  # the real data (49 s at -O0 with ASan), and so does demo --avit (cli.demo_avit_tiny, several
  # minutes at -O0); cli.pipeline_steps covers those commands here (train --halting, distill
  # --mask-guided, retention). cli.train_kill_and_resume trains six times for 500 steps;
  # the in-process SIGTERM resume test (test_distill) covers the same code here. The
  # train_vit and distill_checkpoint examples train on all of Fashion-MNIST; the library calls
  # they make run here in test_distill and example.custom_mixer; so does docs.distillation_guide
  # (its commands run here in cli.pipeline_steps), and docs.snippet.guide (15+ min at -O0 with
  # ASan; its calls run here in test_distill). The API reference does not depend on it.
  # cli.own_data and docs.own_data_guide run a 12-block 224x224 model (tens of minutes at -O0
  # with ASan); the decoder, preprocessing, folders and the streaming loader run here in
  # test_data, and the decoder under the fuzzer. cli.study_tiny runs four studies (minutes at
  # -O0 with ASan); its statistics, planning and interaction maps run here in test_experiment.
  (cd "$build" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --no-tests=error --output-on-failure -j "$jobs" -E '^packaging\.|^cli\.demo_tiny$|^cli\.demo_avit_tiny$|^cli\.study_tiny$|^example\.custom_mixer_cli$|^cli\.train_kill_and_resume$|^example\.train_vit$|^example\.distill_checkpoint$|^docs\.distillation_guide$|^docs\.api_reference$|^docs\.snippet\.guide$|^cli\.own_data$|^docs\.own_data_guide$')
else
  build="$root/build"
  # SPARSIMIX_MPI adds the sparsimix_mpi program and its test (cli.mpi: mpirun -np 2).
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPARSIMIX_WERROR=$werror -DSPARSIMIX_MPI=ON >/dev/null
  cmake --build "$build" -j "$jobs"
  (cd "$build" && ctest --no-tests=error --output-on-failure -j "$jobs")
fi
