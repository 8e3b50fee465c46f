#!/usr/bin/env python3
"""Structural checks of the deployment files (Dockerfile, systemd, nginx, Kubernetes).

Usage: check_manifests.py ROOT [RENDERED.yaml]
       check_manifests.py ROOT --batch [RENDERED_BATCH.yaml]
  ROOT          repository root (or a copy of it)
  RENDERED.yaml output of `kubectl kustomize ROOT/deploy/k8s`; without it the raw
                files under deploy/k8s/base are read and the kustomize generators
                (ConfigMap from solad.env, Secret) are emulated well enough to check
                names and keys. The raw deploy/k8s/batch is checked too.
  --batch       only the batch Jobs: RENDERED_BATCH.yaml is the output of
                `kubectl kustomize ROOT/deploy/k8s/batch` (or of an overlay of it).
Prints one line per problem ("FAIL: file: what is wrong") and exits 1 if there is any.
Needs PyYAML (Debian: python3-yaml).
"""
import os
import re
import sys

import yaml

problems = []


def fail(where, msg):
    problems.append(f"FAIL: {where}: {msg}")


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- flags everywhere
def flag_value(text, flag):
    """Value after `--flag` (space or = separated) in a command-line-ish text."""
    m = re.search(r"--%s(?:\s+|=)(\S+)" % re.escape(flag), text)
    return m.group(1) if m else None


def parse_size(s):
    """nginx size ("256m", "1g", "4096") or plain bytes -> bytes."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", s.strip())
    if not m:
        return None
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


# ---------------------------------------------------------------- Dockerfile
def check_dockerfile(root):
    where = "Dockerfile"
    try:
        text = read(root, "Dockerfile")
    except OSError as e:
        fail(where, f"cannot read: {e}")
        return
    # A `# syntax=` parser directive makes BuildKit pull a frontend image before the
    # build: offline and air-gapped builds fail on it.
    for ln in text.splitlines():
        if not ln.startswith("#"):
            break
        if re.match(r"#\s*syntax\s*=", ln, re.I):
            fail(where, f"'{ln.strip()}': a syntax directive makes BuildKit pull an image "
                        "(offline builds fail); the built-in frontend is enough")
    # Join continuation lines so that one instruction is one line.
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instr = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln for ln in instr if ln.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail(where, "expected a multi-stage build (a build stage and a runtime stage)")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    for ln in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), ln.split()[1])
        if not image.startswith("debian:bookworm"):
            fail(where, f"'{ln}' is not a Debian 12 (debian:bookworm*) image")
    # Runtime stage = everything after the last FROM.
    last = max(i for i, ln in enumerate(instr) if ln.upper().startswith("FROM "))
    runtime = instr[last:]
    rt_text = "\n".join(runtime)
    for pkg in ("libdnnl2", "libgomp1", "libmicrohttpd12", "libjansson4", "libuv1",
                "libpng16-16", "zlib1g", "libsystemd0", "curl"):
        if not re.search(r"(?<![\w.-])%s(?![\w.-])" % re.escape(pkg), rt_text):
            fail(where, f"runtime stage does not install {pkg}")
    if re.search(r"-dev\b", rt_text):
        fail(where, "runtime stage installs a -dev package (build-only)")
    user = [ln for ln in runtime if ln.upper().startswith("USER ")]
    if not user:
        fail(where, "runtime stage has no USER (would run as root)")
    else:
        uid = user[-1].split()[1].split(":")[0]
        if uid in ("0", "root"):
            fail(where, "runtime USER is root")
        elif not uid.isdigit():
            fail(where, "USER should be numeric so Kubernetes runAsNonRoot can verify it")
    hc = [ln for ln in runtime if ln.upper().startswith("HEALTHCHECK ")]
    if not hc or "/livez" not in hc[-1]:
        fail(where, "HEALTHCHECK must probe /livez")
    if not any(re.fullmatch(r"STOPSIGNAL\s+SIGTERM", ln) for ln in runtime):
        fail(where, "STOPSIGNAL SIGTERM missing")
    if not any(re.match(r"EXPOSE\s+8080\b", ln) for ln in runtime):
        fail(where, "EXPOSE 8080 missing")
    if not any(ln.startswith("VOLUME") and "/data" in ln for ln in runtime):
        fail(where, "VOLUME /data missing")
    ep = [ln for ln in runtime if ln.upper().startswith("ENTRYPOINT ")]
    if not ep:
        fail(where, "no ENTRYPOINT")
    else:
        e = ep[-1]
        if "solad" not in e or "0.0.0.0:8080" not in e or "/data" not in e:
            fail(where, f"ENTRYPOINT should run solad --listen 0.0.0.0:8080 --data /data: {e}")
        if not e.split(None, 1)[1].lstrip().startswith("["):
            fail(where, "ENTRYPOINT must be exec form so solad is PID 1 and gets SIGTERM")


# ---------------------------------------------------------------- systemd
def parse_unit(text):
    """{section: [(key, value)]} with continuation lines joined."""
    out, sec = {}, None
    for ln in re.sub(r"\\\n", " ", text).splitlines():
        s = ln.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            sec = s[1:-1]
            out.setdefault(sec, [])
        elif "=" in s and sec:
            k, v = s.split("=", 1)
            out[sec].append((k.strip(), v.strip()))
    return out


def check_systemd(root, unit_rel, default_opts, role=None):
    where = unit_rel
    try:
        u = parse_unit(read(root, unit_rel))
    except OSError as e:
        fail(where, f"cannot read: {e}")
        return None
    svc = dict()
    for k, v in u.get("Service", []):
        svc.setdefault(k, []).append(v)
    one = {k: v[-1] for k, v in svc.items()}
    want = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
            "ProtectHome": "yes", "KillSignal": "SIGTERM", "Type": "notify"}
    for k, v in want.items():
        if one.get(k) != v:
            fail(where, f"{k}={v} expected, found {one.get(k)!r}")
    if "User" not in one and one.get("DynamicUser") != "yes":
        fail(where, "neither User= nor DynamicUser=yes: would run as root")
    if not one.get("StateDirectory"):
        fail(where, "StateDirectory= missing (the data directory)")
    if not one.get("Restart") or one.get("Restart") == "no":
        fail(where, "no Restart= policy")
    envs = " ".join(svc.get("Environment", []))
    if "OMP_NUM_THREADS=" not in envs:
        fail(where, "Environment=OMP_NUM_THREADS missing")
    start = one.get("ExecStart", "")
    data = flag_value(start, "data")
    if not data:
        fail(where, "ExecStart has no --data")
    else:
        rw = " ".join(svc.get("ReadWritePaths", []))
        if data not in rw.split():
            fail(where, f"--data {data} is not in ReadWritePaths ({rw or 'none'})")
    drain = flag_value(start, "drain-timeout") or flag_value(default_opts, "drain-timeout")
    tss = one.get("TimeoutStopSec", "")
    m = re.fullmatch(r"(\d+)s?", tss)
    if not drain:
        fail(where, "ExecStart sets no --drain-timeout, so TimeoutStopSec cannot be checked")
    elif not m:
        fail(where, f"TimeoutStopSec must be plain seconds, found {tss!r}")
    elif int(m.group(1)) <= int(drain):
        fail(where, f"TimeoutStopSec={tss} must exceed --drain-timeout {drain} "
                    "(else systemd kills solad mid-drain)")
    if "--token-file" in start and not svc.get("LoadCredential") and "%d" in start:
        fail(where, "--token-file uses %d but no LoadCredential=")
    if role and f"--{role}" not in start.split():
        fail(where, f"ExecStart lacks --{role}")
    return svc


# ---------------------------------------------------------------- nginx
def nginx_blocks(text):
    """Crude parser: list of (context path, directive, args) for every directive."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', text)
    out, stack, cur = [], [], []
    for t in tokens:
        if t == "{":
            stack.append(" ".join(cur))
            cur = []
        elif t == "}":
            stack.pop()
            cur = []
        elif t == ";":
            if cur:
                out.append((tuple(stack), cur[0], cur[1:]))
            cur = []
        else:
            cur.append(t)
    return out


