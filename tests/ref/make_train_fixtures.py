#!/usr/bin/python3
"""Reference fixtures for the `sola` training objective and AdamW (tests/cli/test_grad.c,
tests/unit/test_adamw.c).

Regenerate (from the repository root; needs numpy and torch, e.g. Debian's python3):

    /usr/bin/python3 tests/ref/make_train_fixtures.py

The module and head are the authors' PyTorch ones (names of docs/spec.md section 2):

    conv_network = Sequential(Conv1d(C, H, k1, padding=d1*(k1-1)//2, dilation=d1), ReLU(),
                              Conv1d(H, H, k2, padding=d2*(k2-1)//2, dilation=d2), ReLU(),
                              Conv1d(H, C, 1));  refined = x + tanh(alpha) * h(x)
    dissim_head.network = Sequential(Linear(C, P), ReLU(), Linear(P, C))

and the loss is the one of docs/spec.md section 4, written out with autograd:

    z = F.normalize(refined[:, idx], dim=-1, eps=1e-12)           idx = start + step*i
    c = (sg(z) . g(z)^T) / (|sg(z)| |g(z)|^T + 1e-8)
    p = clamp((1 + c) / 2, 1e-5, 1 - 1e-5)
    t = 1 on the diagonal, sigmoid(K / (i - j)^2) elsewhere
    loss = mean(-(t log p + (1 - t) log(1 - p)))

The maths runs in float64 on the float32 inputs, so the fixture is the exact value the
float32 C code must approach. Written into tests/data/train_ref/:

    CASE.safetensors        model + head (F32; metadata format/dilation1/dilation2)
    CASE_windows.npy        windows [B, W, C] float32
    CASE_grads.safetensors  d loss / d every parameter, under the parameters' names;
                            metadata: loss (repr of the float64 value), W N start step K
    cases.txt               one line per case: NAME W N start step K
    adamw.safetensors       torch.optim.AdamW (float32) over one flat parameter vector:
                            p0 [n], grads [S, n], params [S, n] after each step,
                            exp_avg, exp_avg_sq [n] after the last step; metadata lr, wd
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "train_ref")

# name, C, H, P, k1, k2, d1, d2, B, W, N, start, step, K
CASES = [
    # the recipe's geometry (W 23, keep 4, 6, ..., 18) at small widths
    ("k5k1", 32, 16, 24, 5, 1, 1, 1, 4, 23, 8, 4, 2, 16.0),
    # conv 2 wider than 1 and dilated, kept rows touching the window's padding
    ("k5k3d2", 32, 16, 24, 5, 3, 2, 2, 3, 23, 7, 1, 3, 8.0),
]


class SoLa(nn.Module):
    def __init__(self, C, H, P, k1, k2, d1, d2):
        super().__init__()
        self.conv_network = nn.Sequential(
            nn.Conv1d(C, H, k1, padding=d1 * (k1 - 1) // 2, dilation=d1), nn.ReLU(),
            nn.Conv1d(H, H, k2, padding=d2 * (k2 - 1) // 2, dilation=d2), nn.ReLU(),
            nn.Conv1d(H, C, 1))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.dissim_head = nn.Module()
        self.dissim_head.network = nn.Sequential(nn.Linear(C, P), nn.ReLU(), nn.Linear(P, C))

    def refine(self, x):  # x [B, W, C]
        h = self.conv_network(x.transpose(1, 2)).transpose(1, 2)
        return x + torch.tanh(self.alpha) * h


def sola_loss(model, windows, N, start, step, K):
    idx = [start + step * i for i in range(N)]
    r = model.refine(windows)[:, idx]
    z = F.normalize(r, dim=-1, eps=1e-12)
    g = model.dissim_head.network(z)
    zd = z.detach()
    s = torch.einsum("bic,bjc->bij", zd, g)
    den = zd.norm(dim=-1)[:, :, None] * g.norm(dim=-1)[:, None, :] + 1e-8
    p = torch.clamp((1 + s / den) / 2, 1e-5, 1 - 1e-5)
    ii = torch.arange(N, dtype=windows.dtype)
    d2 = (ii[:, None] - ii[None, :]) ** 2
    t = torch.where(d2 == 0, torch.ones_like(d2), torch.sigmoid(K / d2.clamp(min=1)))
    return (-(t * torch.log(p) + (1 - t) * torch.log(1 - p))).mean()


def save_safetensors(path, tensors, meta):
    header = {}
    blobs = []
    off = 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_case(name, C, H, P, k1, k2, d1, d2, B, W, N, start, step, K, seed):
    torch.manual_seed(seed)
    model = SoLa(C, H, P, k1, k2, d1, d2)
    with torch.no_grad():
        model.alpha.fill_(0.4)  # non-zero so that every module weight gets a gradient
    # Features like an encoder's: positive-ish, correlated in time.
    base = torch.randn(B, 1, C)
    windows = (base + 0.7 * torch.randn(B, W, C)).abs().float()

    state = [(k, v.detach().numpy().astype(np.float32)) for k, v in model.state_dict().items()]
    save_safetensors(os.path.join(OUT, name + ".safetensors"), state,
                     {"format": "sola", "dilation1": d1, "dilation2": d2})
    np.save(os.path.join(OUT, name + "_windows.npy"), windows.numpy().astype(np.float32))

    model64 = model.double()
    loss = sola_loss(model64, windows.double(), N, start, step, K)
    loss.backward()
    grads = [(k, p.grad.numpy()) for k, p in model64.named_parameters()]
    save_safetensors(os.path.join(OUT, name + "_grads.safetensors"), grads,
                     {"loss": repr(loss.item()), "W": W, "N": N, "start": start,
                      "step": step, "K": K})
    return "%s %d %d %d %d %g" % (name, W, N, start, step, K)


def make_adamw(path, n=1000, steps=6, lr=1e-3, seed=7):
    torch.manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n) * 0.5)
    p0 = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    gs, ps = [], []
    for s in range(steps):
        # mixed scales, including exact zeros, so eps and the decay both matter
        g = torch.randn(n) * torch.logspace(-6, 1, n)[torch.randperm(n)]
        g[::17] = 0
        p.grad = g.clone()
        opt.step()
        gs.append(g.numpy())
        ps.append(p.detach().numpy().copy())
    st = opt.state[p]
    save_safetensors(path, [("p0", p0.numpy()), ("grads", np.stack(gs)),
                            ("params", np.stack(ps)),
                            ("exp_avg", st["exp_avg"].numpy()),
                            ("exp_avg_sq", st["exp_avg_sq"].numpy())],
                     {"lr": repr(lr), "wd": "0.01", "steps": steps})


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = [make_case(*c, seed=100 + i) for i, c in enumerate(CASES)]
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    make_adamw(os.path.join(OUT, "adamw.safetensors"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
