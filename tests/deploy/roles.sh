#!/usr/bin/env bash
# Roles of solad replicas sharing one --data directory (docs/deploy.md, "Roles"):
#   1. two --serve-only replicas, no trainer: POST /train through one of them answers
#      202 with a warning that no trainer runs, and the job stays queued;
#   2. a --train-only trainer starts: it takes the lock and runs that job; a job
#      posted through the other serving replica names the trainer in its reply and
#      runs on it too; the serving replicas never hold the lock; the trainer refuses
#      refine requests (421);
#   3. SIGTERM to the trainer in the middle of the job: the job turns `interrupted`
#      (checkpointed) and the trainer exits 0;
#   4. a new trainer (default role, --resume-jobs as the shipped configs set it) takes
#      the lock and resumes the job from its checkpoint to `succeeded` without any
#      request (only GETs are sent from here on); the second job follows; the models
#      they registered are served by the serving replicas.
# Usage: tests/deploy/roles.sh [SOLAD]   (default: $SOLA_BIN/solad, else build/solad)
# Env:   KEEP=1 keeps the temp directory.
# Exit status: 0 pass, 1 fail, 77 skipped ("SKIP:" line: no solad binary, curl or python3).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
root="$(cd "$LIB_HERE/../.." && pwd)"
solad=${1:-${SOLA_BIN:+$SOLA_BIN/solad}}
solad=${solad:-$root/build/solad}
if [ ! -x "$solad" ]; then
  echo "SKIP: no solad binary at $solad (build it first)"
  exit 77
fi
for tool in curl "$LIB_PY"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not installed (Debian: curl python3)"
    exit 77
  fi