def check_nginx(root, max_body, max_upload):
    where = "deploy/nginx/solad.conf"
    try:
        d = nginx_blocks(read(root, where))
    except OSError as e:
        fail(where, f"cannot read: {e}")
        return
    servers = [a for ctx, k, a in d if k == "server" and ctx and ctx[-1].startswith("upstream")]
    if len(servers) < 2:
        fail(where, "upstream needs several replicas")
    for a in servers:
        if not any(x.startswith("max_fails=") for x in a) or not any(x.startswith("fail_timeout=") for x in a):
            fail(where, f"upstream server {a[0]} lacks max_fails/fail_timeout (passive health checks)")
    if not any(k == "keepalive" and ctx and ctx[-1].startswith("upstream") for ctx, k, a in d):
        fail(where, "no keepalive to the upstreams")
    # Body limits per route, as solad's: --max-upload for the dataset uploads (the
    # /datasets/ location and the named location its PUTs go to), --max-body elsewhere.
    body = [(ctx, a) for ctx, k, a in d if k == "client_max_body_size"]
    top = [a for ctx, a in body if not any(c.startswith(("location", "if")) for c in ctx)]
    upload_locs = {c for ctx, k, a in d for c in ctx[-1:] if c.startswith("location")
                   and re.search(r"/datasets/?$", c)}
    upload_locs |= {f"location {a[-1]}" for ctx, k, a in d
                    if k == "error_page" and ctx and ctx[-1] in upload_locs and a[-1].startswith("@")}
    if not top:
        fail(where, "client_max_body_size missing at server level (nginx default 1m would "
                    "reject big bodies)")
    elif max_body is not None and parse_size(top[-1][0]) != max_body:
        fail(where, f"client_max_body_size {top[-1][0]} != solad --max-body {max_body}")
    if not upload_locs:
        fail(where, "no location for /datasets/: dataset uploads (up to --max-upload) would "
                    "get the --max-body limit (413 through nginx, 201 directly)")
    for loc in sorted(upload_locs):
        lim = [a for ctx, a in body if ctx and ctx[-1] == loc]
        if not lim:
            fail(where, f"'{loc}' sets no client_max_body_size (dataset uploads need "
                        "--max-upload)")
        elif max_upload is not None and parse_size(lim[-1][0]) != max_upload:
            fail(where, f"'{loc}': client_max_body_size {lim[-1][0]} != solad --max-upload "
                        f"{max_upload}")
    for ctx, a in body:
        loc = ctx[-1] if ctx else ""
        if loc.startswith("location") and loc not in upload_locs and max_body is not None \
                and parse_size(a[0]) != max_body:
            fail(where, f"'{loc}': client_max_body_size {a[0]} != solad --max-body {max_body}")
    for ctx, k, a in d:
        if k == "proxy_next_upstream" and "non_idempotent" in a:
            loc = ctx[-1] if ctx else ""
            if loc not in ("location = /refine", "location = /tsm"):
                fail(where, f"non_idempotent retries outside /refine and /tsm (in '{loc or 'top'}')")
    sse = [ctx for ctx, k, a in d if ctx and "events" in ctx[-1] and ctx[-1].startswith("location")]
    if not sse:
        fail(where, "no location for /jobs/ID/events (server-sent events)")
    else:
        loc = sse[0]
        ds = {k: a for ctx, k, a in d if ctx == loc}
        if ds.get("proxy_buffering") != ["off"]:
            fail(where, "SSE location must set proxy_buffering off")
        rt = ds.get("proxy_read_timeout", ["60s"])[0]
        m = re.fullmatch(r"(\d+)([smhd]?)", rt)
        secs = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m else 0
        if secs < 600:
            fail(where, f"SSE proxy_read_timeout {rt} is too short for a training job's stream")
    named = {ctx[-1] for ctx, k, a in d if ctx and ctx[-1].startswith("location @")}
    for loc in named:
        ds = {k: a for ctx, k, a in d if ctx and ctx[-1] == loc}
        if ds.get("proxy_next_upstream") != ["off"]:
            fail(where, f"{loc} (PUT/DELETE) must set proxy_next_upstream off")
    if ("proxy_http_version", ["1.1"]) not in [(k, a) for ctx, k, a in d]:
        fail(where, "proxy_http_version 1.1 needed for upstream keepalive")


