#!/bin/sh
# tsan.sh -- build solad and the daemon tests with ThreadSanitizer and run them.
#
# Not part of CI (scripts/test.sh runs ASan+UBSan); run it after touching threads,
# the batcher, the registry's hot swap or the job worker. About 10 minutes on 2 busy
# cores from scratch (build ~8 min, tests ~1-2 min); the tests alone ~1 min.
#   scripts/tsan.sh [BUILD_DIR]          (default build-tsan)
# OpenBLAS's own threads are not instrumented: tests/tsan.supp drops reports that go
# through libopenblas/libgomp only. Any other report stops the test (halt_on_error)
# and is printed from BUILD_DIR/tsan-logs/.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
bld=${1:-$src/build-tsan}
tests="test_server test_server_load test_jobs test_datasets test_batcher test_batching test_v2 test_slowclients test_streams_server"
cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Debug -DSOLA_TSAN=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$bld" -j2 --target solad sola $tests
logs=$bld/tsan-logs
rm -rf "$logs" && mkdir -p "$logs"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$src/tests/tsan.supp log_path=$logs/tsan"
export SOLA_SRC="$src" SOLA_BIN="$bld"
fail=0
for t in $tests; do
    t0=$(date +%s)
    if "$bld/$t" >"$logs/$t.out" 2>&1; then st=ok; else st=FAIL; fail=1; fi
    echo "$t: $st ($(( $(date +%s) - t0 )) s)"
    [ "$st" = ok ] || tail -5 "$logs/$t.out"
done
if ls "$logs"/tsan.* >/dev/null 2>&1; then
    echo "ThreadSanitizer reports (solad and test processes):"
    cat "$logs"/tsan.*
    fail=1
fi
exit $fail
