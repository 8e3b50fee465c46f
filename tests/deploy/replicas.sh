#!/usr/bin/env bash
# Several solad replicas sharing one --data directory behind nginx, configured from
# deploy/nginx/solad.conf (ports substituted, everything under a temp directory):
#   1. bounded load through nginx: zero failed requests, spread over the replicas;
#   2. SIGTERM to one replica during load: zero failed requests through nginx, a
#      request in progress on that replica at SIGTERM completes, and the replica
#      exits 0 within its --drain-timeout;
#   3. a model version uploaded and activated through nginx is served by every
#      replica, with zero failed requests under load during the activation. solad
#      should notice the shared directory's changes by itself; when it does not,
#      this prints "SKIP: solad lacks automatic shared-directory watching" and
#      checks the same after a SIGHUP to every replica (solad's manual rescan);
#   4. training jobs submitted to two replicas never run at the same time, a lock
#      file appears in the shared directory, and both jobs succeed ("SKIP: solad
#      lacks ..." while the training routes or the lock do not exist);
#   5. every replica exits 0 on SIGTERM.
# A feature check that fails is a SKIP only while `solad --help` does not mention the
# feature; once it does, a failure is a failure.
# Usage: tests/deploy/replicas.sh [SOLAD]   (default: $SOLA_BIN/solad, else build/solad)
# Env:   REPLICAS (3), REQUESTS per load phase (240), KEEP=1 keeps the temp directory.
# Exit status: 0 pass, 1 fail, 77 skipped (no solad binary, nginx, curl or python3).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
root="$(cd "$LIB_HERE/../.." && pwd)"
solad=${1:-${SOLA_BIN:+$SOLA_BIN/solad}}
solad=${solad:-$root/build/solad}
if [ ! -x "$solad" ]; then
  echo "SKIP: no solad binary at $solad (build it first)"
  exit 77
fi
for tool in nginx curl "$LIB_PY"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not installed (Debian: nginx curl python3)"
    exit 77
  fi