# ---------------------------------------------------------------- Kubernetes
def k8s_docs(root, rendered, kdir="deploy/k8s/base"):
    if rendered:
        with open(rendered, encoding="utf-8") as f:
            return [x for x in yaml.safe_load_all(f) if x], True
    base = os.path.join(root, kdir)
    kz = yaml.safe_load(read(root, os.path.join(kdir, "kustomization.yaml")))
    docs = []
    for rel in kz.get("resources", []):
        with open(os.path.join(base, rel), encoding="utf-8") as f:
            docs += [x for x in yaml.safe_load_all(f) if x]
    # Emulate the `labels` transformer: metadata, pod templates and (includeSelectors)
    # the selectors kustomize knows about.
    for lab in kz.get("labels", []):
        pairs = lab.get("pairs") or {}
        for x in docs:
            x.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if x.get("kind") in ("Deployment", "Job"):
                x["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
                if lab.get("includeSelectors") and x["kind"] == "Deployment":
                    x["spec"]["selector"].setdefault("matchLabels", {}).update(pairs)
                    for t in x["spec"]["template"]["spec"].get("topologySpreadConstraints") or []:
                        t.setdefault("labelSelector", {}).setdefault("matchLabels", {}).update(pairs)
            if lab.get("includeSelectors") and x.get("kind") == "Service":
                x["spec"].setdefault("selector", {}).update(pairs)
    # Emulate the generators: names without the hash suffix, keys from the sources.
    for g in kz.get("configMapGenerator", []):
        data = {}
        for env in g.get("envs", []):
            for ln in read(root, os.path.join(kdir, env)).splitlines():
                ln = ln.strip()
                if ln and not ln.startswith("#") and "=" in ln:
                    k, v = ln.split("=", 1)
                    data[k] = v
        for lit in g.get("literals", []):
            k, v = lit.split("=", 1)
            data[k] = v
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]}, "data": data})
    for g in kz.get("secretGenerator", []):
        data = {lit.split("=", 1)[0]: "" for lit in g.get("literals", [])}
        data.update({f.split("=", 1)[0]: "" for f in g.get("files", [])})
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": g["name"]}, "data": data})
    return docs, False


