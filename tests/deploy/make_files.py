#!/usr/bin/env python3
"""Small input files for the deployment tests, standard library only (no numpy).

  make_files.py model OUT.safetensors --dim C [--hidden H] [--alpha A] [--seed S]
      a SoLa model (docs/spec.md section 2 names and shapes, kernels 5 and 1); alpha 0 is
      the identity, any other alpha makes refine() change its input
  make_files.py npy OUT.npy --length T --dim C [--seed S]
      a float32 [T, C] .npy (v1.0, C order) of uniform noise
"""
import argparse
import json
import random
import struct
import sys


def floats(rng, n, scale):
    return [rng.uniform(-scale, scale) for _ in range(n)]


def write_model(path, c, h, alpha, seed):
    rng = random.Random(seed)
    tensors = [
        ("conv_network.0.weight", [h, c, 5], floats(rng, h * c * 5, 0.1)),
        ("conv_network.0.bias", [h], floats(rng, h, 0.1)),
        ("conv_network.2.weight", [h, h, 1], floats(rng, h * h, 0.1)),
        ("conv_network.2.bias", [h], floats(rng, h, 0.1)),
        ("conv_network.4.weight", [c, h, 1], floats(rng, c * h, 0.1)),
        ("conv_network.4.bias", [c], floats(rng, c, 0.1)),
        ("alpha", [1], [alpha]),
    ]
    header = {"__metadata__": {"format": "sola", "dilation1": "1", "dilation2": "1",
                               "created": "tests/deploy/make_files.py"}}
    data = b""
    for name, shape, vals in tensors:
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)  # keep the data 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + data)


def write_npy(path, t, c, seed):
    rng = random.Random(seed)
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (t, c)
    pad = -(10 + len(hdr) + 1) % 64
    hdr = hdr + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%df" % (t * c), *floats(rng, t * c, 1.0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["model", "npy"])
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=0.0)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.kind == "model":
        write_model(a.out, a.dim, a.hidden, a.alpha, a.seed)
    else:
        write_npy(a.out, a.length, a.dim, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
