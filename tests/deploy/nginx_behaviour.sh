#!/usr/bin/env bash
# What deploy/nginx/solad.conf does with requests, checked against two stand-in
# replicas (stub_upstream.py), so it runs without solad:
#   - POST /refine that meets a busy replica (503) is re-sent to the other one;
#   - POST /train, PUT and DELETE are never delivered to two replicas;
#   - GET requests are retried;
#   - /jobs/ID/events streams: an event reaches the client while the replica still
#     holds the stream open (no buffering);
#   - body limits per route, as solad's: a 320 MiB dataset upload (--max-upload 64G)
#     reaches a replica whole, a 320 MiB model upload or refine body (--max-body 256M)
#     gets nginx's 413 without reaching any.
# Usage: tests/deploy/nginx_behaviour.sh
# Exit status: 0 pass, 1 fail, 77 skipped (nginx, curl or python3 missing).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
for tool in nginx curl "$LIB_PY"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not installed (Debian: nginx curl python3)"
    exit 77
  fi
done
tmp="$(mktemp -d "${TMPDIR:-/tmp}/solad-nginx.XXXXXX")"
trap 'lib_cleanup; rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }
ok()   { echo "ok:   $*"; }

pa=$(lib_free_port); pb=$(lib_free_port); pn=$(lib_free_port)
# A is listed first so that it is the first choice; it answers 503 to everything.
"$LIB_PY" "$LIB_HERE/stub_upstream.py" "$pa" busy "$tmp/a.log" "$tmp/release" & lib_track $!
"$LIB_PY" "$LIB_HERE/stub_upstream.py" "$pb" ok "$tmp/b.log" "$tmp/release" & lib_track $!
lib_wait_http "http://127.0.0.1:$pa/x" 10 503 || exit 1
lib_wait_http "http://127.0.0.1:$pb/x" 10 200 || exit 1
: > "$tmp/a.log"; : > "$tmp/b.log"
lib_start_nginx "$tmp/nginx" "$pn" "$pa" "$pb" || exit 1
base="http://127.0.0.1:$pn"

# req METHOD PATH -> prints the status nginx returned
req() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X "$1" -H 'Content-Type: application/json' --data-binary '{"features":[[1,2]]}' "$base$2"; }
# ids of requests to PATH (by method) that reached both replicas
both() { comm -12 <(awk -v m="$1" -v p="$2" '$1 == m && $2 == p { print $3 }' "$tmp/a.log" | sort -u) \
                  <(awk -v m="$1" -v p="$2" '$1 == m && $2 == p { print $3 }' "$tmp/b.log" | sort -u) | wc -l; }
reached_a() { awk -v m="$1" -v p="$2" '$1 == m && $2 == p' "$tmp/a.log" | wc -l; }

# 1. /refine: every request ends 200 even though A answers 503, because it is re-sent.
codes=""
for _ in 1 2 3 4; do codes+="$(req POST /refine) "; done
if [ "$codes" = "200 200 200 200 " ]; then ok "POST /refine: all 200 with one replica busy"; else fail "POST /refine statuses: $codes"; fi
if [ "$(both POST /refine)" -ge 1 ]; then ok "POST /refine was re-sent from the busy replica to the other"
else fail "no POST /refine reached both replicas: not retried (a.log: $(reached_a POST /refine) hits)"; fi

# 2. Mutating requests are never delivered twice; those that met A return A's 503.
declare -A seen503=()
for m in POST PUT DELETE; do
  path=/train; [ "$m" = PUT ] && path=/datasets/d/items/i; [ "$m" = DELETE ] && path=/jobs/7
  for _ in 1 2; do c=$(req "$m" "$path"); [ "$c" = 503 ] && seen503[$m]=1; done
  n=$(both "$m" "$path")
  total=$(cat "$tmp/a.log" "$tmp/b.log" | awk -v m="$m" -v p="$path" '$1 == m && $2 == p' | wc -l)
  if [ "$n" -eq 0 ] && [ "$total" -eq 2 ]; then ok "$m $path: each request delivered to exactly one replica"
  else fail "$m $path: 2 requests sent, $total deliveries, $n delivered to both replicas (must reach one, never be retried)"; fi
done
if [ ${#seen503[@]} -ge 1 ]; then ok "a mutating request that met the busy replica got its 503 back (${!seen503[*]})"
else fail "no mutating request met the busy replica: the check above proved nothing"; fi

# 3. GET is retried (idempotent).
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/models")
[ "$c" = 200 ] && ok "GET /models: 200" || fail "GET /models: $c"

# 4. Server-sent events: the first event arrives while the replica holds the stream.
"$LIB_PY" - "$pn" "$tmp/release" <<'PY'
import socket, sys
port, release = int(sys.argv[1]), sys.argv[2]
# Raw socket: what matters is when bytes arrive, not HTTP framing (nginx re-chunks).
s = socket.create_connection(("127.0.0.1", port), timeout=8)
s.sendall(b"GET /jobs/1/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n"
          b"Connection: close\r\n\r\n")
got = b""
try:
    while b"data: one" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    pass
if b"data: one" not in got:
    print("FAIL: SSE through nginx: first event not delivered while the stream was open "
          "(buffered?): %r" % got[-200:])
    sys.exit(1)
open(release, "w").close()
try:
    while b"data: two" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    pass
if b"data: two" not in got:
    print("FAIL: SSE through nginx: second event lost: %r" % got[-200:])
    sys.exit(1)
print("ok:   SSE: the first event reached the client while the replica held the stream open")
PY
[ $? -eq 0 ] || failed=1

# 5. Body limits per route. A sparse file: 320 MiB of zeros that cost no disk.
big=$((320 << 20))
truncate -s "$big" "$tmp/big.bin"
put_big() { curl -s -o /dev/null -w '%{http_code}' --max-time 120 -X "$1" -H 'Content-Type: application/octet-stream' \
              -H 'Expect:' --data-binary "@$tmp/big.bin" "$base$2"; }
c=$(put_big PUT /datasets/d/items/huge)
got=$(cat "$tmp/a.log" "$tmp/b.log" | awk '$1 == "PUT" && $2 == "/datasets/d/items/huge" { print $4 }')
if [ "$c" != 413 ] && [ "$got" = "$big" ]; then ok "PUT /datasets/d/items/huge (320 MiB): passed to a replica whole ($got bytes, status $c): --max-upload governs datasets"
else fail "PUT /datasets/d/items/huge (320 MiB): nginx answered $c, a replica received '${got:-nothing}' (want $big bytes)"; fi
for r in "PUT /models/m/versions/9" "POST /refine"; do
  read -r m path <<<"$r"
  c=$(put_big "$m" "$path")
  n=$(cat "$tmp/a.log" "$tmp/b.log" | awk -v m="$m" -v p="$path" '$1 == m && $2 == p && $4 > 1000' | wc -l)
  if [ "$c" = 413 ] && [ "$n" = 0 ]; then ok "$m $path (320 MiB): 413 from nginx, no replica bothered (--max-body 256M)"
  else fail "$m $path (320 MiB): status $c, $n big deliveries (want 413 and none)"; fi
done

exit $failed