def selects(sel, labels):
    """Does a LabelSelector (matchLabels + matchExpressions) select these labels?"""
    if any(labels.get(k) != v for k, v in (sel.get("matchLabels") or {}).items()):
        return False
    for ex in sel.get("matchExpressions") or []:
        k, op, vals = ex.get("key"), ex.get("operator"), ex.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def check_pod(where, dep, by_kind, names, cm_all, max_body, max_upload, role):
    """Checks shared by the serving Deployment and the trainer: probes, env, threads,
    drain vs grace period, security, the data volume and the token."""
    dname = dep["metadata"]["name"]
    where = f"{where}: Deployment {dname}"
    spec = dep["spec"]
    tmpl = spec["template"]
    tlabels = tmpl["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    if any(tlabels.get(k) != v for k, v in sel.items()):
        fail(where, f"selector {sel} does not match the pod labels {tlabels}")
    pod = tmpl["spec"]
    c = pod["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    port_ok = lambda p: p in ports or p in ports.values()
    probes = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        pr = c.get(probe)
        if not pr:
            fail(where, f"container {c['name']} has no {probe}")
            continue
        hg = pr.get("httpGet", {})
        if hg.get("path") != path:
            fail(where, f"{probe} path {hg.get('path')!r}, expected {path}")
        if not port_ok(hg.get("port")):
            fail(where, f"{probe} port {hg.get('port')!r} is not a container port {ports}")
    # Environment: every $(VAR) in args/command must be defined.
    env_names = {e["name"] for e in c.get("env", [])}
    cm_keys = {}
    for cm in by_kind.get("ConfigMap", []):
        cm_keys[cm["metadata"]["name"]] = set((cm.get("data") or {}).keys())
    for ef in c.get("envFrom", []):
        ref = ef.get("configMapRef", {}).get("name")
        if ref is not None:
            if ref not in cm_keys:
                fail(where, f"envFrom references ConfigMap {ref!r}, which does not exist")
            else:
                env_names |= cm_keys[ref]
    argv = [str(a) for a in c.get("command", []) + c.get("args", [])]
    for a in argv:
        for v in re.findall(r"\$\((\w+)\)", a):
            if v not in env_names:
                fail(where, f"args use $({v}) but no env var or ConfigMap key defines it")
    env = {e["name"]: e for e in c.get("env", [])}
    ob = env.get("OMP_NUM_THREADS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
    if ob.get("resource") != "limits.cpu":
        fail(where, "OMP_NUM_THREADS must come from resourceFieldRef limits.cpu")
    # The compute threads must follow the CPU limit (solad's own default counts the
    # node's cores): the serving replicas' --workers/--threads, the trainer's
    # --train-threads.
    cpu_vars = {n for n, e in env.items()
                if e.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == "limits.cpu"}
    tied_flags = ("--train-threads",) if role == "trainer" else ("--workers", "--threads")
    tied = False
    for i, a in enumerate(argv[:-1]):
        if a in tied_flags:
            m = re.fullmatch(r"\$\((\w+)\)", argv[i + 1])
            tied |= bool(m and m.group(1) in cpu_vars)
    if not tied:
        fail(where, f"{' / '.join(tied_flags)} does not follow limits.cpu (resourceFieldRef)")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(k, {})):
            fail(where, f"resources.{k} needs cpu and memory")
    resolved = " ".join(re.sub(r"\$\((\w+)\)", lambda m: str(cm_all.get(m.group(1), m.group(0))), a) for a in argv)
    drain = flag_value(resolved, "drain-timeout")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre = c.get("lifecycle", {}).get("preStop", {})
    pre_s = 0
    cmd = pre.get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0] == "sleep" and str(cmd[1]).isdigit():
        pre_s = int(cmd[1])
    elif "sleep" in pre:
        pre_s = int(pre["sleep"].get("seconds", 0))
    if role == "server" and not pre:
        fail(where, "no preStop hook: endpoints may still route to a pod that is draining")
    # The trainer: solad kills a training process that has not checkpointed within
    # --drain-timeout + 5 s; the pod must outlive that.
    extra = 5 if role == "trainer" else 0
    if not drain:
        fail(where, "solad gets no --drain-timeout, terminationGracePeriodSeconds unchecked")
    elif not str(drain).isdigit():
        fail(where, f"--drain-timeout {drain!r} does not resolve to seconds")
    elif grace <= int(drain) + pre_s + extra:
        fail(where, f"terminationGracePeriodSeconds {grace} must exceed preStop {pre_s}s + "
                    f"drain {drain}s" + (" + 5 s for the training process" if extra else ""))
    if role == "server":
        mb = flag_value(resolved, "max-body")
        if max_body is not None and mb is not None and mb.isdigit() and int(mb) != max_body:
            fail(where, f"--max-body {mb} differs from nginx client_max_body_size ({max_body} bytes)")
        mu = flag_value(resolved, "max-upload")
        if max_upload is not None and (mu is None or not mu.isdigit() or int(mu) != max_upload):
            fail(where, f"--max-upload {mu} differs from nginx's /datasets/ limit ({max_upload} bytes)")
    # Security context.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        fail(where, "runAsNonRoot not set")
    if not csc.get("readOnlyRootFilesystem"):
        fail(where, "readOnlyRootFilesystem not set")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail(where, "allowPrivilegeEscalation must be false")
    # Volumes: /data from an existing RWX claim; the token from an existing Secret at
    # the directory of --token-file.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    dv = vols.get(mounts.get("/data"), {})
    claim = dv.get("persistentVolumeClaim", {}).get("claimName")
    if not claim:
        fail(where, "/data is not mounted from a PersistentVolumeClaim")
    elif claim not in names("PersistentVolumeClaim"):
        fail(where, f"/data claim {claim!r} does not exist")
    else:
        pvc = [x for x in by_kind["PersistentVolumeClaim"] if x["metadata"]["name"] == claim][0]
        if "ReadWriteMany" not in pvc["spec"].get("accessModes", []):
            fail(where, f"PVC {claim} must be ReadWriteMany (replicas on several nodes share it)")
    tf = flag_value(resolved, "token-file")
    if not tf:
        fail(where, "solad gets no --token-file")
    else:
        tdir, tbase = os.path.split(tf)
        tv = vols.get(mounts.get(tdir), {})
        sname = tv.get("secret", {}).get("secretName")
        if not sname:
            fail(where, f"--token-file {tf}: {tdir} is not a Secret volume")
        elif sname not in names("Secret"):
            fail(where, f"Secret {sname!r} (token) does not exist")
        else:
            items = tv["secret"].get("items")
            sec = [x for x in by_kind["Secret"] if x["metadata"]["name"] == sname][0]
            keys = set((sec.get("data") or {}).keys()) | set((sec.get("stringData") or {}).keys())
            if items:
                paths = {i["path"]: i["key"] for i in items}
                if tbase not in paths:
                    fail(where, f"--token-file {tf}: no item with path {tbase} in the Secret volume")
                elif paths[tbase] not in keys:
                    fail(where, f"Secret {sname} has no key {paths[tbase]}")
            elif tbase not in keys:
                fail(where, f"Secret {sname} has no key {tbase}")
    return argv, tlabels, ports


def check_k8s(root, rendered, max_body_nginx, max_upload_nginx):
    docs, is_rendered = k8s_docs(root, rendered)
    where = rendered if is_rendered else "deploy/k8s/base"
    by_kind = {}
    for x in docs:
        by_kind.setdefault(x.get("kind"), []).append(x)
    names = lambda kind: {x["metadata"]["name"] for x in by_kind.get(kind, [])}
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
                 "ConfigMap", "Secret", "NetworkPolicy"):
        if not by_kind.get(kind):
            fail(where, f"no {kind}")
    if problems:
        return
    cm_all = {}
    for cm in by_kind["ConfigMap"]:
        cm_all.update(cm.get("data") or {})
    args_of = lambda d: [str(a) for c in d["spec"]["template"]["spec"]["containers"][:1]
                         for a in c.get("command", []) + c.get("args", [])]
    servers = [d for d in by_kind["Deployment"] if "--serve-only" in args_of(d)]
    trainers = [d for d in by_kind["Deployment"] if "--train-only" in args_of(d)]
    if len(servers) != 1:
        fail(where, f"expected one serving Deployment (solad --serve-only), found {len(servers)}")
    if len(trainers) != 1:
        fail(where, f"expected one trainer Deployment (solad --train-only), found {len(trainers)}")
    if problems:
        return
    dep, trn = servers[0], trainers[0]
    dname = dep["metadata"]["name"]
    argv, tlabels, ports = check_pod(where, dep, by_kind, names, cm_all, max_body_nginx,
                                     max_upload_nginx, "server")
    t_argv, t_labels, t_ports = check_pod(where, trn, by_kind, names, cm_all, None, None,
                                          "trainer")
    # The trainer: one pod, replaced not rolled (the lock), resuming interrupted jobs.
    tname = trn["metadata"]["name"]
    if trn["spec"].get("replicas", 1) != 1:
        fail(where, f"Deployment {tname}: replicas {trn['spec'].get('replicas')} (one trainer "
                    "holds the lock; more would only wait)")
    if trn["spec"].get("strategy", {}).get("type") != "Recreate":
        fail(where, f"Deployment {tname}: strategy must be Recreate (a rolling update starts "
                    "the new trainer while the old one holds the lock)")
    if "--resume-jobs" not in t_argv:
        fail(where, f"Deployment {tname}: no --resume-jobs (interrupted jobs would wait for "
                    "POST /jobs/ID/resume)")
    # Services: the one with the serving pods must not send refine traffic to the trainer.
    for svc in by_kind["Service"]:
        ssel = svc["spec"].get("selector", {})
        if selects({"matchLabels": ssel}, tlabels) and selects({"matchLabels": ssel}, t_labels):
            fail(where, f"Service {svc['metadata']['name']} selects the trainer as well as the "
                        "serving replicas (the trainer answers refine with 421)")
        targets = [(tlabels, ports)] if selects({"matchLabels": ssel}, tlabels) else []
        targets += [(t_labels, t_ports)] if selects({"matchLabels": ssel}, t_labels) else []
        if not targets:
            fail(where, f"Service {svc['metadata']['name']} selector {ssel} matches no pod label")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p.get("port"))
            for _, pp in targets:
                if tp not in pp and tp not in pp.values():
                    fail(where, f"Service port targetPort {tp!r} is not a container port {pp}")
    # HPA: owns the serving Deployment's size, so the manifest must not set one.
    for h in by_kind["HorizontalPodAutoscaler"]:
        if h.get("apiVersion") != "autoscaling/v2":
            fail(where, f"HPA apiVersion {h.get('apiVersion')} (want autoscaling/v2)")
        ref = h["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") != dname:
            fail(where, f"HPA targets {ref}, not Deployment {dname}")
        if not any(m.get("resource", {}).get("name") == "cpu" for m in h["spec"].get("metrics", [])):
            fail(where, "HPA does not scale on CPU")
        if h["spec"].get("minReplicas", 1) < 2:
            fail(where, "HPA minReplicas < 2: a single replica cannot drain without downtime")
        target = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == ref.get("name")]
        if target and "replicas" in target[0]["spec"]:
            fail(where, f"Deployment {ref.get('name')} sets spec.replicas "
                        f"({target[0]['spec']['replicas']}) but HPA {h['metadata']['name']} "
                        "manages it: every `kubectl apply` would reset the scaled count")
    # Topology spread of the serving replicas over zones and nodes.
    tsc = dep["spec"]["template"]["spec"].get("topologySpreadConstraints") or []
    keys = {t.get("topologyKey") for t in tsc}
    if not {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys:
        fail(where, f"Deployment {dname}: topologySpreadConstraints should spread over "
                    f"topology.kubernetes.io/zone and kubernetes.io/hostname (has {sorted(k for k in keys if k)})")
    for t in tsc:
        if not selects(t.get("labelSelector") or {"matchLabels": {"-": "-"}}, tlabels):
            fail(where, f"topologySpreadConstraint on {t.get('topologyKey')}: its labelSelector "
                        "does not select the serving pods (it would spread nothing)")
        if t.get("whenUnsatisfiable") != "ScheduleAnyway":
            fail(where, f"topologySpreadConstraint on {t.get('topologyKey')}: "
                        "whenUnsatisfiable should be ScheduleAnyway (one-zone clusters)")
    # NetworkPolicy: both kinds of pods selected, port 8080 allowed in.
    for labels, what in ((tlabels, "serving replicas"), (t_labels, "trainer")):
        pols = [n for n in by_kind["NetworkPolicy"] if selects(n["spec"].get("podSelector", {}), labels)]
        if not pols:
            fail(where, f"no NetworkPolicy selects the {what}")
            continue
        allowed = False
        for n in pols:
            if "Ingress" not in n["spec"].get("policyTypes", ["Ingress"]):
                continue
            for rule in n["spec"].get("ingress") or []:
                for p in rule.get("ports") or [{}]:
                    allowed |= p.get("port") in (None, 8080, "http")
        if not allowed:
            fail(where, f"the NetworkPolicy of the {what} lets nothing in on port 8080 (API, probes)")
    # ServiceMonitor (the optional component, when rendered): it must find a Service
    # of solad by label and scrape a port of that Service by name.
    for sm in by_kind.get("ServiceMonitor", []):
        ssel = sm["spec"].get("selector", {})
        svcs = [v for v in by_kind["Service"] if selects(ssel, v["metadata"].get("labels") or {})]
        if not svcs:
            fail(where, f"ServiceMonitor {sm['metadata']['name']}: selector {ssel} matches no Service")
        for ep in sm["spec"].get("endpoints") or []:
            if ep.get("path", "/metrics") != "/metrics":
                fail(where, f"ServiceMonitor endpoint path {ep.get('path')!r} (solad serves /metrics)")
            for v in svcs:
                if ep.get("port") not in {p.get("name") for p in v["spec"]["ports"]}:
                    fail(where, f"ServiceMonitor port {ep.get('port')!r} is not a named port of "
                                f"Service {v['metadata']['name']}")


# ---------------------------------------------------------------- batch Jobs
def job_container(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def check_job(where, job, by_kind, cm_all, claims):
    """What every batch Job needs: retries that podFailurePolicy may steer, resources,
    threads that follow the CPU limit, defined variables, the pod hardening of the
    daemon's pods, and volumes that exist."""
    name = job["metadata"]["name"]
    where = f"{where}: Job {name}"
    pod = job["spec"]["template"]["spec"]
    c = job_container(job)
    if pod.get("restartPolicy") != "Never":
        fail(where, "restartPolicy must be Never (a retry is a new pod; podFailurePolicy and "
                    "backoffLimitPerIndex count pods)")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(k, {})):
            fail(where, f"resources.{k} needs cpu and memory (the Job's own budget)")
    env = {e["name"]: e for e in c.get("env", [])}
    cpu_vars = {n for n, e in env.items()
                if e.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == "limits.cpu"}
    if "OMP_NUM_THREADS" not in cpu_vars:
        fail(where, "OMP_NUM_THREADS must come from resourceFieldRef limits.cpu")
    names = set(env)
    for ef in c.get("envFrom", []):
        ref = ef.get("configMapRef", {}).get("name")
        if ref is not None:
            cms = [x for x in by_kind.get("ConfigMap", []) if x["metadata"]["name"] == ref]
            if not cms:
                fail(where, f"envFrom references ConfigMap {ref!r}, which does not exist")
            else:
                names |= set((cms[0].get("data") or {}).keys())
    argv = [str(a) for a in c.get("command", []) + c.get("args", [])]
    text = "\n".join(argv)
    for v in re.findall(r"\$\((\w+)\)", text):
        if v not in names:
            fail(where, f"$({v}) is used but no env var or ConfigMap key defines it")
    m = re.search(r"--threads\s+\"?\$\(?\{?(\w+)", text)
    if not m or m.group(1) not in cpu_vars:
        fail(where, "--threads does not follow limits.cpu (resourceFieldRef)")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        fail(where, "runAsNonRoot not set")
    if not csc.get("readOnlyRootFilesystem"):
        fail(where, "readOnlyRootFilesystem not set")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail(where, "allowPrivilegeEscalation must be false")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {}
    for mt in c.get("volumeMounts", []):
        v = vols.get(mt["name"])
        if v is None:
            fail(where, f"volumeMount {mt['name']!r} names no volume")
            continue
        mounts[mt["mountPath"]] = (mt, v)
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim is not None and claim not in claims:
            fail(where, f"volume {v['name']}: claim {claim!r} does not exist")
        sec = v.get("secret", {}).get("secretName")
        if sec is not None and sec not in {x["metadata"]["name"] for x in by_kind.get("Secret", [])}:
            fail(where, f"volume {v['name']}: Secret {sec!r} does not exist")
    return argv, env, mounts


def mount_of(path, mounts):
    """(volumeMount, volume) whose mountPath holds path, or None."""
    best = None
    for mp, mv in mounts.items():
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, mv)
    return best[1] if best else None


