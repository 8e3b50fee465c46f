#!/usr/bin/python3
"""SoLa against the engines a user would pick instead, measured in the same run.

    /usr/bin/python3 bench/bench_peers.py MODE [--build build] [--threads 2] [--rounds 5]

Peers: PyTorch CPU (Debian python3-torch; the authors' module: three nn.Conv1d + ReLU,
x + tanh(alpha) * h, under inference_mode, torch.set_num_threads(N)) and ONNX Runtime
(npm onnxruntime-node, CPU provider, intraOpNumThreads N; the same module exported
with torch.onnx.export, [T, C] in and out with a dynamic T). ONNX Runtime is installed
under bench/ort/ on the first run (npm install; never by the build or the tests).

Modes (each interleaves its sides in blocks, rotating who goes first every round, so
load from elsewhere on the shared machine hits all alike; a figure is the best over
rounds of the block medians (--stat median: their median), and what matters is the
ratio printed beside it; the load average is printed before and after):
  compute   the forward pass alone at --T: ours (bench_refine --serve, its own process),
            torch (this process), ONNX Runtime (node)
  lone      a lone .npy request to solad (bench_client: one persistent connection, one
            request at a time) against ours computed in another, idle process, ONNX
            Runtime's bare session.run and torch's bare forward
  load      --clients concurrent clients at T=16 (wrk, --seconds each) against ONNX
            Runtime's bare session.run one call after another, for solad at its
            defaults, --workers 2 --threads 1 and --workers 1 --threads 2
  dir       `sola refine DIR` over --files files of T=2304 as a whole process (read,
            refine, write), against torch's bare forward over the same tensors and our
            compute alone (bench_refine) on them
  train     a training step (bench_train) of this build against --other's (the OpenBLAS
            build, -DSOLA_GEMM=openblas)

Every mode first prints what runs: our GEMM kernels (and the oneDNN primitives of one
pass, from ONEDNN_VERBOSE=1), torch's and ONNX Runtime's versions, OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE as this process sees them (the children inherit them). To measure with
both unset, run the same command under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flops(T, C, H, k1, k2):
    return 2.0 * T * (C * H * k1 + H * H * k2 + H * C)


class Refine(nn.Module):
    """The authors' module on [T, C] in and out, as solad and sola see it."""

    def __init__(s, C, H, k1, k2):
        super().__init__()
        s.net = nn.Sequential(nn.Conv1d(C, H, k1, padding=(k1 - 1) // 2), nn.ReLU(),
                              nn.Conv1d(H, H, k2, padding=(k2 - 1) // 2), nn.ReLU(),
                              nn.Conv1d(H, C, 1))
        s.alpha = nn.Parameter(torch.tensor([0.5]))

    def forward(s, x):
        return x + torch.tanh(s.alpha) * s.net(x.t().unsqueeze(0))[0].t()


# ---- sides: each times a block of reps calls at one T and returns ms (median) -------

class Torch:
    name = "torch"

    def __init__(s, a):
        s.f, s.C, s.xs = a.module, a.C, {}

    def block(s, T, reps):
        x = s.xs.setdefault(T, torch.randn(T, s.C))
        with torch.inference_mode():
            s.f(x)
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                s.f(x)
                ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1e3


class Pipe:
    """A process answering 'CMD T N' with 'T median_ms ...' (bench_refine --serve,
    bench_client, ort_serve.js)."""

    def __init__(s, name, argv, cmd, env=None):
        s.name, s.cmd = name, cmd
        s.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)

    def ask(s, line):
        s.p.stdin.write(line + "\n")
        s.p.stdin.flush()
        out = s.p.stdout.readline()
        if not out:
            sys.exit(f"bench_peers: {s.name} stopped answering")
        return out.split()

    def block(s, T, reps):
        w = s.ask(f"{s.cmd} {T} {reps}")
        if len(w) > 3 and int(w[3]):
            sys.exit(f"bench_peers: {s.name}: {w[3]} of {reps} requests failed")
        return float(w[1])

    def close(s):
        s.p.stdin.close()
        s.p.wait()


def ours(a):
    p = Pipe("ours", [f"{a.build}/bench_refine", "--serve", "--threads", str(a.threads),
                      "--C", str(a.C), "--H", str(a.H), "--k1", str(a.k1), "--k2", str(a.k2)],
             "refine")
    p.info = " ".join(p.ask("info")[1:])
    return p


def ensure_ort():
    d = os.path.join(SRC, "bench", "ort")
    if not os.path.isdir(os.path.join(d, "node_modules", "onnxruntime-node")):
        print("# installing onnxruntime-node under bench/ort (npm, once)", flush=True)
        # its postinstall would fetch CUDA binaries from nuget; the CPU ones are bundled
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=d, env=env, check=True)
    return d


