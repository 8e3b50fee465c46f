#!/usr/bin/python3
"""The `sola` training step in PyTorch, for bench/bench_train.c to compare against.

    /usr/bin/python3 bench/bench_train_torch.py [--threads 2] [--batch 256] [--C 2048]
        [--H 512] [--P 512] [--k1 5] [--k2 1] [--steps 6]

One step = the authors' recipe on a batch of B windows of W = 23 snippets: module on the
whole window (as their code does), keep positions 4, 6, ..., 18, normalize, head,
cosine against the stop-gradient, clamp, BCE, backward, AdamW over module + head.
Prints the best (and median) step time and windows/s on a line starting with "torch:".

--serve (used by bench_train --torch): after the set-up and one warm-up step, reads
lines "run K" from stdin and answers each with "times T1 ... TK" (seconds per step),
so that the C benchmark can interleave blocks of its steps and ours in time and both
see the same load on a shared machine; "quit" or EOF ends.
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class SoLa(nn.Module):
    def __init__(self, C, H, P, k1, k2):
        super().__init__()
        self.conv_network = nn.Sequential(
            nn.Conv1d(C, H, k1, padding=(k1 - 1) // 2), nn.ReLU(),
            nn.Conv1d(H, H, k2, padding=(k2 - 1) // 2), nn.ReLU(),
            nn.Conv1d(H, C, 1))
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.dissim_head = nn.Module()
        self.dissim_head.network = nn.Sequential(nn.Linear(C, P), nn.ReLU(), nn.Linear(P, C))


def step(model, opt, windows, idx, target):
    x = windows.transpose(1, 2)  # [B, C, W]
    refined = (x + torch.tanh(model.alpha) * model.conv_network(x)).transpose(1, 2)
    z = F.normalize(refined[:, idx], dim=-1, eps=1e-12)
    g = model.dissim_head.network(z)
    zd = z.detach()
    s = torch.bmm(zd, g.transpose(1, 2))
    den = zd.norm(dim=-1)[:, :, None] * g.norm(dim=-1)[:, None, :] + 1e-8
    p = torch.clamp((1 + s / den) / 2, 1e-5, 1 - 1e-5)
    loss = (-(target * torch.log(p) + (1 - target) * torch.log(1 - p))).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--C", type=int, default=2048)
    ap.add_argument("--H", type=int, default=512)
    ap.add_argument("--P", type=int, default=512)
    ap.add_argument("--k1", type=int, default=5)
    ap.add_argument("--k2", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    W, N = 23, 8
    idx = [4 + 2 * i for i in range(N)]
    ii = torch.arange(N, dtype=torch.float32)
    d2 = (ii[:, None] - ii[None, :]) ** 2
    target = torch.where(d2 == 0, torch.ones_like(d2), torch.sigmoid(16.0 / d2.clamp(min=1)))
    model = SoLa(a.C, a.H, a.P, a.k1, a.k2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    windows = torch.randn(a.batch, W, a.C).abs()
    step(model, opt, windows, idx, target)  # warm-up
    if a.serve:
        print("ready torch %s" % torch.__version__, flush=True)
        for line in sys.stdin:
            w = line.split()
            if not w or w[0] != "run":
                break
            ts = []
            for _ in range(int(w[1])):
                t = time.perf_counter()
                step(model, opt, windows, idx, target)
                ts.append(time.perf_counter() - t)
            print("times " + " ".join("%.6f" % t for t in ts), flush=True)
        return
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step(model, opt, windows, idx, target)
        times.append(time.perf_counter() - t)
    times.sort()
    best, med = times[0], times[len(times) // 2]
    print("torch %s, %d threads, B=%d C=%d H=%d P=%d k1=%d k2=%d" %
          (torch.__version__, a.threads, a.batch, a.C, a.H, a.P, a.k1, a.k2))
    # best of the steps: on a shared machine the others' load only ever adds time
    print("torch: %.1f ms/step (median %.1f)  %.1f windows/s" %
          (best * 1e3, med * 1e3, a.batch / best))


if __name__ == "__main__":
    main()
