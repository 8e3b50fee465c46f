#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the daemon and the tests need.
# Skips apt entirely when everything is already installed (CI re-runs, offline use).
# Usage: scripts/deps.sh [--test]   (--test adds what only the test suite needs)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev libmicrohttpd-dev libjansson-dev
      libuv1-dev libpng-dev zlib1g-dev libhdf5-dev curl)
# Tools wanted by command rather than by package: a machine may have them from
# elsewhere.
cmds=()
if [ "${1:-}" = "--test" ]; then
  pkgs+=(check libcurl4-openssl-dev python3 python3-numpy python3-requests python3-yaml
         python3-h5py prometheus nginx chromium-driver python3-selenium)
  cmds+=(chromium:chromium)
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
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
