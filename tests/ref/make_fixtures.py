#!/usr/bin/python3
"""Reference fixtures for the SoLa forward pass and TSM (tests/unit/test_refine.c).

Regenerate (from the repository root; needs numpy and torch, e.g. Debian's python3):

    /usr/bin/python3 tests/ref/make_fixtures.py

It builds the authors' module in PyTorch,

    nn.Sequential(Conv1d(C, H, k1, padding=d1*(k1-1)//2, dilation=d1), ReLU(),
                  Conv1d(H, H, k2, padding=d2*(k2-1)//2, dilation=d2), ReLU(),
                  Conv1d(H, C, 1))
    refine(x) = x + tanh(alpha) * h(x)       (x is [T, C]; torch sees [1, C, T])

with PyTorch's default init and a random non-zero alpha, and writes into tests/data/ref/:

    CASE.safetensors          the state_dict (struct + json + numpy; F32; metadata
                              dilation1/dilation2 only when a dilation is not 1, so the
                              default path of the loader is exercised too)
    CASE_T<T>_x.npy           input  [T, C]
    CASE_T<T>_y.npy           refine(x) [T, C]
    CASE_T<T>_tsm.npy         TSM of refine(x), only for T <= 64 (keeps files small)
    CASE_T<T>_tsmraw.npy      TSM of x, same
    f16.safetensors           case k5k3's weights stored as F16 (the C side converts)
    f16_T<T>_y.npy            refine(x) with the F16-rounded weights
    cases.txt                 one line per case: NAME C H k1 k2 d1 d2 T...

The TSM is S = (Y Y^T) / (n n^T + 1e-8) with n = torch.linalg.norm(Y, dim=1), as
docs/spec.md section 3 defines it.
"""
import json
import os
import struct

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "ref")

# name, C, H, k1, k2, d1, d2, lengths. T = 1 always; a T below the kernel's reach; one
# long sequence per case at small C so the files stay a few hundred KB in total.
CASES = [
    ("k1k1", 16, 8, 1, 1, 1, 1, [1, 3, 777]),
    ("k3k1", 24, 16, 3, 1, 1, 1, [1, 2, 100]),
    ("k5k3", 32, 16, 5, 3, 1, 1, [1, 3, 4, 100]),
    ("k5k1d2", 48, 32, 5, 1, 2, 1, [1, 4, 7, 64]),
    ("k3k3d2", 16, 12, 3, 3, 2, 2, [1, 2, 5, 777]),
]
TSM_MAX_T = 64


class SoLa(nn.Module):
    def __init__(self, C, H, k1, k2, d1, d2):
        super().__init__()
        self.conv_network = nn.Sequential(
            nn.Conv1d(C, H, k1, padding=d1 * (k1 - 1) // 2, dilation=d1), nn.ReLU(),
            nn.Conv1d(H, H, k2, padding=d2 * (k2 - 1) // 2, dilation=d2), nn.ReLU(),
            nn.Conv1d(H, C, 1))
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x):  # x [T, C]
        h = self.conv_network(x.t().unsqueeze(0))[0].t()
        return x + torch.tanh(self.alpha) * h


def tsm(y):
    n = torch.linalg.norm(y, dim=1)
    return (y @ y.t()) / (n[:, None] * n[None, :] + 1e-8)


def save_safetensors(path, tensors, metadata=None, dtype=np.float32):
    code = {np.float32: "F32", np.float16: "F16"}[dtype]
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy().astype(dtype))
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def npy(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a.detach().numpy(), dtype="<f4"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20230611)
    lines = ["# NAME C H k1 k2 d1 d2 T... (written by tests/ref/make_fixtures.py)"]
    for name, C, H, k1, k2, d1, d2, lens in CASES:
        m = SoLa(C, H, k1, k2, d1, d2)
        with torch.no_grad():
            m.alpha.fill_(float(torch.empty(1).uniform_(0.4, 1.2)))
        meta = None
        if d1 != 1 or d2 != 1:
            meta = {"format": "sola", "dilation1": str(d1), "dilation2": str(d2)}
        save_safetensors(os.path.join(OUT, name + ".safetensors"), m.state_dict(), meta)
        if name == "k5k3":
            save_safetensors(os.path.join(OUT, "f16.safetensors"), m.state_dict(), None,
                             np.float16)
            m16 = SoLa(C, H, k1, k2, d1, d2)
            m16.load_state_dict({k: v.half().float() for k, v in m.state_dict().items()})
        lines.append(" ".join(str(v) for v in [name, C, H, k1, k2, d1, d2] + lens))
        with torch.no_grad():
            for T in lens:
                x = torch.randn(T, C)
                y = m(x)
                npy(f"{name}_T{T}_x.npy", x)
                npy(f"{name}_T{T}_y.npy", y)
                if T <= TSM_MAX_T:
                    npy(f"{name}_T{T}_tsm.npy", tsm(y))
                    npy(f"{name}_T{T}_tsmraw.npy", tsm(x))
                if name == "k5k3":
                    npy(f"f16_T{T}_y.npy", m16(x))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
