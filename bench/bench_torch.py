#!/usr/bin/python3
"""The SoLa forward pass in PyTorch, timed like bench/bench_refine.c.

    /usr/bin/python3 bench/bench_torch.py [--threads 2] [--T 16,100,1000,2304]
                                          [--ours build/bench_refine]

Same shapes (C=2048, H=512, k1=5, k2=1), the authors' module (nn.Sequential of three
Conv1d with ReLU, refine = x + tanh(alpha) * h, x given as [T, C] and transposed for
torch as the authors' code does), torch.set_num_threads(N), inference_mode, median of
N calls after a warm-up. The peak line is torch.mm on 2048^3 (best of 5), the same
measurement bench_refine makes with cblas_sgemm.

With --ours BIN it also runs our benchmark with the same threads right after, and
prints both tables side by side with the speed ratio (torch ms / our ms).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import torch
from torch import nn


def module(C, H, k1, k2):
    net = nn.Sequential(nn.Conv1d(C, H, k1, padding=(k1 - 1) // 2), nn.ReLU(),
                        nn.Conv1d(H, H, k2, padding=(k2 - 1) // 2), nn.ReLU(),
                        nn.Conv1d(H, C, 1))
    alpha = torch.tensor([0.5])
    return lambda x: x + torch.tanh(alpha) * net(x.t().unsqueeze(0))[0].t()


def flops(T, C, H, k1, k2):
    return 2.0 * T * (C * H * k1 + H * H * k2 + H * C)


def mm_peak(n=2048, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 1e30
    for r in range(reps + 1):
        t = time.perf_counter()
        torch.mm(a, b)
        t = time.perf_counter() - t
        if r:
            best = min(best, t)
    return 2.0 * n ** 3 / best * 1e-9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", default="16,100,1000,2304")
    ap.add_argument("--C", type=int, default=2048)
    ap.add_argument("--H", type=int, default=512)
    ap.add_argument("--k1", type=int, default=5)
    ap.add_argument("--k2", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--ours", help="path of bench_refine to run for the side-by-side")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    Ts = [int(t) for t in a.T.split(",")]
    rows = {}
    with torch.inference_mode():
        f = module(a.C, a.H, a.k1, a.k2)
        peak = mm_peak()
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"mkldnn {torch.backends.mkldnn.is_available()}")
        print(f"# torch.mm peak (2048^3, best of 5): {peak:.1f} GFLOPS")
        print(f"# model C={a.C} H={a.H} k1={a.k1} k2={a.k2}")
        print(f"{'T':>6} {'ms/call':>10} {'GFLOPS':>9} {'%peak':>8} {'reps':>5}")
        for T in Ts:
            x = torch.randn(T, a.C)
            t0 = time.perf_counter()
            f(x)
            f(x)
            one = (time.perf_counter() - t0) / 2
            reps = max(5, min(201, int(a.budget / max(one, 1e-6))))
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                f(x)
                ts.append(time.perf_counter() - t)
            med = statistics.median(ts)
            gf = flops(T, a.C, a.H, a.k1, a.k2) / med * 1e-9
            rows[T] = med * 1e3
            print(f"{T:>6} {med * 1e3:>10.3f} {gf:>9.1f} {100 * gf / peak:>7.1f}% {reps:>5}")
            sys.stdout.flush()
    if not a.ours:
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    out = subprocess.run([a.ours, "--threads", str(a.threads), "--T", a.T, "--C", str(a.C),
                          "--H", str(a.H), "--k1", str(a.k1), "--k2", str(a.k2),
                          "--budget", str(a.budget)],
                         env=env, check=True, capture_output=True, text=True).stdout
    print()
    print(out, end="")
    print()
    print(f"{'T':>6} {'torch ms':>10} {'ours ms':>10} {'speedup':>8}")
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s", line)
        if m and int(m.group(1)) in rows:
            T, ours = int(m.group(1)), float(m.group(2))
            print(f"{T:>6} {rows[T]:>10.3f} {ours:>10.3f} {rows[T] / ours:>7.2f}x")


if __name__ == "__main__":
    main()
