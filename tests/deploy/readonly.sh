#!/usr/bin/env bash
# solad --models-dir on a read-only model store (KServe's storageUri layout at
# /mnt/models, a ReadOnlyMany volume, models baked into an image):
#   * the store is made read-only for solad by the strongest means this machine
#     allows: a private mount namespace (unshare) in which the whole root file system
#     is remounted read-only, so solad starts on a read-only file system with nothing
#     writable at all ($TMPDIR included); else, as root, chattr +i on the store; else
#     (not root) permissions. Without any of them it prints "FORBIDDEN:" and exits 77
#     (the machine forbids the check: skipped, also under CI=true);
#   * it serves a flat NAME.safetensors (version 1) and a NAME/VERSION.safetensors +
#     NAME/active model: POST /refine (bit-identical to `sola refine` of the same file)
#     and POST /v2/models/M/infer answer 200;
#   * every mutating route (model upload and activation, dataset upload, POST /train)
#     answers 409 naming the read-only store, and the store is unchanged;
#   * a new version written to the store by someone else (outside the namespace: the
#     volume's owner) and named in NAME/active is served after the periodic rescan;
#   * SIGTERM: exit 0.
# Usage: tests/deploy/readonly.sh [SOLAD]   (default: $SOLA_BIN/solad, else build/solad)
# Exit status: 0 pass, 1 fail, 77 skipped ("SKIP:": a tool is missing; "FORBIDDEN:":
# the machine allows no way to make the store read-only).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
root="$(cd "$LIB_HERE/../.." && pwd)"
solad=${1:-${SOLA_BIN:+$SOLA_BIN/solad}}
solad=${solad:-$root/build/solad}
sola="$(dirname "$solad")/sola"
if [ ! -x "$solad" ] || [ ! -x "$sola" ]; then
  echo "SKIP: no solad/sola binaries next to $solad (build them first)"
  exit 77
fi
for tool in curl "$LIB_PY"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not installed (Debian: curl python3)"
    exit 77
  fi
done
dim=16
tmp="$(mktemp -d "${TMPDIR:-/tmp}/solad-readonly.XXXXXX")"
store="$tmp/store"
chattred=""
cleanup() {
  lib_cleanup
  [ -n "$chattred" ] && chattr -R -i "$store" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }
ok()   { echo "ok:   $*"; }

# The store: a flat file and a versioned model whose active file names version 2.
mkdir -p "$store/shots"
"$LIB_PY" "$LIB_HERE/make_files.py" model "$store/flat.safetensors" --dim "$dim" --alpha 0.5 --seed 1
"$LIB_PY" "$LIB_HERE/make_files.py" model "$store/shots/1.safetensors" --dim "$dim" --alpha 0.3 --seed 2
"$LIB_PY" "$LIB_HERE/make_files.py" model "$store/shots/2.safetensors" --dim "$dim" --alpha 0.7 --seed 3
echo 2 > "$store/shots/active"
"$LIB_PY" "$LIB_HERE/make_files.py" npy "$tmp/x.npy" --length 20 --dim "$dim" --seed 9
"$LIB_PY" "$LIB_HERE/make_files.py" model "$tmp/new.safetensors" --dim "$dim" --alpha -0.4 --seed 4
before=$(cd "$store" && find . -type f -exec sha256sum {} + | sort)
port=$(lib_free_port)

# How to run solad with the store read-only: a mount namespace where / is read-only.
# The remount is a bind remount (per mount point, in the new namespace only): the
# machine's own file systems are never touched. A user namespace (-U) is tried
# first because there even a mistaken superblock remount would be refused.
how=""
probe='mount -o remount,bind,ro / && ! touch "$0/.rw-probe" 2>/dev/null'
for ns in "-Urm" "-m --propagation private"; do
  # shellcheck disable=SC2086
  if command -v unshare >/dev/null 2>&1 && unshare $ns sh -c "$probe" "$store" 2>/dev/null; then
    how="unshare $ns"; break
  fi
done
if [ -n "$how" ]; then
  # shellcheck disable=SC2016
  $how sh -c 'mount -o remount,bind,ro / || exit 99; exec "$@"' sh \
    "$solad" --listen "127.0.0.1:$port" --models-dir "$store" --workers 1 --threads 1 \
    --rescan-interval 1 --log-format text > "$tmp/solad.log" 2>&1 &
  pid=$!
  ro_what="a private mount namespace ($how) with the whole root file system remounted read-only"
elif [ "$(id -u)" = 0 ] && command -v chattr >/dev/null 2>&1 && chattr -R +i "$store" 2>/dev/null; then
  chattred=1
  "$solad" --listen "127.0.0.1:$port" --models-dir "$store" --workers 1 --threads 1 \
    --rescan-interval 1 --log-format text > "$tmp/solad.log" 2>&1 &
  pid=$!
  ro_what="chattr +i on the store (no mount namespace allowed here)"
elif [ "$(id -u)" != 0 ]; then
  chmod -R a-w "$store"
  "$solad" --listen "127.0.0.1:$port" --models-dir "$store" --workers 1 --threads 1 \
    --rescan-interval 1 --log-format text > "$tmp/solad.log" 2>&1 &
  pid=$!
  ro_what="permissions (chmod a-w)"
else
  echo "FORBIDDEN: this machine allows no way to make a directory read-only for root here (unshare/mount, chattr)"
  exit 77