def ort(a):
    d = ensure_ort()
    path = os.path.join(a.tmp, "refine.onnx")
    if not os.path.exists(path):
        torch.onnx.export(a.module, torch.randn(16, a.C), path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "T"}, "y": {0: "T"}},
                          opset_version=13)
    p = Pipe("onnxruntime", ["node", os.path.join(d, "ort_serve.js"), path, str(a.threads),
                             str(a.C)], "run")
    p.info = " ".join(p.ask("info"))
    return p


def pick(a, v, high=False):
    """The figure of a list of per-round results: the best (least ms, or most when
    high) or, with --stat median, the median."""
    if a.stat == "median":
        return statistics.median(v)
    return max(v) if high else min(v)


def interleave(a, sides, Ts, budget=None):
    """{side name: {T: best (or median) over rounds of block medians (ms)}}."""
    budget = budget or a.budget
    reps = {}
    for T in Ts:  # one probe per T sizes the blocks (and warms every side up)
        one = max(sd.block(T, 1) for sd in sides)
        reps[T] = max(3, min(201, int(budget / a.rounds / max(one * 1e-3, 1e-6))))
    res = {sd.name: {T: [] for T in Ts} for sd in sides}
    for r in range(a.rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        if r % 2:
            order = order[::-1]
        for T in Ts:
            for sd in order:
                time.sleep(0.05)  # the previous side's idle threads go to sleep
                res[sd.name][T].append(sd.block(T, reps[T]))
    return {n: {T: pick(a, v) for T, v in d.items()} for n, d in res.items()}


def env_line():
    v = {k: os.environ.get(k, "<unset>") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return " ".join(f"{k}={x}" for k, x in v.items())


def loadavg(when):
    l1, l5, l15 = os.getloadavg()
    print(f"# load average {when}: {l1:.2f} {l5:.2f} {l15:.2f} ({os.cpu_count()} CPUs)",
          flush=True)


def onednn_primitives(a):
    """The oneDNN primitives one refine of ours runs (ONEDNN_VERBOSE=1)."""
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    out = subprocess.run([f"{a.build}/bench_refine", "--serve", "--threads", str(a.threads),
                          "--C", str(a.C), "--H", str(a.H), "--k1", str(a.k1), "--k2",
                          str(a.k2)], input="refine 100 1\n", capture_output=True, text=True,
                         env=env).stdout
    prims = set()
    for ln in out.splitlines():
        w = ln.split(",")
        if ln.startswith("onednn_verbose,exec,") and len(w) > 5:
            prims.add(f"{w[3]} {w[4]}")
        if ln.startswith("onednn_verbose,info,cpu,isa:"):
            prims.add(ln.split(",", 3)[3])
    # dnnl_sgemm calls (our prepared products on AVX2: see `ours:` above) print no
    # verbose line, and neither does an OpenBLAS build
    return "; ".join(sorted(prims)) or "none (dnnl_sgemm tasks or OpenBLAS print none)"


def header(a, sides):
    print(f"# {env_line()}")
    for sd in sides:
        if hasattr(sd, "info"):
            print(f"# {sd.name}: {sd.info}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads (convolutions in "
          f"oneDNN: {torch.backends.mkldnn.is_available()})")
    print(f"# our oneDNN primitives in one refine: {onednn_primitives(a)}")
    print(f"# model C={a.C} H={a.H} k1={a.k1} k2={a.k2}; {a.rounds} interleaved rounds, "
          f"{'median' if a.stat == 'median' else 'best'} of block medians", flush=True)


# ---- modes --------------------------------------------------------------------------------

def fma_ceiling(a):
    """GFLOPS of this CPU's FMA pipes on a.threads threads (bench_peak), or None."""
    out = subprocess.run([f"{a.build}/bench_peak", "--threads", str(a.threads), "--seconds",
                          "0.5", "--n", "1024"], capture_output=True, text=True).stdout
    m = re.search(r"fma ceiling: [\d.]+ GFLOPS on 1 thread, ([\d.]+) on", out)
    return float(m.group(1)) if m else None


def mode_compute(a):
    sides = [ours(a), Torch(a), ort(a)]
    header(a, sides)
    Ts = [int(t) for t in a.T.split(",")]
    r = interleave(a, sides, Ts)
    peak = fma_ceiling(a)
    print(f"# FMA ceiling of {a.threads} threads (bench_peak, after the rounds): "
          f"{f'{peak:.1f} GFLOPS' if peak else 'not measured'}")
    print(f"{'T':>6} {'ours ms':>9} {'GFLOPS':>7} {'of FMA':>7} {'torch ms':>9} {'ORT ms':>9} "
          f"{'vs torch':>9} {'vs ORT':>7}")
    for T in Ts:
        o, t, x = r["ours"][T], r["torch"][T], r["onnxruntime"][T]
        gf = flops(T, a.C, a.H, a.k1, a.k2) / o * 1e-6
        share = f"{100 * gf / peak:6.0f}%" if peak else f"{'-':>7}"
        print(f"{T:>6} {o:>9.3f} {gf:>7.1f} {share} {t:>9.3f} {x:>9.3f} {t / o:>8.2f}x "
              f"{x / o:>6.2f}x")
    for sd in sides:
        if hasattr(sd, "close"):
            sd.close()


def write_model(a, path):
    """A SoLa model of the benchmark's shape with alpha = 0.5 (a fresh one is the
    identity, which refine short-cuts)."""
    subprocess.run([f"{a.build}/sola", "init", "--dim", str(a.C), "--hidden", str(a.H),
                    "--kernel", str(a.k1), "--seed", "1", "-o", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        off = hdr["alpha"]["data_offsets"][0]
        f.seek(8 + n + off)
        f.write(struct.pack("<f", 0.5))
    if a.k2 != 1:
        sys.exit("bench_peers: sola init makes k2 = 1 models only")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Solad:
    def __init__(s, a, args):
        s.data = tempfile.mkdtemp(prefix="bench_peers.solad.")
        os.makedirs(f"{s.data}/models/bench")
        write_model(a, f"{s.data}/models/bench/1.safetensors")
        s.port = free_port()
        s.log = open(f"{s.data}/solad.log", "w")
        s.p = subprocess.Popen([f"{a.build}/solad", "--data", s.data, "--listen",
                                f"127.0.0.1:{s.port}", "--rescan-interval", "0"] + args,
                               stdout=subprocess.DEVNULL, stderr=s.log)
        s.url = f"http://127.0.0.1:{s.port}"
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("bench_peers: solad did not start")

    def stop(s):
        s.p.send_signal(signal.SIGTERM)
        s.p.wait()
        s.log.close()
        shutil.rmtree(s.data, ignore_errors=True)


def mode_lone(a):
    d = Solad(a, a.solad_args)
    client = Pipe("solad", [f"{a.build}/bench_client", "--url", f"{d.url}/refine", "--C",
                            str(a.C)], "req")
    sides = [client, ours(a), ort(a), Torch(a)]
    print(f"# solad {' '.join(a.solad_args) or '(defaults)'}; a lone request: one "
          f"persistent connection, one request at a time; ours = the same refine in "
          f"another, idle process")
    header(a, sides)
    Ts = [int(t) for t in a.T.split(",")]
    r = interleave(a, sides, Ts)
    print(f"{'T':>6} {'request':>9} {'compute':>9} {'ORT':>9} {'torch':>9} "
          f"{'req/compute':>12} {'req/ORT':>8} {'torch/req':>10} {'ORT/compute':>12}")
    for T in Ts:
        q, o, x, t = (r[n][T] for n in ("solad", "ours", "onnxruntime", "torch"))
        print(f"{T:>6} {q:>9.3f} {o:>9.3f} {x:>9.3f} {t:>9.3f} {q / o:>11.2f}x "
              f"{q / x:>7.2f}x {t / q:>9.2f}x {x / o:>11.2f}x")
    for sd in sides:
        if hasattr(sd, "close"):
            sd.close()
    d.stop()


def wrk(a, url, body):
    lua = os.path.join(a.tmp, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-npy"\n'
                f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
    out = subprocess.run(["wrk", "-t", "2", "-c", str(a.clients), "-d", f"{a.seconds}s",
                          "--timeout", "30s", "-s", lua, url], capture_output=True,
                         text=True).stdout
    rps = float(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("Requests/sec")))
    total = int(next(ln.split()[0] for ln in out.splitlines() if "requests in" in ln))
    bad = sum(int(ln.split()[-1]) for ln in out.splitlines() if "Non-2xx" in ln)
    errs = [ln.strip() for ln in out.splitlines() if "Socket errors" in ln]
    return rps, total, bad, errs


def mode_load(a):
    T = 16
    body = os.path.join(a.tmp, "x16.npy")
    np.save(body, np.random.default_rng(1).standard_normal((T, a.C)).astype("<f4"))
    x = ort(a)
    configs = [("defaults", []), ("--workers 2 --threads 1", ["--workers", "2", "--threads", "1"]),
               ("--workers 1 --threads 2", ["--workers", "1", "--threads", "2"])]
    print(f"# {a.clients} clients at T={T} (wrk -t 2 -c {a.clients} -d {a.seconds}s) against "
          f"ONNX Runtime's session.run one call after another ({a.threads} threads)")
    print(f"# {env_line()}\n# {x.info}\n# our oneDNN primitives: {onednn_primitives(a)}",
          flush=True)
    rows = []
    for name, args in configs:
        d = Solad(a, args)
        got = {"rps": [], "ort": []}
        for r in range(a.rounds):
            steps = ("ort", "wrk") if r % 2 == 0 else ("wrk", "ort")
            for st in steps:
                time.sleep(0.2)
                if st == "ort":
                    got["ort"].append(1e3 / x.block(T, 200))
                else:
                    rps, total, bad, errs = wrk(a, f"{d.url}/refine", body)
                    if bad or errs:
                        print(f"#   {name}: {bad} of {total} replies not 200 {errs}")
                    got["rps"].append(rps)
        h = json.loads(subprocess.run(["curl", "-s", f"{d.url}/healthz"], capture_output=True,
                                      text=True).stdout or "{}")
        b = h.get("batching", {})
        d.stop()
        rps, orps = pick(a, got["rps"], high=True), pick(a, got["ort"], high=True)
        per = b.get("requests", 0) / max(b.get("passes", 1), 1)
        rows.append((name, rps, orps, per))
        print(f"  {name:<26} solad {rps:8.1f} req/s   ORT one by one {orps:7.1f} /s   "
              f"ratio {rps / orps:5.2f}x   (requests per pass {per:.1f})", flush=True)
    x.close()


def mode_dir(a):
    T, n = 2304, a.files
    d = tempfile.mkdtemp(prefix="bench_peers.dir.", dir=a.tmp)
    os.makedirs(f"{d}/in")
    rng = np.random.default_rng(2)
    xs = []
    for i in range(n):
        x = rng.standard_normal((T, a.C)).astype("<f4")
        np.save(f"{d}/in/v{i}.npy", x)
        xs.append(torch.from_numpy(x))
    write_model(a, f"{d}/m.safetensors")

    def refine_dir(build, out):
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([f"{build}/sola", "refine", "-m", f"{d}/m.safetensors", f"{d}/in",
                        "-o", out, "--threads", str(a.threads)],
                       check=True, stderr=subprocess.DEVNULL)

    class Whole:
        def __init__(s, build, name):
            s.build, s.name = build, name

        def block(s, _T, reps):
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                refine_dir(s.build, f"{d}/out")
                ts.append(time.perf_counter() - t)
            return statistics.median(ts) * 1e3

    class TorchAll:
        name = "torch"

        def block(s, _T, reps):
            ts = []
            with torch.inference_mode():
                for _ in range(reps):
                    t = time.perf_counter()
                    for x in xs:
                        a.module(x)
                    ts.append(time.perf_counter() - t)
            return statistics.median(ts) * 1e3

    o = ours(a)

    class OursAll:
        name = "compute"

        def block(s, _T, reps):
            return n * o.block(T, reps)

    sides = [Whole(a.build, "sola refine DIR"), TorchAll(), OursAll()]
    if a.other:
        # the other build's whole process interleaved with ours, and its outputs
        # compared byte for byte with ours
        sides.append(Whole(a.other, "other build"))
        refine_dir(a.build, f"{d}/out_a")
        refine_dir(a.other, f"{d}/out_b")
        for i in range(n):
            with open(f"{d}/out_a/v{i}.npy", "rb") as fa, open(f"{d}/out_b/v{i}.npy", "rb") as fb:
                same = fa.read() == fb.read()
            print(f"  v{i}.npy: {'identical' if same else 'DIFFERS'} between the two builds")
        shutil.rmtree(f"{d}/out_a")
        shutil.rmtree(f"{d}/out_b")
    print(f"# {n} files of [{T}, {a.C}] float32 .npy in a folder; `sola refine` as a whole "
          f"process (start, model load, read, refine, atomic write) vs torch's bare "
          f"forward over the same tensors vs our compute alone ({n} x bench_refine T={T})")
    header(a, [o])
    r = interleave(a, sides, [T], budget=a.budget * 3)
    w, t, c = r["sola refine DIR"][T], r["torch"][T], r["compute"][T]
    print(f"  whole process {w:9.1f} ms   torch forward {t:9.1f} ms   our compute {c:9.1f} ms")
    print(f"  torch / whole = {t / w:.2f}x    whole / compute = {w / c:.2f}x")
    if a.other:
        ob = r["other build"][T]
        print(f"  other build ({a.other}) whole process {ob:9.1f} ms: torch / whole = "
              f"{t / ob:.2f}x    whole / compute = {ob / c:.2f}x")
    o.close()
    shutil.rmtree(d, ignore_errors=True)


def mode_train(a):
    if not a.other:
        sys.exit("bench_peers train: --other BUILD_DIR (the -DSOLA_GEMM=openblas build)")
    res = {a.build: [], a.other: []}
    kern = {}
    for r in range(a.rounds):
        for b in ((a.build, a.other) if r % 2 == 0 else (a.other, a.build)):
            out = subprocess.run([f"{b}/bench_train", "--threads", str(a.threads), "--rounds",
                                  "1", "--block", "3"], capture_output=True, text=True).stdout
            kern[b] = out.splitlines()[0] if out else "?"
            # "ours:  best 412.3 ms/step, median 420.1  -> ..."
            med = [ln for ln in out.splitlines() if ln.startswith("ours:")]
            if not med:
                sys.exit(f"bench_peers: no result line from {b}/bench_train:\n{out}")
            # each run's best step under --stat best, its median step under --stat median
            key = "median" if a.stat == "median" else "best"
            res[b].append(float(med[0].split(key)[1].split()[0]))
    print(f"# {env_line()}")
    for b in res:
        print(f"# {b}: {kern[b]}")
    m1, m2 = pick(a, res[a.build]), pick(a, res[a.other])
    print(f"  step (B=256, W=23, C=2048): {a.build} {m1:.1f} ms, {a.other} {m2:.1f} ms: "
          f"{m2 / m1:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["compute", "lone", "load", "dir", "train"])
    ap.add_argument("--build", default="build", help="our build directory")
    ap.add_argument("--other", help="train: the other build (-DSOLA_GEMM=openblas); dir: "
                    "a second build whose whole process is interleaved with ours")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", default=None)
    ap.add_argument("--C", type=int, default=2048)
    ap.add_argument("--H", type=int, default=512)
    ap.add_argument("--k1", type=int, default=5)
    ap.add_argument("--k2", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per T and side")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--solad-args", default="", help="lone: extra solad flags")
    ap.add_argument("--stat", choices=["best", "median"], default="best",
                    help="a side's figure over rounds: best (default) or median")
    a = ap.parse_args()
    a.T = a.T or ("16,100,1000,2304" if a.mode == "compute" else "16,100,1000")
    a.solad_args = a.solad_args.split()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    a.module = Refine(a.C, a.H, a.k1, a.k2).eval()
    for p in a.module.parameters():
        p.requires_grad_(False)
    loadavg("before")
    with tempfile.TemporaryDirectory(prefix="bench_peers.") as tmp:
        a.tmp = tmp
        {"compute": mode_compute, "lone": mode_lone, "load": mode_load, "dir": mode_dir,
         "train": mode_train}[a.mode](a)
    loadavg("after")


if __name__ == "__main__":
    main()