done
n_rep=${REPLICAS:-3}
n_req=${REQUESTS:-240}
dim=64
drain=5
tmp="$(mktemp -d "${TMPDIR:-/tmp}/solad-replicas.XXXXXX")"
cleanup() {
  lib_cleanup
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
failed=0
fail() { echo "FAIL: [${SECONDS}s] $*"; failed=1; }
ok()   { echo "ok:   [${SECONDS}s] $*"; }
skip() { echo "SKIP: [${SECONDS}s] $*"; }
help_text=$("$solad" --help 2>&1 || true)
# feature_or_fail NAME REGEX MESSAGE: a failed check of a feature solad's --help does
# not mention is a SKIP; otherwise a FAIL.
feature_or_fail() {
  if grep -qiE "$2" <<<"$help_text"; then fail "$3"; else skip "solad lacks $1 ($3; solad --help mentions no /$2/)"; fi
}

mkdir -p "$tmp/data"
printf 'test-token-%s' "$RANDOM$RANDOM" > "$tmp/token"
token=$(cat "$tmp/token")
auth=(-H "Authorization: Bearer $token")

declare -a ports pids
# Replica 0 is stopped under load in part 2: slow its compute down (a testing flag of
# solad) so that requests are still in flight when SIGTERM arrives.
slow=()
grep -q -- '--debug-work-delay-ms' <<<"$help_text" && slow=(--debug-work-delay-ms 600)
# Replicas follow each other through the shared directory every --rescan-interval
# seconds (default 5); the convergence checks below allow 4 s, so rescan every second.
rescan=()
grep -q -- '--rescan-interval' <<<"$help_text" && rescan=(--rescan-interval 1)
start_replica() {   # start_replica INDEX [EXTRA FLAGS...]
  local i=$1; shift
  "$solad" --listen "127.0.0.1:${ports[$i]}" --data "$tmp/data" --dim "$dim" \
    --workers 2 --threads 1 --queue 64 --drain-timeout "$drain" \
    --token-file "$tmp/token" --log-format text "${rescan[@]}" "$@" >> "$tmp/replica$i.log" 2>&1 &
  pids[$i]=$!
  lib_track "${pids[$i]}"
}
for ((i = 0; i < n_rep; i++)); do
  ports[$i]=$(lib_free_port)
  if [ "$i" = 0 ]; then start_replica "$i" "${slow[@]}"; else start_replica "$i"; fi
done
for ((i = 0; i < n_rep; i++)); do
  if ! lib_wait_http "http://127.0.0.1:${ports[$i]}/readyz" 30; then
    echo "--- replica $i log:"; tail -20 "$tmp/replica$i.log"
    fail "replica $i (port ${ports[$i]}) not ready"
    exit 1
  fi
done
ok "$n_rep replicas ready on one shared --data directory"
pn=$(lib_free_port)
lib_start_nginx "$tmp/nginx" "$pn" "${ports[@]}" || { fail "nginx did not start"; exit 1; }
base="http://127.0.0.1:$pn"

# load NAME [extra load.py args...]: runs load.py in the background, sets load_pid.
load() {
  local name=$1; shift
  "$LIB_PY" "$LIB_HERE/load.py" "$base" --dim "$dim" --length 16 --concurrency 4 \
    --progress "$tmp/$name.progress" "$@" > "$tmp/$name.json" 2> "$tmp/$name.err" &
  load_pid=$!
  lib_track "$load_pid"
}
progress() { cat "$tmp/$1.progress" 2>/dev/null || echo 0; }
wait_progress() {   # wait_progress NAME N SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(progress "$1")" -ge "$2" ] && return 0
    kill -0 "$load_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
summary() { "$LIB_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]] if sys.argv[2] in d else "")' "$tmp/$1.json" "$2"; }
check_load() {      # check_load NAME WHAT
  if [ ! -s "$tmp/$1.json" ]; then fail "$2: load generator failed: $(tail -3 "$tmp/$1.err")"; return; fi
  local nok nfail
  nok=$(summary "$1" ok); nfail=$(summary "$1" failed)
  if [ "$nfail" = 0 ] && [ "$nok" -gt 0 ]; then ok "$2: $nok requests, 0 failed"
  else fail "$2: $nfail of $((nok + nfail)) requests failed: $(summary "$1" errors)"; fi
}

# ---------------------------------------------------------------- 1. steady load
load steady --max-requests "$n_req"
wait "$load_pid"
check_load steady "load through nginx"
nrep_used=$("$LIB_PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["replicas"]))' "$tmp/steady.json")
if [ "$nrep_used" -ge 2 ]; then ok "requests spread over $nrep_used replicas"
else fail "all requests went to one replica ($(summary steady replicas))"; fi

# ---------------------------------------------------------------- 2. SIGTERM under load
load drain --max-requests 20000 --stop-file "$tmp/drain.stop" --pause 0.005
if ! wait_progress drain 30 30; then fail "load did not get going before the SIGTERM"; fi
victim=0
vpid=${pids[$victim]}
# One request sent straight to the victim and still computing when SIGTERM arrives
# (600 ms of --debug-work-delay-ms vs 200 ms): it must complete, not fail.
"$LIB_PY" -c 'import json,sys; print(json.dumps({"features": [[0.1] * int(sys.argv[1])] * 3}))' "$dim" > "$tmp/one.json"
if [ ${#slow[@]} -gt 0 ]; then
  curl -s -o "$tmp/inflight.out" -w '%{http_code}' --max-time 30 -X POST \
    -H 'Content-Type: application/json' --data-binary "@$tmp/one.json" \
    "http://127.0.0.1:${ports[$victim]}/refine" > "$tmp/inflight.code" &
  inflight_pid=$!
  sleep 0.2
fi
kill -TERM "$vpid"
t0=$(date +%s)
code=""
for ((i = 0; i < (drain + 10) * 10; i++)); do
  kill -0 "$vpid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$vpid" 2>/dev/null; then
  fail "replica $victim still running $((drain + 10)) s after SIGTERM (--drain-timeout $drain)"
  kill -KILL "$vpid" 2>/dev/null
fi
wait "$vpid"; code=$?
took=$(( $(date +%s) - t0 ))
inflight=$(grep -oE 'draining \([0-9]+ requests in progress' "$tmp/replica$victim.log" | grep -oE '[0-9]+' | tail -1)
if [ "$code" = 0 ]; then ok "replica $victim exited 0 after SIGTERM (in ~${took}s, drain timeout ${drain}s, ${inflight:-?} requests in progress at SIGTERM)"
else fail "replica $victim exited with status $code after SIGTERM (want 0)"; tail -5 "$tmp/replica$victim.log"; fi
if [ ${#slow[@]} -gt 0 ]; then
  wait "$inflight_pid"
  c=$(cat "$tmp/inflight.code")
  if [ "$c" = 200 ]; then ok "a request in progress on replica $victim at SIGTERM completed (200)"
  else fail "a request in progress on replica $victim at SIGTERM got '$c': $(head -c 300 "$tmp/inflight.out")"; fi
else
  skip "solad has no --debug-work-delay-ms: no request was surely in progress at SIGTERM"
fi
after=$(progress drain)
wait_progress drain $((after + 60)) 60 || fail "load stalled after the SIGTERM"
touch "$tmp/drain.stop"
wait "$load_pid"
check_load drain "load through nginx while replica $victim drained and stopped"
# Back to full strength for what follows.
start_replica "$victim"
lib_wait_http "http://127.0.0.1:${ports[$victim]}/readyz" 30 || fail "replica $victim did not come back"

# ---------------------------------------------------------------- 3. shared model directory
"$LIB_PY" "$LIB_HERE/make_files.py" model "$tmp/m1.safetensors" --dim "$dim" --alpha 0 --seed 1
"$LIB_PY" "$LIB_HERE/make_files.py" model "$tmp/m2.safetensors" --dim "$dim" --alpha 0.5 --seed 2
put() {   # put PATH FILE -> status
  curl -s -o "$tmp/put.out" -w '%{http_code}' --max-time 30 -X PUT "${auth[@]}" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$base$1"
}
# version_on PORT -> X-Model-Version of a refine with model=shared on that replica, or "-"
version_on() {
  local h
  h=$(curl -s -o /dev/null -D - --max-time 10 -X POST -H 'Content-Type: application/json' \
      --data-binary "@$tmp/one.json" "http://127.0.0.1:$1/refine?model=shared" 2>/dev/null || true)
  grep -i '^X-Model-Version:' <<<"$h" | tr -d '\r' | awk '{print $2}' | grep . || echo -
}
# has_version PORT V -> 0 if GET /models/shared on that replica lists version V
has_version() {
  curl -s --max-time 10 "http://127.0.0.1:$1/models/shared" 2>/dev/null |
    grep -oE '"versions": ?\[[0-9, ]*\]' | grep -oE '[0-9]+' | grep -qx "$2"
}
# everywhere PRED ARG SECONDS: PRED PORT ARG holds on every replica within SECONDS;
# sets seen to what each replica said on failure
serves() { [ "$(version_on "$1")" = "$2" ]; }
everywhere() {
  local pred=$1 arg=$2 deadline=$((SECONDS + $3)) j okc
  while :; do
    okc=0
    for ((j = 0; j < n_rep; j++)); do "$pred" "${ports[$j]}" "$arg" && okc=$((okc + 1)); done
    [ "$okc" = "$n_rep" ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.2
  done
  seen=""
  for ((j = 0; j < n_rep; j++)); do
    if "$pred" "${ports[$j]}" "$arg"; then seen+=" replica$j=yes"; else seen+=" replica$j=no"; fi
  done
  return 1
}
# converge PRED ARG WHAT: PRED holds on every replica within 4 s on its own (automatic
# watching of the shared directory); failing that, after a SIGHUP to each replica
# (solad's documented manual rescan). Prints ok/SKIP/FAIL.
auto_re='watch|poll|inotify|scan-interval'
converge() {
  local pred=$1 arg=$2 what=$3 j
  if everywhere "$pred" "$arg" 4; then ok "$what, on every replica on its own"; return 0; fi
  local before=$seen
  if grep -qiE "$auto_re" <<<"$help_text"; then
    fail "$what: not on every replica within 4 s:$before"
  else
    skip "solad lacks automatic shared-directory watching ($what: not on every replica within 4 s:$before; solad --help mentions no /$auto_re/)"
  fi
  for ((j = 0; j < n_rep; j++)); do kill -HUP "${pids[$j]}"; done
  if everywhere "$pred" "$arg" 10; then ok "$what, on every replica after SIGHUP"
  else fail "$what: not on every replica even after SIGHUP:$seen"; fi
}
c=$(put /models/shared/versions/1 "$tmp/m1.safetensors")
if [ "${c:0:1}" != 2 ]; then
  fail "PUT /models/shared/versions/1 through nginx: $c $(cat "$tmp/put.out")"
else
  ok "model shared v1 uploaded through nginx ($c)"
  converge serves 1 "shared v1 (uploaded to one replica) served"
  c=$(put /models/shared/versions/2 "$tmp/m2.safetensors")
  [ "${c:0:1}" = 2 ] || fail "PUT /models/shared/versions/2: $c $(cat "$tmp/put.out")"
  # Activation through nginx may land on any replica: each must know v2 first.
  converge has_version 2 "shared v2 (uploaded to one replica) listed"
  load activate --max-requests 20000 --stop-file "$tmp/activate.stop" --query model=shared --pause 0.02
  wait_progress activate 20 30 || fail "load did not get going before the activation"
  c=$(curl -s -o "$tmp/act.out" -w '%{http_code}' --max-time 30 -X POST "${auth[@]}" \
      -H 'Content-Type: application/json' --data '{"version": 2}' "$base/models/shared/activate")
  if [ "${c:0:1}" = 2 ]; then ok "shared v2 activated through nginx ($c)"
  else fail "POST /models/shared/activate through nginx: $c $(cat "$tmp/act.out")"; fi
  converge serves 2 "shared v2 (activated through one replica) served"
  after=$(progress activate)
  wait_progress activate $((after + 30)) 30 || true
  touch "$tmp/activate.stop"
  wait "$load_pid"
  check_load activate "load on model shared through nginx during activation and rescans"
fi

# ---------------------------------------------------------------- 4. one trainer at a time
lock_re='lock'
code_jobs=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:${ports[0]}/jobs")
if [ "$code_jobs" = 404 ] || [ "$code_jobs" = 405 ]; then
  skip "solad lacks training routes (GET /jobs answers $code_jobs): the one-trainer-at-a-time check did not run"
  jobs_ok=0
else
  jobs_ok=1
fi
for k in 1 2 3 4; do
  [ "$jobs_ok" = 1 ] || break
  "$LIB_PY" "$LIB_HERE/make_files.py" npy "$tmp/item$k.npy" --length 40 --dim "$dim" --seed "$k"
  c=$(put "/datasets/tiny/items/v$k" "$tmp/item$k.npy")
  if [ "${c:0:1}" != 2 ]; then fail "PUT /datasets/tiny/items/v$k: $c $(cat "$tmp/put.out")"; jobs_ok=0; fi
done
for k in 0 1; do
  [ "$jobs_ok" = 1 ] || break
  c=$(curl -s -o "$tmp/train$k.out" -D "$tmp/train$k.hdr" -w '%{http_code}' --max-time 30 -X POST "${auth[@]}" \
      -H 'Content-Type: application/json' \
      --data "{\"dataset\":\"tiny\",\"objective\":\"sola\",\"output_model\":\"trained$k\",\"epochs\":3,\"batch\":4}" \
      "http://127.0.0.1:${ports[$k]}/train")
  if [ "$c" != 202 ]; then fail "POST /train to replica $k: $c $(cat "$tmp/train$k.out")"; jobs_ok=0; fi
done
if [ "$jobs_ok" = 1 ]; then
  # Poll every replica's job list: at most one job running at any time, both finish.
  "$LIB_PY" - "$tmp/data" "${ports[@]}" > "$tmp/trainwatch.out" <<'PY'
import glob, json, os, sys, time, urllib.request
data, ports = sys.argv[1], sys.argv[2:]
max_running, lock_seen, states = 0, False, {}
t0 = time.time()
while time.time() - t0 < 90:
    # One replica's list is one moment; the union over replicas asked one after the
    # other is not (job 1 may end and job 2 start between two questions), so count
    # each replica's view alone. The records' times are checked below as well.
    for p in ports:
        running = set()
        try:
            with urllib.request.urlopen("http://127.0.0.1:%s/jobs" % p, timeout=5) as r:
                d = json.load(r)
        except Exception:
            continue
        jobs = d.get("jobs", d) if isinstance(d, dict) else d
        for j in jobs if isinstance(jobs, list) else []:
            jid, st = j.get("id"), j.get("state", j.get("status"))
            if st == "running":
                running.add(jid)
            if st is not None:
                states[jid] = st
        max_running = max(max_running, len(running))
    if glob.glob(os.path.join(data, "**", "*lock*"), recursive=True):
        lock_seen = True
    mine = [s for s in states.values()]
    if len(states) >= 2 and all(s in ("succeeded", "failed", "cancelled") for s in mine):
        break
    time.sleep(0.2)
# The records say when each job ran (UTC, to the second): the runs must not overlap.
spans = []
for jid in states:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/jobs/%s" % (ports[0], jid), timeout=5) as r:
            j = json.load(r)
        spans.append((j.get("started") or "", j.get("finished") or "", jid))
    except Exception:
        pass
spans.sort()
for a, b in zip(spans, spans[1:]):
    if a[0] and a[1] and b[0] and b[0] < a[1]:
        max_running = max(max_running, 2)  # job b started before job a finished
print(json.dumps({"max_running": max_running, "lock_seen": lock_seen, "states": states,
                  "spans": spans}))
PY
  tw=$(cat "$tmp/trainwatch.out")
  # Any replica may get GET /jobs/ID (nginx picks one): each must know the job, and
  # its event stream must come through nginx unbuffered.
  jid=$(tr -d '\r' < "$tmp/train0.hdr" | awk -F': ' 'tolower($1) == "location" { sub(".*/jobs/", "", $2); print $2 }')
  if [ -n "$jid" ]; then
    known=""
    for ((j = 0; j < n_rep; j++)); do
      c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:${ports[$j]}/jobs/$jid")
      [ "$c" = 200 ] || known+=" replica$j=$c"
    done
    if [ -z "$known" ]; then ok "job $jid is visible from every replica"
    else feature_or_fail "jobs shared between replicas" "$lock_re" "GET /jobs/$jid not 200 on:$known"; fi
    ev=$(curl -s -N --max-time 15 "$base/jobs/$jid/events" | head -c 4096 || true)
    if grep -q '^data:' <<<"$ev"; then ok "GET /jobs/$jid/events through nginx streams events"
    else feature_or_fail "job events through any replica" "$lock_re" "GET /jobs/$jid/events through nginx gave no 'data:' line: ${ev:0:200}"; fi
  else
    fail "POST /train answered 202 without a Location: /jobs/ID header"
  fi
  read -r maxr lockseen nsucc <<<"$("$LIB_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["max_running"], d["lock_seen"], sum(s == "succeeded" for s in d["states"].values()))' "$tw")"
  if [ "$maxr" -le 1 ] && [ "$lockseen" = True ] && [ "$nsucc" -ge 2 ]; then
    ok "two training jobs on two replicas: never both running, a lock file in the data directory, both succeeded"
  else
    feature_or_fail "a training lock in the shared directory" "$lock_re" "training jobs on two replicas: $tw"
  fi
fi

# ---------------------------------------------------------------- 5. clean exits
lib_stop_nginx
for ((i = 0; i < n_rep; i++)); do kill -TERM "${pids[$i]}" 2>/dev/null; done
for ((i = 0; i < n_rep; i++)); do
  wait "${pids[$i]}"; code=$?
  [ "$code" = 0 ] || fail "replica $i exited with status $code on SIGTERM (want 0)"
done
[ "$failed" = 0 ] && ok "every replica exited 0 on SIGTERM"
exit $failed
