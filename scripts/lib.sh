# shellcheck shell=bash
# lib.sh -- sourced by deps.sh, serve.sh and test.sh: run one setup step with its
# output in a log file, show that it is alive, and show its own output if it fails.
#
#   step "TITLE" LOGFILE COMMAND [ARGS...]
#
# Prints "== TITLE", then while COMMAND runs the last line of its output and the
# seconds so far (redrawn in place on a terminal, one line every 30 s otherwise), then
# "   done (N s)". When COMMAND fails: the last 40 lines of LOGFILE, its path, and the
# caller exits with COMMAND's status -- the failing step's own message is never hidden.

step() {
  local title=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$log")"
  local t0=$SECONDS tty=0 last=0 rc=0 line pid
  [ -t 2 ] && tty=1
  echo "== $title" >&2
  "$@" >"$log" 2>&1 </dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    line=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-90)
    if [ $tty = 1 ]; then
      printf '\r\033[K   %4d s  %s' $((SECONDS - t0)) "$line" >&2
    elif [ $((SECONDS - last)) -ge 30 ]; then
      last=$SECONDS
      printf '   %4d s  %s\n' $((SECONDS - t0)) "$line" >&2
    fi
  done
  wait "$pid" || rc=$?
  [ $tty = 1 ] && printf '\r\033[K' >&2
  if [ $rc -ne 0 ]; then
    echo "FAILED: $title (exit $rc). Last lines of its output ($log):" >&2
    tail -n 40 "$log" >&2
    exit $rc
  fi
  echo "   done ($((SECONDS - t0)) s)" >&2
}