def check_batch(root, rendered):
    docs, is_rendered = k8s_docs(root, rendered, "deploy/k8s/batch")
    where = rendered if is_rendered else "deploy/k8s/batch"
    by_kind = {}
    for x in docs:
        by_kind.setdefault(x.get("kind"), []).append(x)
    # Claims: the batch's own, and the daemon's data directory from the base.
    claims = {x["metadata"]["name"]: x for x in by_kind.get("PersistentVolumeClaim", [])}
    base_pvc = [x for x in yaml.safe_load_all(read(root, "deploy/k8s/base/pvc.yaml")) if x]
    for x in base_pvc:
        claims.setdefault(x["metadata"]["name"], x)
    cm_all = {}
    for cm in by_kind.get("ConfigMap", []):
        cm_all.update(cm.get("data") or {})
    jobs = by_kind.get("Job", [])
    refine = [j for j in jobs if j["spec"].get("completionMode") == "Indexed"]
    train = [j for j in jobs if "sola train" in "\n".join(
        str(a) for a in job_container(j).get("command", []) + job_container(j).get("args", []))]
    if len(refine) != 1:
        fail(where, f"expected one Indexed Job (completionMode: Indexed) for the sharded "
                    f"refine, found {len(refine)}")
    if len(train) != 1:
        fail(where, f"expected one Job running `sola train`, found {len(train)}")
    for j in refine[:1]:
        argv, env, mounts = check_job(where, j, by_kind, cm_all, claims)
        w = f"{where}: Job {j['metadata']['name']}"
        spec = j["spec"]
        n = spec.get("completions")
        if not isinstance(n, int) or n < 1:
            fail(w, f"completions {n!r}: the number of shards, a positive integer")
            n = None
        if n is not None and spec.get("parallelism", 1) > n:
            fail(w, f"parallelism {spec.get('parallelism')} exceeds completions {n}")
        if "backoffLimitPerIndex" not in spec:
            fail(w, "no backoffLimitPerIndex: one shard's failures would use up the whole "
                    "Job's retries")
        if "refine" not in argv:
            fail(w, "does not run `sola refine`")
        shards = flag_value(" ".join(argv), "shards")
        if shards is None:
            shards = cm_all.get("JOB_COMPLETIONS", env.get("JOB_COMPLETIONS", {}).get("value"))
        if n is not None and str(shards) != str(n):
            fail(w, f"--shards {shards} (or JOB_COMPLETIONS) differs from completions {n}: "
                    "videos would be refined twice or not at all")
        if "--skip-existing" not in argv:
            fail(w, "no --skip-existing: a retried shard would redo every video")
        resolved = [re.sub(r"\$\((\w+)\)", lambda m: str(cm_all.get(m.group(1), m.group(0))), a)
                    for a in argv]
        out = resolved[resolved.index("-o") + 1] if "-o" in resolved[:-1] else None
        if not out:
            fail(w, "no -o OUTDIR")
        else:
            mv = mount_of(out, mounts)
            if not mv:
                fail(w, f"-o {out} is not on a mounted volume (the pod's file system is "
                        "read-only and goes away)")
            else:
                mt, v = mv
                claim = v.get("persistentVolumeClaim", {}).get("claimName")
                if mt.get("readOnly") or v.get("persistentVolumeClaim", {}).get("readOnly"):
                    fail(w, f"-o {out} is on a read-only mount")
                elif not claim or "ReadWriteMany" not in claims.get(claim, {}).get("spec", {}).get("accessModes", []):
                    fail(w, f"-o {out} must be on a ReadWriteMany claim (shards on several "
                            "nodes write it)")
        for flag, what in (("-m", "the model"),):
            if flag in resolved[:-1] and not mount_of(resolved[resolved.index(flag) + 1], mounts):
                fail(w, f"{flag}: {what} is not on a mounted volume")
    for j in train[:1]:
        argv, env, mounts = check_job(where, j, by_kind, cm_all, claims)
        w = f"{where}: Job {j['metadata']['name']}"
        text = "\n".join(argv)
        if j["spec"].get("completionMode") == "Indexed" or j["spec"].get("completions", 1) != 1:
            fail(w, "one training run: completions 1, not Indexed")
        if not re.search(r"/models/\S*/versions/", text) or not re.search(r"-T |-X PUT|--upload-file", text):
            fail(w, "does not register the model (PUT /models/M/versions/V)")
        if "--resume" not in text or "--checkpoint" not in text:
            fail(w, "a replaced pod would start training over (no --checkpoint / --resume)")
        so = env.get("SOLA_OUT", {}).get("value")
        mv = mount_of(so, mounts) if so else None
        if not mv or mv[0].get("readOnly") or "persistentVolumeClaim" not in mv[1]:
            fail(w, f"SOLA_OUT {so!r} (model and checkpoint) must be a writable claim: a "
                    "replaced pod resumes from it")
        tf = env.get("SOLA_TOKEN_FILE", {}).get("value")
        mv = mount_of(tf, mounts) if tf else None
        if not mv or "secret" not in mv[1]:
            fail(w, f"SOLA_TOKEN_FILE {tf!r} is not on a Secret volume")
    # Every batch pod is under a NetworkPolicy; the train pod may reach solad on 8080.
    for j in refine[:1] + train[:1]:
        labels = j["spec"]["template"]["metadata"].get("labels", {})
        pols = [p for p in by_kind.get("NetworkPolicy", []) if selects(p["spec"].get("podSelector", {}), labels)]
        if not pols:
            fail(where, f"no NetworkPolicy selects the pods of Job {j['metadata']['name']}")
    for j in train[:1]:
        labels = j["spec"]["template"]["metadata"].get("labels", {})
        ok = False
        for p in by_kind.get("NetworkPolicy", []):
            if not selects(p["spec"].get("podSelector", {}), labels):
                continue
            if "Egress" not in p["spec"].get("policyTypes", []):
                ok = True
            for rule in p["spec"].get("egress") or []:
                for port in rule.get("ports") or [{}]:
                    ok |= port.get("port") in (None, 8080)
        if not ok:
            fail(where, f"the NetworkPolicy of Job {j['metadata']['name']} lets it reach no "
                        "solad on port 8080 (the model registration)")


