#!/usr/bin/env bash
# The batch Jobs of deploy/k8s/batch, run here as Kubernetes would run their pods:
#   * refine-job.yaml: its command and args (the $(VAR)s from batch.env, the volumes
#     /data /in /out mapped to folders) once per completion index, all at once, with
#     JOB_COMPLETION_INDEX set as the Indexed Job sets it; the model is version 1 of a
#     model registered with a real solad, read from its data directory as the pods
#     read the solad-data volume. Then: the merged refine_meta.json and
#     missing_files.txt and every refined video equal a one-process `sola refine`;
#   * train-job.yaml: its very script, against that solad: the first pod gets SIGTERM
#     after epoch 2 of 4 (sola train stops itself there: SOLA_DEBUG_STOP_AFTER_EPOCHS)
#     and leaves a checkpoint; the replacement resumes (the weights of an
#     uninterrupted run), PUTs version 2,
#     activates it (GET /models says so; the registered bytes are the trained file);
#     run again, as a replaced pod would, it trains nothing and accepts its own
#     earlier registration; with another file under the same version it exits 2.
# Usage: tests/deploy/batch.sh [SOLAD]   (default: $SOLA_BIN/solad, else build/solad)
# Exit status: 0 pass, 1 fail, 77 skipped ("SKIP:": a tool is missing).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
root="$(cd "$LIB_HERE/../.." && pwd)"
solad=${1:-${SOLA_BIN:+$SOLA_BIN/solad}}
solad=${solad:-$root/build/solad}
bin="$(cd "$(dirname "$solad")" && pwd)"
if [ ! -x "$solad" ] || [ ! -x "$bin/sola" ]; then
  echo "SKIP: no solad/sola binaries next to $solad (build them first)"
  exit 77
fi
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import yaml' 2>/dev/null; then
    py=$cand; break
  fi
done
if [ -z "$py" ] || ! command -v curl >/dev/null 2>&1; then
  echo "SKIP: needs curl and python3 with PyYAML (Debian: curl python3-yaml)"
  exit 77
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sola-batch.XXXXXX")"
cleanup() { lib_cleanup; rm -rf "$tmp"; }
trap cleanup EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }
ok()   { echo "ok:   $*"; }
export PATH="$bin:$PATH" OPENBLAS_NUM_THREADS=1

# What the pods would run, from the YAML: one line per argument (refine), the script
# (train), the completions.
"$py" - "$root/deploy/k8s/batch" "$tmp" <<'PY'
import sys, yaml
kdir, out = sys.argv[1], sys.argv[2]
jobs = {}
for f in ("refine-job.yaml", "train-job.yaml"):
    for d in yaml.safe_load_all(open(f"{kdir}/{f}")):
        if d and d.get("kind") == "Job":
            jobs[d["metadata"]["name"]] = d
ref = jobs["sola-refine"]
c = ref["spec"]["template"]["spec"]["containers"][0]
open(f"{out}/refine.argv", "w").write("\n".join(str(a) for a in c["command"] + c["args"]) + "\n")
open(f"{out}/completions", "w").write(str(ref["spec"]["completions"]))
tr = jobs["sola-train"]["spec"]["template"]["spec"]["containers"][0]
assert tr["command"][:2] == ["/bin/sh", "-c"], tr["command"][:2]
open(f"{out}/train.sh", "w").write(tr["command"][2])
PY
[ -s "$tmp/train.sh" ] || { echo "FAIL: could not read the Jobs of deploy/k8s/batch"; exit 1; }
N=$(cat "$tmp/completions")

# solad with a token, and version 1 of model m registered through it.
mkdir -p "$tmp/data" "$tmp/in" "$tmp/out" "$tmp/tmp"
printf 'batch-test-token' > "$tmp/token"
port=$(lib_free_port)
"$solad" --listen "127.0.0.1:$port" --data "$tmp/data" --token-file "$tmp/token" \
  --rescan-interval 1 > "$tmp/solad.log" 2>&1 &
