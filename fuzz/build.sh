#!/bin/sh
# build.sh -- builds and runs the libFuzzer harnesses (clang), outside CMake.
#
#   fuzz/build.sh                      build every harness into build-fuzz/libfuzzer/
#   fuzz/build.sh run NAME [SECONDS]   fuzz NAME (npy, npz, safetensors, model, api_*)
#                                      for SECONDS (default 120), single process; new
#                                      inputs go to build-fuzz/libfuzzer/corpus/NAME,
#                                      findings to build-fuzz/libfuzzer/findings/NAME
#   fuzz/build.sh merge NAME           add to fuzz/corpus/NAME (what gets committed) the
#                                      units of build-fuzz/libfuzzer/corpus/NAME that
#                                      reach new coverage
#
# Each harness is compiled against the core (and api) sources directly with
# -fsanitize=fuzzer,address,undefined; the same bodies (fuzz/harness.h) are replayed
# over the committed corpora by tests/test_fuzz_replay.c in the normal build. Also
# built: build-fuzz/libfuzzer/replay_NAME, the plain driver (fuzz/driver.c, ASan+UBSan, no
# libFuzzer) for reproducing a finding.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz/libfuzzer}
CC=${CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# hdf5 only when installed (core/h5io.c needs it; the harnesses do not).
OPT_PC=$(pkg-config --exists hdf5 2>/dev/null && echo hdf5 || true)
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -I$ROOT/core -I$ROOT/api"
CFLAGS="$CFLAGS $(pkg-config --cflags openblas jansson zlib libpng $OPT_PC)"
LIBS="$(pkg-config --libs openblas jansson zlib libpng $OPT_PC) -lpthread -lm"
HARNESSES=$(cd "$ROOT/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')

build() {
    mkdir -p "$OUT/obj" "$OUT/objplain"
    # An object is rebuilt when its source, any header or this script is newer.
    newest_h=$(ls -t "$ROOT"/core/*.h "$ROOT"/api/*.h 2>/dev/null | head -1)
    srcs="$ROOT/core/*.c"
    [ -d "$ROOT/api" ] && srcs="$srcs $ROOT/api/*.c"
    for s in $srcs; do
        [ -e "$s" ] || continue
        # one GEMM backend (core/gemm.h): the harnesses link OpenBLAS's
        case "$s" in */core/gemm_onednn.c) continue ;; esac
        d=$(basename "$(dirname "$s")")
        o="$OUT/obj/${d}_$(basename "$s" .c).o"
        p="$OUT/objplain/${d}_$(basename "$s" .c).o"
        # shellcheck disable=SC2086
        if [ ! -e "$o" ] || [ "$s" -nt "$o" ] || [ "$newest_h" -nt "$o" ] ||
            [ "$ROOT/fuzz/build.sh" -nt "$o" ]; then
            $CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$s" -o "$o"
            $CC $CFLAGS $SAN -c "$s" -o "$p"
        fi
    done
    # The web page's assets, generated the way CMake does (api/routes_web.c serves them).
    gen=
    if [ -f "$ROOT/web/embed.cmake" ] && grep -q api_web_assets "$ROOT"/api/*.c 2>/dev/null; then
        mkdir -p "$OUT/gen"
        webfiles=$(cd "$ROOT/web" && ls ./*.html ./*.js ./*.css | sed 's|^\./||' | paste -sd, -)
        cmake -DWEB_DIR="$ROOT/web" -DWEB_FILES="$webfiles" -DOUT="$OUT/gen/web_assets.c" \
              -P "$ROOT/web/embed.cmake"
        $CC -std=c11 -O1 -c "$OUT/gen/web_assets.c" -o "$OUT/gen/web_assets.o"
        gen="$OUT/gen/web_assets.o"
    fi
    # Objects of sources that no longer exist must not be linked.
    for o in "$OUT"/obj/*.o; do
        [ -e "$o" ] || continue
        b=$(basename "$o" .o)
        [ -e "$ROOT/${b%%_*}/${b#*_}.c" ] || rm -f "$o" "$OUT/objplain/$b.o"
    done
    # Static archives, as CMake links them: only the objects a harness needs are pulled
    # in (a half-written module elsewhere in core/ does not break the link).
    for v in obj objplain; do
        for p in core api; do
            rm -f "$OUT/$v/lib$p.a"
            ls "$OUT/$v/${p}_"*.o >/dev/null 2>&1 && ar rcs "$OUT/$v/lib$p.a" "$OUT/$v/${p}_"*.o
        done
    done
    failed=
    for h in $HARNESSES; do
        # Only the api_* harnesses link the api archive: the format harnesses keep
        # building while api/ is in flux.
        case $h in api_*) libs="$gen lib/libapi.a lib/libcore.a" ;; *) libs="lib/libcore.a" ;; esac
        # shellcheck disable=SC2086
        $CC $CFLAGS $SAN -fsanitize=fuzzer "$ROOT/fuzz/fuzz_$h.c" \
            $(echo $libs | sed "s|lib/|$OUT/obj/|g") $LIBS -o "$OUT/fuzz_$h" || failed="$failed $h"
        # shellcheck disable=SC2086
        $CC $CFLAGS $SAN "$ROOT/fuzz/fuzz_$h.c" "$ROOT/fuzz/driver.c" \
            $(echo $libs | sed "s|lib/|$OUT/objplain/|g") $LIBS -o "$OUT/replay_$h" ||
            failed="$failed $h"
    done
    if [ -n "$failed" ]; then
        echo "build.sh: failed to build:$failed" >&2
        return 1
    fi
    echo "built: $(echo $HARNESSES) in $OUT"
}

run() {
    name=$1
    secs=${2:-120}
    mkdir -p "$OUT/corpus/$name" "$OUT/findings/$name"
    seeds="$ROOT/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=
    # One process (the machine is shared); 64 KiB inputs are ample for every format's
    # header logic; 2 GiB RSS so that a size field trusted too far shows as a finding.
    # The request harness writes a data directory (uploads, fsyncs): on /dev/shm
    # those cost nothing and the fuzzer runs ~30x faster.
    tmp=${TMPDIR:-/tmp}
    [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
    # shellcheck disable=SC2086
    TMPDIR=$tmp OPENBLAS_NUM_THREADS=1 "$OUT/fuzz_$name" -max_total_time="$secs" -max_len=65536 \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$OUT/findings/$name/" "$OUT/corpus/$name" $seeds || true
    # A crash skips the harnesses' atexit cleanup: remove their scratch directories.
    rm -rf "$tmp"/solafuzz.* "$tmp"/solafuzz-ds.*
}

merge() {
    # Adds to fuzz/corpus/NAME only the units of the local corpus that reach coverage
    # the committed files do not (the named seeds stay as they are).
    name=$1
    mkdir -p "$ROOT/fuzz/corpus/$name"
    tmp=${TMPDIR:-/tmp}
    [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
    TMPDIR=$tmp OPENBLAS_NUM_THREADS=1 "$OUT/fuzz_$name" -merge=1 -max_len=65536 \
        "$ROOT/fuzz/corpus/$name" "$OUT/corpus/$name"
    rm -rf "$tmp"/solafuzz.* "$tmp"/solafuzz-ds.*
    echo "fuzz/corpus/$name: $(ls "$ROOT/fuzz/corpus/$name" | wc -l) files," \
        "$(du -sk "$ROOT/fuzz/corpus/$name" | cut -f1) KiB"
}

case "${1:-build}" in
build) build || exit 1 ;;
run) build || exit 1; run "$2" "${3:-120}" ;;
merge) merge "$2" ;;
*) echo "usage: $0 [build | run NAME [SECONDS] | merge NAME]" >&2; exit 2 ;;
esac
