#!/usr/bin/env bash
# Installs what the tests need, builds twice (Release, then ASan+UBSan) and runs the
# whole check suite under ctest in each. The last lines are ctest's own summary (then,
# when a test was skipped, the reasons its output gave); a
# test that could not run is listed by ctest as skipped (exit 77), never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
logs=build/logs
# The layering rules (no include cycle, every function where its header says) need
# no build: fail before spending minutes on one.
echo "== layering (scripts/check_layering.sh)"
bash scripts/check_layering.sh
scripts/deps.sh --test
jobs=$(nproc)
# ctest shows no output of a skipped test: print each skip's reason after the summary.
why_skipped() {
  local log=$1/Testing/Temporary/LastTest.log
  if [ -f "$log" ] && grep -q "^SKIPPED (\|^SKIP" "$log"; then
    echo "Why tests were skipped (from $log):"
    grep -h "^SKIPPED (\|^SKIP" "$log" | sort -u | sed 's/^/  /'
  fi
}
step "configure the Release build (build/)" "$logs/configure.log" \
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSOLA_BUILD_TESTS=ON
step "build everything (Release)" "$logs/build.log" cmake --build build -j "$jobs"
echo "== Release build: ctest"
rc=0
(cd build && ctest --output-on-failure -j "$jobs") || rc=$?
why_skipped build
[ $rc -eq 0 ] || exit $rc
# The other GEMM backend (core/model/gemm.h): the numeric tests against the PyTorch fixtures,
# batching's (the daemon's batcher too) and streaming's bit-identity, the training step,
# and `sola refine`'s outputs against the library bit for bit (test_cli: its folder
# pipeline plans rows by the backend's rules), on OpenBLAS.
numeric="test_refine test_batcher test_batching test_stream test_streams_server test_grad test_trainer test_model test_adamw test_probe test_cycle test_cli"
step "configure the OpenBLAS build (build-openblas/)" "$logs/configure-openblas.log" \
  cmake -S . -B build-openblas -DCMAKE_BUILD_TYPE=Release -DSOLA_BUILD_TESTS=ON -DSOLA_GEMM=openblas
# shellcheck disable=SC2086
step "build the numeric tests (OpenBLAS)" "$logs/build-openblas.log" \
  cmake --build build-openblas -j "$jobs" --target solad sola $numeric
echo "== OpenBLAS backend: numeric tests"
(cd build-openblas && ctest --output-on-failure -j "$jobs" -R "^(${numeric// /|})\$") || rc=$?
why_skipped build-openblas
[ $rc -eq 0 ] || exit $rc
step "configure the ASan+UBSan build (build-asan/)" "$logs/configure-asan.log" \
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSOLA_SANITIZE=ON -DSOLA_BUILD_TESTS=ON
step "build everything (ASan+UBSan)" "$logs/build-asan.log" cmake --build build-asan -j "$jobs"
echo "== AddressSanitizer + UBSan build: ctest"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j "$jobs") || rc=$?
why_skipped build-asan
exit $rc
