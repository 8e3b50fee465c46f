#!/usr/bin/python3
"""The SoLa forward pass in PyTorch, timed like bench/bench_refine.c.

    /usr/bin/python3 bench/bench_torch.py [--threads 2] [--T 16,100,1000,2304]
                                          [--ours build/bench_refine]

Same shapes (C=2048, H=512, k1=5, k2=1), the authors' module (nn.Sequential of three
Conv1d with ReLU, refine = x + tanh(alpha) * h, x given as [T, C] and transposed for
torch as the authors' code does), torch.set_num_threads(N), inference_mode, median of
N calls after a warm-up. The peak line is torch.mm on 2048^3 (best of 5), the same
measurement bench_refine makes with sola_sgemm.

With --ours BIN (build/bench_refine) it drives our benchmark in --serve mode with the
same threads and interleaves the two in time: for each of --rounds rounds and each T,
a block of torch calls, then a block of ours (the order alternates between rounds),
and the same for the two peaks. The machine is shared, and load that comes and goes
then hits both sides alike. Each figure is the median over rounds of the block
medians; the speedup is torch ms / our ms. --coretype sets OPENBLAS_CORETYPE for our
side only ("auto" removes it so OpenBLAS chooses from the CPU); torch's convolutions
run in oneDNN, which picks its own kernels whatever that variable says.
"""
import argparse
import os
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


def time_block(f, x, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f(x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def standalone(a, Ts, f):
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
        med = time_block(f, x, reps)
        gf = flops(T, a.C, a.H, a.k1, a.k2) / med * 1e-9
        print(f"{T:>6} {med * 1e3:>10.3f} {gf:>9.1f} {100 * gf / peak:>7.1f}% {reps:>5}")
        sys.stdout.flush()


def interleaved(a, Ts, f):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    if a.coretype == "auto":  # OpenBLAS's own choice for this CPU
        env.pop("OPENBLAS_CORETYPE", None)
    elif a.coretype:
        env["OPENBLAS_CORETYPE"] = a.coretype
    p = subprocess.Popen([a.ours, "--serve", "--threads", str(a.threads), "--C", str(a.C),
                          "--H", str(a.H), "--k1", str(a.k1), "--k2", str(a.k2)],
                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(line):
        p.stdin.write(line + "\n")
        p.stdin.flush()
        return p.stdout.readline().split()

    info = ask("info")
    othreads, core = info[0], " ".join(info[1:])
    xs = {T: torch.randn(T, a.C) for T in Ts}
    # one probe per T sizes the blocks: each side spends about budget/rounds per block
    reps = {}
    for T in Ts:
        f(xs[T])
        t = time.perf_counter()
        f(xs[T])
        one = time.perf_counter() - t
        reps[T] = max(3, min(101, int(a.budget / a.rounds / max(one, 1e-6))))
        ask(f"refine {T} 1")
    tm, om = {T: [] for T in Ts}, {T: [] for T in Ts}
    tpk, opk = [], []
    for r in range(a.rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                tpk.append(mm_peak(reps=2))
            else:
                opk.append(float(ask("peak 2")[0]))
        for T in Ts:
            for side in order:
                time.sleep(0.02)  # let the other side's idle threads go to sleep
                if side == 0:
                    tm[T].append(time_block(f, xs[T], reps[T]) * 1e3)
                else:
                    om[T].append(float(ask(f"refine {T} {reps[T]}")[1]))
    p.stdin.close()
    p.wait()
    tpeak, opeak = max(tpk), max(opk)
    print(f"# torch {torch.__version__} ({torch.get_num_threads()} threads, mkldnn "
          f"{torch.backends.mkldnn.is_available()}): torch.mm peak {tpeak:.1f} GFLOPS")
    print(f"# ours: {core} ({othreads} threads): sgemm peak {opeak:.1f} GFLOPS")
    print(f"# model C={a.C} H={a.H} k1={a.k1} k2={a.k2}; {a.rounds} interleaved rounds, "
          f"median of block medians")
    print(f"{'T':>6} {'torch ms':>10} {'GFLOPS':>7} {'ours ms':>10} {'GFLOPS':>7} "
          f"{'%sgemm':>7} {'speedup':>8}")
    for T in Ts:
        t, o = statistics.median(tm[T]), statistics.median(om[T])
        fl = flops(T, a.C, a.H, a.k1, a.k2) * 1e-6
        print(f"{T:>6} {t:>10.3f} {fl / t:>7.1f} {o:>10.3f} {fl / o:>7.1f} "
              f"{100 * fl / o / opeak:>6.1f}% {t / o:>7.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", default="16,100,1000,2304")
    ap.add_argument("--C", type=int, default=2048)
    ap.add_argument("--H", type=int, default=512)
    ap.add_argument("--k1", type=int, default=5)
    ap.add_argument("--k2", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per T and side")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ours", help="path of bench_refine to interleave with")
    ap.add_argument("--coretype", help="OPENBLAS_CORETYPE for ours (auto: unset it, so "
                    "OpenBLAS picks the kernels for this CPU); default: inherited")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    Ts = [int(t) for t in a.T.split(",")]
    with torch.inference_mode():
        f = module(a.C, a.H, a.k1, a.k2)
        if a.ours:
            interleaved(a, Ts, f)
        else:
            standalone(a, Ts, f)


if __name__ == "__main__":
    main()
