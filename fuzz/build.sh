#!/bin/sh
# build.sh -- the libFuzzer harnesses: a thin wrapper over CMake (SOLA_BUILD_FUZZ=ON,
# fuzz/CMakeLists.txt) for the longer runs.
#
#   fuzz/build.sh                      configure (CC=clang) and build every harness into
#                                      build-fuzz/: fuzz_NAME (libFuzzer), replay_NAME
#                                      (fuzz/driver.c's plain main, no libFuzzer)
#   fuzz/build.sh run NAME [SECONDS]   build, then fuzz NAME (npy, npz, safetensors,
#                                      model, dataset_npz, api_*) for SECONDS (default
#                                      120), single process; new inputs go to
#                                      build-fuzz/corpus/NAME, findings to
#                                      build-fuzz/findings/NAME
#   fuzz/build.sh merge NAME           add to fuzz/corpus/NAME (what gets committed) the
#                                      units of build-fuzz/corpus/NAME that reach new
#                                      coverage
#
# The build is the two commands of fuzz/CMakeLists.txt; FUZZ_OUT overrides the build
# directory, CC the compiler (clang), JOBS the parallel build jobs (2).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}

build() {
    CC=${CC:-clang} cmake -S "$ROOT" -B "$OUT" -DSOLA_BUILD_FUZZ=ON -DSOLA_BUILD_TESTS=OFF \
        -DSOLA_GEMM=openblas >/dev/null
    cmake --build "$OUT" -j"${JOBS:-2}" --target fuzzers
    echo "built: $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')in $OUT"
}

# The request and dataset harnesses write a data directory per input (uploads,
# fsyncs): on /dev/shm those cost nothing and the fuzzer runs ~30x faster.
scratch() {
    tmp=${TMPDIR:-/tmp}
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp=/dev/shm; fi
    echo "$tmp"
}

run() {
    name=$1
    secs=$2
    [ -x "$OUT/fuzz_$name" ] || { echo "build.sh: no harness $name in $OUT" >&2; exit 2; }
    mkdir -p "$OUT/corpus/$name" "$OUT/findings/$name"
    seeds=
    for d in "$ROOT/fuzz/corpus/$name" "$ROOT/fuzz/regressions/$name"; do
        [ -d "$d" ] && seeds="$seeds $d"
    done
    tmp=$(scratch)
    # One process (the machine is shared); 64 KiB inputs are ample for every format's
    # header logic; 2 GiB RSS so that a size field trusted too far shows as a finding.
    rc=0
    # shellcheck disable=SC2086
    TMPDIR=$tmp OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$OUT/fuzz_$name" \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$OUT/findings/$name/" \
        "$OUT/corpus/$name" $seeds || rc=$?
    # A crash skips the harnesses' atexit cleanup: remove their scratch directories.
    rm -rf "$tmp"/solafuzz.* "$tmp"/solafuzz-ds.*
    [ "$rc" -eq 0 ] || echo "build.sh: fuzz_$name stopped with status $rc; see $OUT/findings/$name/" >&2
    return "$rc"
}

merge() {
    # Adds to fuzz/corpus/NAME only the units of the local corpus that reach coverage
    # the committed files do not (the named seeds stay as they are).
    name=$1
    mkdir -p "$ROOT/fuzz/corpus/$name" "$OUT/corpus/$name"
    tmp=$(scratch)
    TMPDIR=$tmp OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$OUT/fuzz_$name" -merge=1 \
        -max_len=65536 "$ROOT/fuzz/corpus/$name" "$OUT/corpus/$name"
    rm -rf "$tmp"/solafuzz.* "$tmp"/solafuzz-ds.*
    echo "fuzz/corpus/$name: $(ls "$ROOT/fuzz/corpus/$name" | wc -l) files," \
        "$(du -sk "$ROOT/fuzz/corpus/$name" | cut -f1) KiB"
}

case "${1:-build}" in
build) build ;;
run) [ $# -ge 2 ] || { echo "usage: $0 run NAME [SECONDS]" >&2; exit 2; }
     build; run "$2" "${3:-120}" ;;
merge) [ $# -ge 2 ] || { echo "usage: $0 merge NAME" >&2; exit 2; }
       merge "$2" ;;
*) echo "usage: $0 [build | run NAME [SECONDS] | merge NAME]" >&2; exit 2 ;;
esac
