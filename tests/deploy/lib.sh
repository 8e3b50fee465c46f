# shellcheck shell=bash
# Helpers shared by the tests in tests/deploy (sourced, not run).
# Every process a test starts is recorded in $LIB_PIDS and stopped by lib_cleanup,
# by pid, never by name.

LIB_PIDS=""
LIB_NGINX_DIR=""

# A free loopback TCP port (bind to port 0, read it back, release it; the tiny race
# with other programs is acceptable for a test).
lib_free_port() {
  "$LIB_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# lib_wait_http URL [SECONDS] [STATUS]: polls until URL answers STATUS (default 200).
lib_wait_http() {
  local url=$1 secs=${2:-20} want=${3:-200} i code
  for ((i = 0; i < secs * 10; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = "$want" ] && return 0
    sleep 0.1
  done
  echo "lib_wait_http: $url did not answer $want within ${secs}s (last: $code)" >&2
  return 1
}

# lib_start_nginx DIR LISTEN_PORT REPLICA_PORT...: config from deploy/nginx/solad.conf
# (tests/deploy/nginx_conf.sh) plus an X-Replica response header naming the replica
# that answered; runs nginx as a daemon with everything under DIR.
lib_start_nginx() {
  local dir=$1 port=$2; shift 2
  "$LIB_HERE/nginx_conf.sh" "$dir" "$port" "$@" || return 1
  sed -i 's#^\(    server_name .*\)$#\1\n    add_header X-Replica $upstream_addr always;#' "$dir/solad.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" || { cat "$dir/logs/error.log" >&2; return 1; }
  LIB_NGINX_DIR=$dir
  lib_wait_port "$port" 10
}

# lib_wait_port PORT [SECONDS]: until something accepts TCP connections on the port
# (without sending a request that would reach, and be counted by, an upstream).
lib_wait_port() {
  local port=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "lib_wait_port: nothing listens on 127.0.0.1:$port after ${secs}s" >&2
  return 1
}

lib_stop_nginx() {
  if [ -n "$LIB_NGINX_DIR" ] && [ -s "$LIB_NGINX_DIR/nginx.pid" ]; then
    nginx -p "$LIB_NGINX_DIR" -c "$LIB_NGINX_DIR/nginx.conf" -s stop 2>/dev/null \
      || kill "$(cat "$LIB_NGINX_DIR/nginx.pid")" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do [ -e "$LIB_NGINX_DIR/nginx.pid" ] || break; sleep 0.1; done
  fi
  LIB_NGINX_DIR=""
}

lib_track() { LIB_PIDS="$LIB_PIDS $1"; }

# Stops nginx and every tracked process (SIGTERM, then SIGKILL after 5 s).
lib_cleanup() {
  lib_stop_nginx
  local p i
  for p in $LIB_PIDS; do kill "$p" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    local alive=""
    for p in $LIB_PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $LIB_PIDS; do kill -9 "$p" 2>/dev/null; done
  LIB_PIDS=""
}

# The first python3 on PATH, or Debian's.
LIB_PY=python3
command -v python3 >/dev/null 2>&1 || LIB_PY=/usr/bin/python3
LIB_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