def main():
    if len(sys.argv) >= 3 and sys.argv[2] == "--batch":
        if len(sys.argv) > 4:
            print(__doc__, file=sys.stderr)
            return 2
        check_batch(sys.argv[1], sys.argv[3] if len(sys.argv) == 4 else None)
        for p in problems:
            print(p)
        return 1 if problems else 0
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    rendered = sys.argv[2] if len(sys.argv) == 3 else None
    check_dockerfile(root)
    opts = ""
    try:
        # The value of SOLAD_OPTS= (comments mention flags too).
        for ln in read(root, "deploy/systemd/solad.default").splitlines():
            if ln.startswith("SOLAD_OPTS="):
                opts = ln.split("=", 1)[1]
    except OSError as e:
        fail("deploy/systemd/solad.default", f"cannot read: {e}")
    for unit, role in (("deploy/systemd/solad.service", None),
                       ("deploy/systemd/solad@.service", "serve-only"),
                       ("deploy/systemd/solad-trainer.service", "train-only")):
        check_systemd(root, unit, opts, role)
    if "--resume-jobs" not in opts.split():
        fail("deploy/systemd/solad.default", "SOLAD_OPTS lacks --resume-jobs (interrupted "
                                             "jobs would wait for POST /jobs/ID/resume)")
    mb = flag_value(opts, "max-body")
    max_body = int(mb) if mb and mb.isdigit() else None
    if max_body is None:
        fail("deploy/systemd/solad.default", "SOLAD_OPTS sets no numeric --max-body")
    mu = flag_value(opts, "max-upload")
    max_upload = int(mu) if mu and mu.isdigit() else None
    if max_upload is None:
        fail("deploy/systemd/solad.default", "SOLAD_OPTS sets no numeric --max-upload")
    check_nginx(root, max_body, max_upload)
    check_k8s(root, rendered, max_body, max_upload)
    if not rendered:
        check_batch(root, None)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
