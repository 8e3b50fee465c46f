#!/usr/bin/env bash
# Installs what solad needs, builds it (Release) and runs it in the foreground on the
# embedded default model (identity, C = 2048), printing curl examples that work as
# pasted from another terminal. Extra arguments go to solad (e.g. --data DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target solad sola >/dev/null
listen="${SOLAD_LISTEN:-127.0.0.1:8080}"
bin="$PWD/build"
cat <<EOT

solad is starting on http://$listen (Ctrl-C stops it). From another terminal:

  # health
  curl -s http://$listen/healthz
  # a sample [T=64, C=2048] sequence made by our own tool, refined as .npy in and out
  $bin/sola synth -o /tmp/sola-demo --videos 1 --dim 2048 --length 64 --seed 1
  curl -s -X POST http://$listen/refine -H 'Content-Type: application/x-npy' \\
       --data-binary @/tmp/sola-demo/features/video_0000.npy -o /tmp/refined.npy
  $bin/sola info /tmp/refined.npy
  # JSON in and out (3 snippets of 2048 channels), with the refined TSM
  python3 -c 'import json; print(json.dumps({"features": [[0.01*i]*2048 for i in range(1, 4)], "tsm": "refined"}))' > /tmp/req.json
  curl -s -X POST http://$listen/refine -H 'Content-Type: application/json' --data @/tmp/req.json | head -c 400; echo
  # TSM heatmap, raw and refined side by side
  curl -s -X POST "http://$listen/tsm?tsm=both" -H 'Content-Type: application/x-npy' -H 'Accept: image/png' \\
       --data-binary @/tmp/sola-demo/features/video_0000.npy -o /tmp/tsm.png
  # Prometheus metrics
  curl -s http://$listen/metrics | head -20

EOT
exec "$bin/solad" --listen "$listen" "$@"
