#!/usr/bin/env bash
# Installs what the tests need, builds twice (Release, then ASan+UBSan) and runs the
# whole check suite under ctest in each. The last lines are ctest's own summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" >/dev/null
echo "== Release build: ctest"
(cd build && ctest --output-on-failure -j "$jobs")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSOLA_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs" >/dev/null
echo "== AddressSanitizer + UBSan build: ctest"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j "$jobs")