fi
lib_track "$pid"
if ! lib_wait_http "http://127.0.0.1:$port/readyz" 30; then
  fail "solad --models-dir did not become ready on a read-only store"; cat "$tmp/solad.log"; exit 1
fi
ok "solad --models-dir started and is ready; the store is read-only through $ro_what"

# ---- serving
models=$(curl -s "http://127.0.0.1:$port/models")
got=$("$LIB_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join("%s:%s:%s" % (m["name"], m["active"], ",".join(map(str, m["versions"]))) for m in sorted(d["models"], key=lambda m: m["name"])))' "$models")
[ "$got" = "flat:1:1 shots:2:1,2" ] && ok "GET /models: flat (flat file, version 1) and shots (versions 1,2, active 2)" \
  || fail "GET /models lists '$got', want 'flat:1:1 shots:2:1,2': $models"
for m in flat shots; do
  ref="$tmp/ref_$m.npy"
  [ "$m" = flat ] && mf="$store/flat.safetensors" || mf="$store/shots/2.safetensors"
  "$sola" refine -m "$mf" "$tmp/x.npy" -o "$ref" >/dev/null 2>&1 || fail "sola refine -m $mf failed"
  c=$(curl -s -o "$tmp/out_$m.npy" -w '%{http_code}' -X POST -H 'Content-Type: application/x-npy' \
      --data-binary "@$tmp/x.npy" "http://127.0.0.1:$port/refine?model=$m")
  if [ "$c" = 200 ] && cmp -s "$ref" "$tmp/out_$m.npy"; then ok "POST /refine?model=$m: 200, bit-identical to sola refine"
  else fail "POST /refine?model=$m: $c, $(cmp "$ref" "$tmp/out_$m.npy" 2>&1)"; fi
done
v2='{"inputs":[{"name":"features","shape":[2,'"$dim"'],"datatype":"FP32","data":['"$(seq -s, 1 $((2 * dim)))"']}]}'
c=$(curl -s -o "$tmp/v2.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data "$v2" \
    "http://127.0.0.1:$port/v2/models/shots/infer")
[ "$c" = 200 ] && grep -q '"model_version":"2"' "$tmp/v2.out" && ok "POST /v2/models/shots/infer: 200 (version 2)" \
  || fail "POST /v2/models/shots/infer: $c $(head -c 300 "$tmp/v2.out")"

# ---- mutating routes
check_409() {   # check_409 METHOD PATH [curl args...]
  local m=$1 p=$2; shift 2
  local c
  c=$(curl -s -o "$tmp/mut.out" -w '%{http_code}' -X "$m" "$@" "http://127.0.0.1:$port$p")
  if [ "$c" = 409 ] && grep -q 'read-only model store' "$tmp/mut.out"; then ok "$m $p: 409 $(cut -c1-90 "$tmp/mut.out")..."
  else fail "$m $p: $c $(cat "$tmp/mut.out") (want 409 naming the read-only store)"; fi
}
check_409 PUT /models/flat/versions/2 -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/new.safetensors"
check_409 POST /models/shots/activate -H 'Content-Type: application/json' --data '{"version": 1}'
check_409 PUT /datasets/d/items/a -H 'Content-Type: application/x-npy' --data-binary "@$tmp/x.npy"
check_409 POST /train -H 'Content-Type: application/json' --data '{"dataset": "d", "output_model": "o"}'
after=$(cd "$store" && find . -type f -exec sha256sum {} + | sort)
[ "$before" = "$after" ] && ok "the store is unchanged" || fail "the store changed: $(diff <(echo "$before") <(echo "$after"))"

# ---- the store's owner publishes a new version (outside solad's read-only view)
if [ -n "$chattred" ]; then chattr -R -i "$store"; fi
[ "$(id -u)" != 0 ] && [ -z "$how" ] && chmod -R u+w "$store"
cp "$tmp/new.safetensors" "$store/shots/3.safetensors.tmp" && mv "$store/shots/3.safetensors.tmp" "$store/shots/3.safetensors"
echo 3 > "$store/shots/active.tmp" && mv "$store/shots/active.tmp" "$store/shots/active"
"$sola" refine -m "$store/shots/3.safetensors" "$tmp/x.npy" -o "$tmp/ref3.npy" >/dev/null 2>&1
for ((i = 0; i < 100; i++)); do
  v=$(curl -s -D - -o "$tmp/out3.npy" -X POST -H 'Content-Type: application/x-npy' --data-binary "@$tmp/x.npy" \
      "http://127.0.0.1:$port/refine?model=shots" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-model-version" {print $2}')
  [ "$v" = 3 ] && break
  sleep 0.1
done
if [ "$v" = 3 ] && cmp -s "$tmp/ref3.npy" "$tmp/out3.npy"; then ok "a version published into the store is served after the rescan (version 3)"
else fail "after publishing version 3 into the store solad serves version '$v'"; fi

kill -TERM "$pid"
wait "$pid"; code=$?
[ "$code" = 0 ] && ok "exit 0 on SIGTERM" || { fail "exit $code on SIGTERM"; tail -5 "$tmp/solad.log"; }
if grep -qiE 'read-only file system|permission denied' "$tmp/solad.log"; then
  fail "solad tried to write: $(grep -iE 'read-only file system|permission denied' "$tmp/solad.log" | head -3)"
fi
exit $failed
