#!/usr/bin/env bash
# Installs the Debian 12 packages that building and serving need, or with --test also
# those only the test suite needs. Does nothing (no apt at all) when everything is
# already installed: CI re-runs and offline machines are fine.
# Usage: scripts/deps.sh [--test]       (as root, or with sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# Building sola and solad, and running the examples scripts/serve.sh prints (curl).
# libdnnl-dev: oneDNN, the default GEMM backend; libopenblas-dev: the other one
# (cmake -DSOLA_GEMM=openblas), which CI builds too.
pkgs=(build-essential cmake pkg-config libdnnl-dev libopenblas-dev libmicrohttpd-dev
      libjansson-dev libuv1-dev libpng-dev zlib1g-dev libhdf5-dev libsystemd-dev curl
      ca-certificates)
# Tools wanted by command rather than by package: a machine may have them from
# elsewhere.
cmds=()
if [ "${1:-}" = "--test" ]; then
  pkgs+=(check libcurl4-openssl-dev python3 python3-numpy python3-requests python3-yaml
         python3-h5py python3-pandas prometheus nginx chromium-driver python3-selenium shellcheck)
  cmds+=(chromium:chromium systemd-analyze:systemd)
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/deps.sh [--test]" >&2
  echo "deps.sh: unknown argument '$1'" >&2
  exit 2
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for c in "${cmds[@]}"; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "deps.sh: these Debian packages are missing: ${missing[*]}" >&2
    echo "deps.sh: run this script as root, or install sudo, to install them" >&2
    exit 1
  }
  SUDO=(sudo)
  sudo -v   # ask for the password now, not in the middle of a logged step
fi
echo "Installing ${#missing[@]} Debian packages and what they depend on (a few minutes on a fresh machine):" >&2
echo "  ${missing[*]}" >&2
logs=${SOLA_LOG_DIR:-build/logs}
step "apt-get update" "$logs/apt-update.log" "${SUDO[@]}" apt-get update
step "apt-get install" "$logs/apt-install.log" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