lib_track $!
lib_wait_http "http://127.0.0.1:$port/readyz" 30 || { cat "$tmp/solad.log"; exit 1; }
url="http://127.0.0.1:$port"
sola synth -o "$tmp/in/ds" --videos 24 --dim 16 --length 40 >/dev/null 2>&1
head -c 100 "$tmp/in/ds/features/video_0003.npy" > "$tmp/in/ds/features/video_bad.npy"
sola train --dim 16 --hidden 8 --head 8 --epochs 2 --lr 1e-2 --allow-missing "$tmp/in/ds/features" \
  -o "$tmp/m1.safetensors" >/dev/null 2>&1 || fail "sola train of version 1"
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$tmp/m1.safetensors" \
  -H 'Authorization: Bearer batch-test-token' "$url/models/m/versions/1")
[ "$code" = 201 ] || fail "PUT /models/m/versions/1: $code"

# ---- the Indexed Job: every index at once
export SOLA_MODEL=m SOLA_MODEL_VERSION=1 SOLA_DATASET=ds/features SOLA_REFINED=refined SOLA_CPUS=1
mapfile -t argv < <(sed -e "s#\$(SOLA_MODEL)#$SOLA_MODEL#g; s#\$(SOLA_MODEL_VERSION)#$SOLA_MODEL_VERSION#g" \
  -e "s#\$(SOLA_DATASET)#$SOLA_DATASET#g; s#\$(SOLA_REFINED)#$SOLA_REFINED#g; s#\$(SOLA_CPUS)#$SOLA_CPUS#g" \
  -e "s#^/data/#$tmp/data/#; s#^/in/#$tmp/in/#; s#^/out/#$tmp/out/#; s#^/usr/local/bin/sola\$#$bin/sola#" \
  "$tmp/refine.argv")
if grep -q '\$(' <(printf '%s\n' "${argv[@]}"); then fail "unresolved \$(VAR) in the refine Job: ${argv[*]}"; fi
pids=""
for ((i = 0; i < N; i++)); do
  JOB_COMPLETION_INDEX=$i "${argv[@]}" > /dev/null 2> "$tmp/shard$i.err" &
  pids="$pids $!"
done
i=0
for p in $pids; do
  wait "$p" || fail "index $i of the refine Job exited $? ($(tail -2 "$tmp/shard$i.err"))"
  i=$((i + 1))
done
[ -s "$tmp/out/refined/refine_meta.json" ] && ok "$N indices of the refine Job ran; the last merged the parts" \
  || fail "no merged refine_meta.json after the $N indices"
sola refine -m "$tmp/data/models/m/1.safetensors" "$tmp/in/ds/features" -o "$tmp/one" \
  --allow-missing --threads 1 > /dev/null 2>&1
