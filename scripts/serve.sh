#!/usr/bin/env bash
# Installs what building and serving need (scripts/deps.sh), builds sola and solad
# (Release, into build/) and runs solad on 127.0.0.1:8080 with a data directory, so
# that the web page can upload datasets and train. Once solad answers /readyz it prints
# examples that work as pasted from another terminal. Ctrl-C (or kill of this script's
# PID, which it prints) stops solad gracefully.
#   bash scripts/serve.sh [SOLAD OPTIONS...]
# Environment: SOLAD_LISTEN (default 127.0.0.1:8080), SOLA_DATA (default ./solad-data
# in the checkout; ignored when the options hold --data).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
logs=build/logs
scripts/deps.sh
# The tests' packages (check, libcurl) are not needed to serve: configure without the
# tests unless they are installed (then a later scripts/test.sh reuses this build).
tests=OFF
pkg-config --exists check libcurl 2>/dev/null && tests=ON
step "configure (cmake)" "$logs/configure.log" \
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSOLA_BUILD_TESTS=$tests
step "build sola and solad" "$logs/build.log" \
  cmake --build build -j "$(nproc)" --target solad sola
listen="${SOLAD_LISTEN:-127.0.0.1:8080}"
bin="$PWD/build"
args=("$@")
data=""
case " $* " in
  *" --data "*|*" --data="*) ;;
  *) data="${SOLA_DATA:-$PWD/solad-data}"; args+=(--data "$data") ;;
esac
"$bin/solad" --listen "$listen" "${args[@]}" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM
url="http://$listen"
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "$url/readyz" && break
  kill -0 $pid 2>/dev/null || { wait $pid || rc=$?; echo "solad stopped (exit ${rc:-0}); its message is above" >&2; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null "$url/readyz" || { echo "solad is not ready after 30 s" >&2; kill $pid; exit 1; }
demo=/tmp/sola-demo
cat <<EOT

solad is ready on $url (pid $pid; this script's pid $$).
${data:+State (models, datasets, jobs) lives in $data: the web page at $url/ can upload and train.
}Binaries: $bin/sola and $bin/solad. Stop: Ctrl-C here, or kill $$ from elsewhere.
The default model is the identity (C = 2048): it returns its input unchanged until you
train or upload one (docs/jobs.md). From another terminal:

  # health
  curl -s $url/healthz; echo
  # a synthetic [T, 2048] sequence (T is printed), refined as .npy in and out
  $bin/sola synth -o $demo --videos 1 --dim 2048 --length 64 --seed 1
  curl -s -X POST $url/refine -H 'Content-Type: application/x-npy' \\
       --data-binary @$demo/features/video_0000.npy -o $demo/refined.npy
  $bin/sola info $demo/refined.npy
  # JSON in and out: 3 snippets of 2048 channels; the reply's "tsm" is the refined TSM
  awk 'BEGIN { printf "{\"tsm\": \"refined\", \"features\": ["; for (t = 1; t <= 3; t++) { printf "%s[", (t > 1 ? "," : ""); for (c = 0; c < 2048; c++) printf "%s%.3f", (c ? "," : ""), cos(c) + (t - 1) * sin(3 * c); printf "]" } print "]}" }' > $demo/req.json
  curl -s -X POST $url/refine -H 'Content-Type: application/json' --data-binary @$demo/req.json | grep -o '"tsm":.*'
  # TSM heatmap as PNG, raw and refined side by side (open it in an image viewer)
  curl -s -X POST "$url/tsm?tsm=both" -H 'Content-Type: application/x-npy' -H 'Accept: image/png' \\
       --data-binary @$demo/features/video_0000.npy -o $demo/tsm.png
  # Prometheus metrics
  curl -s $url/metrics | grep '^solad_http_requests_total\|^solad_frames_refined_total'

EOT
wait $pid