done
dim=16
tmp="$(mktemp -d "${TMPDIR:-/tmp}/solad-roles.XXXXXX")"
cleanup() {
  lib_cleanup
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
failed=0
fail() { echo "FAIL: [${SECONDS}s] $*"; failed=1; }
ok()   { echo "ok:   [${SECONDS}s] $*"; }
die()  { fail "$*"; for f in "$tmp"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

mkdir -p "$tmp/data"
printf 'roles-token-%s' "$RANDOM$RANDOM" > "$tmp/token"
auth=(-H "Authorization: Bearer $(cat "$tmp/token")")

# start NAME PORT FLAGS...: a solad on the shared directory; sets pid[NAME]
declare -A pid
start() {
  local name=$1 port=$2; shift 2
  "$solad" --listen "127.0.0.1:$port" --data "$tmp/data" --dim "$dim" --workers 1 \
    --threads 1 --drain-timeout 20 --rescan-interval 1 --token-file "$tmp/token" \
    --log-format text "$@" >> "$tmp/$name.log" 2>&1 &
  pid[$name]=$!
  lib_track "${pid[$name]}"
}
# jget JSON EXPR: a field of a JSON text (EXPR is Python on `d`), "" when absent
jget() { "$LIB_PY" -c 'import json,sys
try:
    d = json.loads(sys.argv[1]); v = eval(sys.argv[2])
except Exception:
    v = ""
print("" if v is None else v)' "$1" "$2"; }
job() { curl -s --max-time 10 "http://127.0.0.1:$1/jobs/$2"; }
# wait_job PORT ID EXPR SECONDS: until EXPR (Python on the job `d`) is true
wait_job() {
  local i
  for ((i = 0; i < $4 * 5; i++)); do
    [ "$(jget "$(job "$1" "$2")" "$3")" = True ] && return 0
    sleep 0.2
  done
  return 1
}

pa=$(lib_free_port); pb=$(lib_free_port); pt1=$(lib_free_port); pt2=$(lib_free_port)
start a "$pa" --serve-only
start b "$pb" --serve-only
lib_wait_http "http://127.0.0.1:$pa/readyz" 30 || die "serving replica a not ready"
lib_wait_http "http://127.0.0.1:$pb/readyz" 30 || die "serving replica b not ready"
role=$(jget "$(curl -s "http://127.0.0.1:$pa/healthz")" 'd["role"]')
[ "$role" = serve ] && ok "two --serve-only replicas ready (GET /healthz role: serve)" || fail "healthz role '$role', want serve"

# A small dataset, uploaded through replica a.
for k in $(seq 1 12); do
  "$LIB_PY" "$LIB_HERE/make_files.py" npy "$tmp/item$k.npy" --length 48 --dim "$dim" --seed "$k"
  c=$(curl -s -o "$tmp/put.out" -w '%{http_code}' --max-time 30 -X PUT "${auth[@]}" \
      -H 'Content-Type: application/x-npy' --data-binary "@$tmp/item$k.npy" \
      "http://127.0.0.1:$pa/datasets/clips/items/v$k")
  [ "${c:0:1}" = 2 ] || die "PUT /datasets/clips/items/v$k: $c $(cat "$tmp/put.out")"
done

# ------------------------------------------------------------ 1. no trainer yet
# Long enough that the trainer is surely stopped mid-job, short enough for a test:
# 600 epochs of a tiny model take 2 s on a quiet machine, so the trainers pause 20 ms
# after each epoch (a testing aid of solad's train worker) -- 12 s or more whatever
# the machine.
export SOLAD_DEBUG_EPOCH_DELAY_MS=20
train() {   # train PORT OUTPUT EPOCHS -> reply in $tmp/train.out, status echoed
  curl -s -o "$tmp/train.out" -w '%{http_code}' --max-time 30 -X POST "${auth[@]}" \
    -H 'Content-Type: application/json' \
    --data "{\"dataset\":\"clips\",\"output_model\":\"$2\",\"epochs\":$3,\"batch\":8,\"hidden\":16,\"head\":16,\"checkpoint_every\":1,\"seed\":7}" \
    "http://127.0.0.1:$1/train"
}
c=$(train "$pa" long 600)
r1=$(cat "$tmp/train.out")
[ "$c" = 202 ] || die "POST /train through serving replica a: $c $r1"
j1=$(jget "$r1" 'd["id"]')
warn=$(jget "$r1" 'd.get("warning")')
if grep -q 'no trainer' <<<"$warn"; then ok "POST /train with no trainer: 202, job $j1 queued, reply warns: $warn"
else fail "POST /train with no trainer: the reply does not warn that no trainer runs: $r1"; fi
sleep 2
st=$(jget "$(job "$pb" "$j1")" 'd["state"]')
[ "$st" = queued ] && ok "job $j1 stays queued while only serving replicas run (seen from replica b)" \
                   || fail "job $j1 is '$st' with no trainer (want queued)"

# ------------------------------------------------------------ 2. a trainer
start t1 "$pt1" --train-only --resume-jobs
lib_wait_http "http://127.0.0.1:$pt1/readyz" 30 || die "trainer t1 not ready"
wait_job "$pa" "$j1" 'd["state"] == "running" and d["epoch"] >= 1' 60 || die "job $j1 did not start on the trainer: $(job "$pa" "$j1")"
runner=$(jget "$(job "$pa" "$j1")" 'd["runner"]')
if [ "${runner##*:}" = "${pid[t1]}" ]; then ok "job $j1 (posted through replica a) runs on the trainer (runner $runner)"
else fail "job $j1 runs on '$runner', not on the trainer (pid ${pid[t1]})"; fi
c=$(train "$pb" short 30)
r2=$(cat "$tmp/train.out")
[ "$c" = 202 ] || die "POST /train through serving replica b: $c $r2"
j2=$(jget "$r2" 'd["id"]')
tr=$(jget "$r2" 'd.get("trainer")')
if [ "${tr##*:}" = "${pid[t1]}" ] && [ -z "$(jget "$r2" 'd.get("warning")')" ]; then ok "POST /train through replica b names the trainer ($tr), no warning"
else fail "POST /train through replica b: trainer '$tr' (want pid ${pid[t1]}): $r2"; fi
holder=$(cat "$tmp/data/jobs/trainer.lock" 2>/dev/null)
[ "${holder##*:}" = "${pid[t1]}" ] && ok "jobs/trainer.lock names the trainer ($holder)" || fail "jobs/trainer.lock says '$holder', want pid ${pid[t1]}"
if grep -q "runs the training jobs" "$tmp/a.log" "$tmp/b.log"; then fail "a --serve-only replica took the trainer lock"; fi
"$LIB_PY" -c 'import json,sys; print(json.dumps({"features": [[0.1] * int(sys.argv[1])] * 3}))' "$dim" > "$tmp/one.json"
c=$(curl -s -o "$tmp/refine.out" -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data-binary "@$tmp/one.json" "http://127.0.0.1:$pt1/refine")
if [ "$c" = 421 ] && grep -q 'train-only' "$tmp/refine.out"; then ok "the --train-only trainer refuses POST /refine: 421 $(cat "$tmp/refine.out")"
else fail "POST /refine on the trainer: $c $(cat "$tmp/refine.out") (want 421)"; fi
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data-binary "@$tmp/one.json" "http://127.0.0.1:$pa/refine")
[ "$c" = 200 ] && ok "the serving replica refines (200)" || fail "POST /refine on serving replica a: $c"

# ------------------------------------------------------------ 3. SIGTERM mid-job
wait_job "$pa" "$j1" 'd["epoch"] >= 20' 120 || die "job $j1 makes no progress: $(job "$pa" "$j1")"
kill -TERM "${pid[t1]}"
for ((i = 0; i < 300; i++)); do kill -0 "${pid[t1]}" 2>/dev/null || break; sleep 0.1; done
wait "${pid[t1]}"; code=$?
[ "$code" = 0 ] && ok "trainer t1 exited 0 on SIGTERM" || fail "trainer t1 exited $code on SIGTERM"
d1=$(job "$pa" "$j1")
st=$(jget "$d1" 'd["state"]'); ep=$(jget "$d1" 'd["epoch"]')
if [ "$st" = interrupted ] && [ "$ep" -lt 600 ]; then ok "job $j1 is interrupted at epoch $ep of 600 (checkpointed)"
else die "job $j1 after SIGTERM to its trainer: state '$st' epoch '$ep' (want interrupted mid-job): $d1"; fi
sleep 1
st=$(jget "$(job "$pa" "$j1")" 'd["state"]')
[ "$st" = interrupted ] && ok "no serving replica picks it up (still interrupted 1 s later)" || fail "job $j1 went '$st' with no trainer"

# ------------------------------------------------------------ 4. a new trainer resumes
start t2 "$pt2" --resume-jobs
lib_wait_http "http://127.0.0.1:$pt2/readyz" 30 || die "trainer t2 not ready"
wait_job "$pb" "$j1" 'd["state"] in ("succeeded", "failed", "cancelled")' 300 || die "job $j1 did not finish after the new trainer started: $(job "$pb" "$j1")"
d1=$(job "$pb" "$j1")
st=$(jget "$d1" 'd["state"]'); from=$(jget "$d1" 'd["resumed_from"]["epoch"]'); runs=$(jget "$d1" 'd["runs"]')
runner=$(jget "$d1" 'd["runner"]'); mv=$(jget "$d1" 'd["model_version"]')
if [ "$st" = succeeded ] && [ "${from:-0}" -gt 0 ] && [ "$runs" = 2 ] && [ "${runner##*:}" = "${pid[t2]}" ]; then
  ok "job $j1 resumed by the new trainer from epoch $from without any request and succeeded (runs $runs, model long version $mv)"
else
  fail "job $j1 after the new trainer: state $st, resumed from epoch '$from', runs $runs, runner $runner (t2 is ${pid[t2]}): $d1"
fi
wait_job "$pa" "$j2" 'd["state"] == "succeeded"' 120 || fail "job $j2 did not succeed: $(job "$pa" "$j2")"
for p in "$pa" "$pb"; do
  for ((i = 0; i < 50; i++)); do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
        --data-binary "@$tmp/one.json" "http://127.0.0.1:$p/refine?model=long&version=$mv")
    [ "$c" = 200 ] && break
    sleep 0.2
  done
  [ "$c" = 200 ] || fail "serving replica on port $p does not serve model long version $mv: $c"
done
[ "$failed" = 0 ] && ok "the trained model is served by both serving replicas"

for n in a b t2; do kill -TERM "${pid[$n]}" 2>/dev/null; done
for n in a b t2; do
  wait "${pid[$n]}"; code=$?
  [ "$code" = 0 ] || fail "$n exited $code on SIGTERM"
done
exit $failed
