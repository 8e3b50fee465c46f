#!/usr/bin/env python3
"""Minimal solad client: refine a feature sequence via .npy and via JSON.

    /usr/bin/python3 examples/client.py [--url http://127.0.0.1:8080] [--T 64] [--model NAME]

Needs `requests` and `numpy`. Against a solad started with no options (embedded
default model, C = 2048, identity) the refined features equal the input; against a
trained model they differ. The channel count is read from GET /models.
"""
import argparse
import io
import json
import sys

import numpy as np
import requests


def model_dim(url, name):
    """C of the named model, or of the default one."""
    reg = requests.get(f"{url}/models", timeout=10)
    reg.raise_for_status()
    reg = reg.json()
    name = name or reg.get("default")
    if not name:
        sys.exit("several models are served: pass --model NAME")
    for m in reg["models"]:
        if m["name"] == name:
            return name, m["C"]
    sys.exit(f"no model named {name!r}")


def refine_npy(url, x, model=None, version=None):
    """POST a [T, C] float32 array as .npy; returns (refined array, version used)."""
    buf = io.BytesIO()
    np.save(buf, x.astype(np.float32, copy=False))
    params = {k: v for k, v in (("model", model), ("version", version)) if v is not None}
    r = requests.post(f"{url}/refine", params=params, data=buf.getvalue(),
                      headers={"Content-Type": "application/x-npy"}, timeout=300)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.json().get('error')}")
    return np.load(io.BytesIO(r.content)), int(r.headers["X-Model-Version"])


def refine_json(url, x, model=None, tsm=None):
    """POST {"features": [[...]]} (JSON numbers round-trip float32 exactly)."""
    body = {"features": x.tolist()}
    if model:
        body["model"] = model
    if tsm:
        body["tsm"] = tsm
    r = requests.post(f"{url}/refine", data=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=300)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.json().get('error')}")
    reply = r.json()
    return {k: np.asarray(v, dtype=np.float32) for k, v in reply.items()
            if k in ("features", "tsm", "tsm_raw")}, reply["version"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--T", type=int, default=64, help="snippets in the test sequence")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()

    name, C = model_dim(a.url, a.model)
    x = np.random.default_rng(0).standard_normal((a.T, C)).astype(np.float32)
    print(f"model {name}: C = {C}; input {x.shape} {x.dtype}")

    y, ver = refine_npy(a.url, x, model=a.model)
    print(f".npy : refined {y.shape} {y.dtype} by version {ver}; "
          f"max |y - x| = {np.abs(y - x).max():.4g}")

    out, ver = refine_json(a.url, x, model=a.model, tsm="refined")
    print(f"JSON : refined {out['features'].shape}, tsm {out['tsm'].shape} by version {ver}; "
          f"equal to the .npy reply: {np.array_equal(out['features'], y)}")


if __name__ == "__main__":
    main()