same=1
for f in "$tmp"/one/*; do
  cmp -s "$f" "$tmp/out/refined/$(basename "$f")" || { same=0; fail "$(basename "$f") differs from one process's"; }
done
grep -qx video_bad "$tmp/out/refined/missing_files.txt" || fail "the corrupt video is not in missing_files.txt"
[ $same = 1 ] && ok "every output of the Job, refine_meta.json and missing_files.txt equal one process's"

# ---- the train Job's script
export SOLA_IN="$tmp/in" SOLA_OUT="$tmp/out" SOLA_TMP="$tmp/tmp" SOLA_TOKEN_FILE="$tmp/token" \
  SOLA_TRAIN_DATASET=ds/features SOLA_TRAIN_MODEL=m SOLA_TRAIN_VERSION=2 SOLA_TRAIN_EPOCHS=3 \
  SOLA_TRAIN_FLAGS="--dim 16 --hidden 8 --head 8 --lr 1e-2 --allow-missing" SOLA_ACTIVATE=1 \
  SOLAD_URL="$url"
trained="$tmp/out/train/m/2.safetensors"
# The first pod is replaced mid-training: its sola train stops itself after epoch 2
# of 4, gets SIGTERM as a pod being deleted does, checkpoints and exits.
SOLA_DEBUG_STOP_AFTER_EPOCHS=2 SOLA_TRAIN_EPOCHS=4 sh -c "$(cat "$tmp/train.sh")" > "$tmp/train0.log" 2>&1 &
shpid=$!
lib_track $shpid
victim=""
for ((i = 0; i < 600; i++)); do
  victim=$(ps -o pid=,stat= --ppid "$shpid" 2>/dev/null | awk '$2 ~ /^T/ {print $1}')
  [ -n "$victim" ] && break
  kill -0 "$shpid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$victim" ]; then
  fail "the first train pod's sola train never stopped after epoch 2: $(tail -3 "$tmp/train0.log")"
else
  kill -TERM "$victim"; kill -CONT "$victim"
fi
wait "$shpid" && fail "the interrupted train pod exited 0"
[ -e "$tmp/out/train/m/2.ckpt.safetensors" ] && [ ! -e "$trained" ] \
  && ok "the first train pod, SIGTERM after epoch 2 of 4: checkpoint written, nothing registered" \
  || fail "after SIGTERM: no checkpoint, or a model already ($(tail -2 "$tmp/train0.log"))"
# The replacement pod resumes, registers, activates.
if SOLA_TRAIN_EPOCHS=4 sh -c "$(cat "$tmp/train.sh")" > "$tmp/train1.log" 2>&1 \
   && grep -q "resuming from" "$tmp/train1.log" && ! grep -q "^epoch 1/4" "$tmp/train1.log"; then
  ok "the replacement pod resumed at epoch 3 and registered version 2"
else
  fail "the replacement train pod: $(tail -5 "$tmp/train1.log")"
fi
# ... with the weights of an uninterrupted run: both models refine a video alike.
# shellcheck disable=SC2086
sola train "$tmp/in/ds/features" -o "$tmp/ref.safetensors" --epochs 4 --threads 1 \
  $SOLA_TRAIN_FLAGS > /dev/null 2>&1 || fail "the uninterrupted reference training"
sola refine -m "$trained" "$tmp/in/ds/features/video_0001.npy" -o "$tmp/r1.npy" 2>/dev/null
sola refine -m "$tmp/ref.safetensors" "$tmp/in/ds/features/video_0001.npy" -o "$tmp/r2.npy" 2>/dev/null
cmp -s "$tmp/r1.npy" "$tmp/r2.npy" && ! cmp -s "$tmp/r1.npy" "$tmp/in/ds/features/video_0001.npy" \
  && ok "the resumed model refines bit for bit as an uninterrupted run's" \
  || fail "the resumed model differs from an uninterrupted run's"
curl -s -o "$tmp/got.safetensors" "$url/models/m/versions/2"
cmp -s "$tmp/got.safetensors" "$trained" && ok "GET /models/m/versions/2 is the trained file" \
  || fail "the registered version 2 is not the trained file"
curl -s "$url/models" | tr -d ' \n' | grep -q '"name":"m","active":2,"versions":\[1,2\]' \
  && ok "version 2 active" || fail "version 2 is not active: $(curl -s "$url/models")"
[ -e "$tmp/out/train/m/2.ckpt.safetensors" ] && fail "the checkpoint stayed after success"
# a replaced pod: no training, its own registration accepted
if sh -c "$(cat "$tmp/train.sh")" > "$tmp/train2.log" 2>&1 && grep -q "registered already" "$tmp/train2.log" \
   && ! grep -q "epoch" "$tmp/train2.log"; then
  ok "run again (a replaced pod): nothing retrained, the earlier registration accepted"
else
  fail "run again: $(tail -5 "$tmp/train2.log")"
fi
# another model under a version that exists: exit 2 (podFailurePolicy: FailJob)
cp "$tmp/m1.safetensors" "$trained"
sh -c "$(cat "$tmp/train.sh")" > "$tmp/train3.log" 2>&1
rc=$?
if [ $rc = 2 ] && grep -q "is another model" "$tmp/train3.log"; then
  ok "another file under an existing version: exit 2, named"
else
  fail "another file under version 2: exit $rc, $(tail -3 "$tmp/train3.log")"
fi
exit $failed
