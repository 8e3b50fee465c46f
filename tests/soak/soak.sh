#!/bin/sh
# soak.sh -- the bounded soak (not run by ctest): solad on loopback with a 256-channel
# model, 32 clients posting /refine for SECONDS (default 240) with T in {1, 16, 100,
# 1000}, JSON and .npy, ~5% malformed, version 2 uploaded and activated midway; RSS and
# fds of solad sampled every 5 s. Fails on any 5xx but 503, RSS growth past warm-up,
# or fds left over.
#   tests/soak/soak.sh [BUILD_DIR] [SECONDS]      (BUILD_DIR default build; Release)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
bld=${1:-$src/build}
secs=${2:-240}
work=$(mktemp -d /tmp/sola-soak.XXXXXX)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$work/soak" "$src/tests/soak/soak.c" \
    "$src/tests/common/rawconn.c" -lcurl -lpthread
mkdir -p "$work/data/models/m"
"$bld/sola" init --dim 256 --hidden 128 --seed 1 -o "$work/data/models/m/1.safetensors" >/dev/null
"$bld/sola" init --dim 256 --hidden 128 --seed 2 -o "$work/v2.safetensors" >/dev/null
"$bld/solad" --listen 127.0.0.1:0 --data "$work/data" --workers 2 --threads 1 --queue 16 \
    >"$work/out" 2>"$work/solad.log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/out" | head -1)
# one request first, so lazy start-up allocations are not counted as growth
curl -s -o /dev/null -X POST "http://127.0.0.1:$port/refine" \
    -H 'Content-Type: application/json' -d '{"features": [[0]]}' || true
"$work/soak" --port "$port" --pid "$pid" --model m --dim 256 --v2 "$work/v2.safetensors" \
    --seconds "$secs" --clients 32 --sample 5
