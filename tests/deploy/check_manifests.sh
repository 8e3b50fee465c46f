#!/usr/bin/env bash
# Offline validation of the deployment files: Dockerfile, deploy/systemd, deploy/nginx,
# deploy/k8s. Uses the real tools when they are installed (kubectl kustomize,
# systemd-analyze verify, nginx -t, hadolint, shellcheck) and says SKIP when one is
# not; the structural checks (probe paths, ports, env names, limits that must agree
# across files) always run, in check_manifests.py (needs python3-yaml).
# Usage: tests/deploy/check_manifests.sh [ROOT]     (ROOT defaults to this checkout)
# Env:   SOLAD=path/to/solad  also checks that the Dockerfile's runtime stage installs
#        the Debian package of every library that binary links against.
#        SKIP_TOOLS="kubectl nginx ..."  behave as if those tools were not installed
#        (to exercise the fallbacks a fresh Debian machine takes).
# Exit status: 1 a check failed; else 77 when a check could not run because its tool is
#        missing ("SKIP:" lines; scripts/deps.sh --test installs them all); else 0.
#        "FORBIDDEN:" lines name checks this machine does not allow (not a skip here;
#        tests/daemon/test_deploy.c reports them as skipped by the machine).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "${1:-$here/../..}" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/solad-manifests.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
failed=0
skipped=0
fail() { echo "FAIL: $*"; failed=1; }
ok()   { echo "ok:   $*"; }
skip() { echo "SKIP: $*"; skipped=1; }
forbidden() { echo "FORBIDDEN: $*"; }
have() { [[ " ${SKIP_TOOLS:-} " != *" $1 "* ]] && command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- python + PyYAML
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import yaml' 2>/dev/null; then
    py=$cand; break
  fi
done
if [ -z "$py" ]; then
  fail "no python3 with PyYAML (Debian: apt-get install python3-yaml); structural checks not run"
else
  if "$py" "$here/check_manifests.py" "$root"; then
    ok "structure of Dockerfile, systemd units, nginx config, k8s base and batch (raw YAML)"
  else
    failed=1
  fi
fi

# ---------------------------------------------------------------- kustomize
if have kubectl; then
  if kubectl kustomize "$root/deploy/k8s" > "$tmp/base.yaml" 2> "$tmp/kz.err"; then
    ok "kubectl kustomize deploy/k8s"
    if [ -n "$py" ]; then
      "$py" "$here/check_manifests.py" "$root" "$tmp/base.yaml" && ok "structure of the rendered base" || failed=1
    fi
  else
    fail "kubectl kustomize deploy/k8s: $(cat "$tmp/kz.err")"
  fi
  # The overlay needs the git-ignored token file: render a copy with a dummy one.
  for ov in "$root"/deploy/k8s/overlays/*/; do
    [ -f "$ov/kustomization.yaml" ] || continue
    name=$(basename "$ov")
    rm -rf "$tmp/k8s" && cp -r "$root/deploy/k8s" "$tmp/k8s"
    [ -e "$tmp/k8s/overlays/$name/token" ] || printf 'dummy-token-for-rendering' > "$tmp/k8s/overlays/$name/token"
    if kubectl kustomize "$tmp/k8s/overlays/$name" > "$tmp/ov.yaml" 2> "$tmp/kz.err"; then
      ok "kubectl kustomize deploy/k8s/overlays/$name"
      if [ -n "$py" ]; then
        "$py" "$here/check_manifests.py" "$root" "$tmp/ov.yaml" && ok "structure of overlay $name" || failed=1
      fi
      if grep -q 'REPLACE-ME' "$tmp/ov.yaml"; then
        fail "overlay $name still renders the base's placeholder token"
      fi
    else
      fail "kubectl kustomize overlays/$name: $(cat "$tmp/kz.err")"
    fi
  done
  # The batch Jobs (deploy/k8s/batch), applied on their own: render and check them.
  if [ -f "$root/deploy/k8s/batch/kustomization.yaml" ]; then
    if kubectl kustomize "$root/deploy/k8s/batch" > "$tmp/batch.yaml" 2> "$tmp/kz.err"; then
      ok "kubectl kustomize deploy/k8s/batch"
      if [ -n "$py" ]; then
        "$py" "$here/check_manifests.py" "$root" --batch "$tmp/batch.yaml" && ok "structure of the rendered batch Jobs" || failed=1
      fi
    else
      fail "kubectl kustomize deploy/k8s/batch: $(cat "$tmp/kz.err")"
    fi
  fi
  # Optional components (kind: Component), each rendered on top of the base in a
  # throw-away overlay: they must render and pass the same checks.
  for comp in "$root"/deploy/k8s/components/*/; do
    [ -f "$comp/kustomization.yaml" ] || continue
    name=$(basename "$comp")
    rm -rf "$tmp/k8s" && cp -r "$root/deploy/k8s" "$tmp/k8s"
    mkdir -p "$tmp/k8s/overlays/_with_$name"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\ncomponents:\n  - ../../components/%s\n' \
      "$name" > "$tmp/k8s/overlays/_with_$name/kustomization.yaml"
    if kubectl kustomize "$tmp/k8s/overlays/_with_$name" > "$tmp/comp.yaml" 2> "$tmp/kz.err"; then
      ok "kubectl kustomize base + components/$name"
      if [ -n "$py" ]; then
        "$py" "$here/check_manifests.py" "$root" "$tmp/comp.yaml" && ok "structure of base + components/$name" || failed=1
      fi
    else
      fail "kubectl kustomize base + components/$name: $(cat "$tmp/kz.err")"
    fi
  done
else
  # Not a skip: Debian 12 has no kubectl that can render this (its kubernetes-client
  # 1.20 embeds kustomize v2, which rejects the base's syntax), so the suite cannot
  # require one. Where a recent kubectl is installed, the rendering is checked.
  echo "note: kubectl not installed (none recent enough in Debian 12): kustomize rendering not checked; the raw YAML was checked above"
fi

# ---------------------------------------------------------------- systemd
if have systemd-analyze; then
  # verify insists that ExecStart's binary exists: point it at a stub, nothing else changes.
  mkdir -p "$tmp/units"
  printf '#!/bin/sh\nexit 0\n' > "$tmp/units/solad" && chmod +x "$tmp/units/solad"
  for u in "$root"/deploy/systemd/*.service; do
    b=$(basename "$u"); b=${b/@./@8081.}     # a template is verified as one instance
    sed "s#/usr/local/bin/solad#$tmp/units/solad#g" "$u" > "$tmp/units/$b"
  done
  # verify exits 0 even on unknown keys or bad values: any output is a problem.
  out=$(cd "$tmp/units" && systemd-analyze verify --man=no ./*.service 2>&1)
  if [ -n "$out" ]; then fail "systemd-analyze verify: $out"; else ok "systemd-analyze verify deploy/systemd/*.service"; fi
else
  skip "systemd-analyze not installed: units not verified by systemd"
fi

# ---------------------------------------------------------------- nginx
if have nginx; then
  # As shipped (listen 80, upstreams 8081..8083) inside a minimal main config...
  mkdir -p "$tmp/ngx/logs" "$tmp/ngx/temp"
  cat > "$tmp/ngx/shipped.conf" <<CONF
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/logs/error.log;
events {}
http {
    client_body_temp_path $tmp/ngx/temp/body;
    proxy_temp_path $tmp/ngx/temp/proxy;
    fastcgi_temp_path $tmp/ngx/temp/fastcgi;
    uwsgi_temp_path $tmp/ngx/temp/uwsgi;
    scgi_temp_path $tmp/ngx/temp/scgi;
    include $root/deploy/nginx/solad.conf;
}
CONF
  # access_log names /var/log/nginx: -t opens it, so only test the shipped form when
  # that directory is writable; the generated form below checks everything else.
  if [ -w /var/log/nginx ]; then
    if out=$(nginx -t -p "$tmp/ngx" -c "$tmp/ngx/shipped.conf" 2>&1); then
      ok "nginx -t deploy/nginx/solad.conf (as shipped)"
    else
      fail "nginx -t deploy/nginx/solad.conf: $out"
    fi
  else
    forbidden "/var/log/nginx not writable by this user: shipped nginx config not opened as is"
  fi
  # ... and as the replica test generates it.
  if "$here/nginx_conf.sh" "$tmp/gen" 18080 18081 18082 18083 \
     && out=$(nginx -t -p "$tmp/gen" -c "$tmp/gen/nginx.conf" 2>&1); then
    ok "nginx -t on the generated test config"
  else
    fail "nginx -t on the generated test config: ${out:-nginx_conf.sh failed}"
  fi
else
  skip "nginx not installed (Debian: apt-get install nginx): nginx config not checked by nginx"
fi

# ---------------------------------------------------------------- linters (optional)
if have hadolint; then
  hadolint "$root/Dockerfile" && ok "hadolint Dockerfile" || fail "hadolint Dockerfile"
else
  # Not a skip: hadolint is not packaged in Debian 12, so the suite cannot require it.
  echo "note: hadolint (not in Debian 12) not installed: Dockerfile checked structurally only"
fi
for s in "$here"/*.sh; do
  bash -n "$s" || fail "bash -n $s"
done
if have shellcheck; then
  shellcheck -S warning "$here"/*.sh && ok "shellcheck tests/deploy" || fail "shellcheck tests/deploy"
else
  skip "shellcheck not installed (Debian: shellcheck): tests/deploy/*.sh only parsed (bash -n)"
fi

# ---------------------------------------------------------------- runtime libraries
# Every library solad links against directly must come from a package the runtime
# stage installs (or libc6, which every Debian image has).
if [ -n "${SOLAD:-}" ] && [ -x "${SOLAD}" ] && command -v dpkg >/dev/null 2>&1 \
   && command -v readelf >/dev/null 2>&1; then
  runtime=$(awk '/^FROM /{n++} n>=2' "$root/Dockerfile")
  missing=""
  for lib in $(readelf -d "$SOLAD" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # A sanitizer build links its runtime; the image is a Release build.
    case "$lib" in libasan.so*|libubsan.so*|libtsan.so*|liblsan.so*) continue;; esac
    # So does an OpenBLAS build (-DSOLA_GEMM=openblas); the image builds the default
    # backend (oneDNN), whose library the loop checks when solad is that build.
    if [[ $lib == libopenblas.so* ]] && ! grep -q "SOLA_GEMM=openblas" "$root/Dockerfile"; then
      echo "note: $SOLAD is an OpenBLAS build; the image builds oneDNN: $lib not looked for"
      continue
    fi
    path=$(ldd "$SOLAD" | awk -v l="$lib" '$1 == l { print $3 }')
    [ -n "$path" ] || { missing+=" $lib(unresolved)"; continue; }
    # dpkg knows a file by the path its package installed (merged /usr and the
    # alternatives system make ldd's path and the real path differ): ask for both.
    pkg=$( (dpkg -S "$path" || dpkg -S "$(readlink -f "$path")") 2>/dev/null | head -1 | cut -d: -f1)
    case "$pkg" in
      libc6|"") [ -n "$pkg" ] || missing+=" $lib(no package)";;
      *) grep -qE "(^|[[:space:]])$pkg([[:space:]]|\$)" <<<"$runtime" || missing+=" $lib($pkg)";;
    esac
  done
  if [ -n "$missing" ]; then
    fail "Dockerfile runtime stage lacks the packages of:$missing"
  else
    ok "Dockerfile runtime stage installs every library $SOLAD needs"
  fi
else
  skip "SOLAD not set to a built solad (or no dpkg/readelf): runtime libraries not matched to packages"
fi

[ $failed = 1 ] && exit 1
[ $skipped = 1 ] && exit 77
exit 0
