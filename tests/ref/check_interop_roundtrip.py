#!/usr/bin/python3
"""Refines every layout of tests/data/interop with a fresh (identity) model and reads
the outputs back with numpy and h5py, as downstream codebases would: same names, same
T, float32, values equal to the input. Not part of ctest (the C tests check the same
with the core readers); run by hand or in CI where Python is present:

    /usr/bin/python3 tests/ref/check_interop_roundtrip.py build-interop/sola
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import h5py
except ImportError:  # h5py is optional; the HDF5 checks are skipped without it
    h5py = None

SOLA = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/sola")
FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "interop")


def run(*args, ok=(0,)):
    p = subprocess.run([SOLA] + list(args), capture_output=True, text=True)
    assert p.returncode in ok, (args, p.returncode, p.stderr)
    return p


def stems(d, ext):
    return sorted(os.path.basename(f)[: -len(ext)] for f in glob.glob(os.path.join(d, "*" + ext)))


def main():
    tmp = tempfile.mkdtemp()
    m = {}
    for c in (4, 8, 12):
        m[c] = os.path.join(tmp, "m%d.safetensors" % c)
        run("init", "--dim", str(c), "--hidden", "4", "-o", m[c])
    checked = []

    # video_features pairs -> NAME.npy, rgb||flow trimmed to the shorter T
    out = os.path.join(tmp, "vf")
    run("refine", "-m", m[12], os.path.join(FX, "vf_pairs"), "-o", out,
        "--h5-out", out + ".h5")
    assert stems(out, ".npy") == ["v_a", "v_b"], stems(out, ".npy")
    for v in ("v_a", "v_b"):
        rgb = np.load(os.path.join(FX, "vf_pairs", v + "_rgb.npy"))
        flow = np.load(os.path.join(FX, "vf_pairs", v + "_flow.npy"))
        T = min(len(rgb), len(flow))
        y = np.load(os.path.join(out, v + ".npy"))
        assert y.dtype == np.float32 and y.shape == (T, 12), (v, y.dtype, y.shape)
        assert np.allclose(y, np.concatenate([rgb[:T], flow[:T]], 1), atol=1e-6)
        if h5py:
            with h5py.File(out + ".h5", "r") as h:
                assert np.array_equal(h[v][()], y)
    checked.append("video_features pairs (npy%s)" % (" + h5" if h5py else ""))

    # HDF5 in -> NAME.npy and HDF5 out
    if h5py:
        out = os.path.join(tmp, "h5")
        run("refine", "-m", m[4], os.path.join(FX, "tsp.h5"), "-o", out)
        run("refine", "-m", m[4], os.path.join(FX, "tsp.h5"), "-o", out + ".h5")
        with h5py.File(os.path.join(FX, "tsp.h5"), "r") as src, h5py.File(out + ".h5", "r") as dst:
            assert sorted(dst.keys()) == ["v_a", "v_b"]
            for v in ("v_a", "v_b"):
                x = src[v][()]
                assert dst[v].dtype == np.float32 and dst[v].shape == x.shape
                y = np.load(os.path.join(out, v + ".npy"))
                assert y.shape == x.shape and np.allclose(y, x, atol=1e-6)
        checked.append("hdf5")

    # channel-first stays channel-first
    out = os.path.join(tmp, "ct")
    run("refine", "-m", m[4], os.path.join(FX, "ct"), "-o", out, "--layout", "ct")
    for v in ("c_a", "c_b"):
        x = np.load(os.path.join(FX, "ct", v + ".npy"))
        y = np.load(os.path.join(out, v + ".npy"))
        assert y.dtype == np.float32 and y.shape == x.shape and np.allclose(x, y, atol=1e-6)
    checked.append("ct")

    # BMN csv stays csv with its header
    out = os.path.join(tmp, "csv")
    run("refine", "-m", m[8], os.path.join(FX, "bmn_csv"), "-o", out)
    for v in ("v_a", "v_b"):
        src = os.path.join(FX, "bmn_csv", v + ".csv")
        x = np.loadtxt(src, delimiter=",", skiprows=1)
        y = np.loadtxt(os.path.join(out, v + ".csv"), delimiter=",", skiprows=1)
        assert y.shape == x.shape and np.allclose(x, y, atol=1e-5)
        assert open(src).readline() == open(os.path.join(out, v + ".csv")).readline()
    checked.append("bmn csv")

    # npz keeps the member name
    out = os.path.join(tmp, "npz")
    run("refine", "-m", m[4], os.path.join(FX, "npz"), "-o", out)
    a = np.load(os.path.join(out, "v_a.npz"))
    assert list(a.keys()) == ["feats"] and a["feats"].shape == (5, 4)
    assert list(np.load(os.path.join(out, "v_b.npz")).keys()) == ["x"]
    checked.append("npz")

    # missing videos: exit 1, listed; --allow-missing: exit 0
    out = os.path.join(tmp, "miss")
    run("refine", "-m", m[12], os.path.join(FX, "vf_missing"), "-o", out, ok=(1,))
    assert open(os.path.join(out, "missing_files.txt")).read() == "v_bad\nv_lonely\n"
    run("refine", "-m", m[12], os.path.join(FX, "vf_missing"), "-o", out, "--allow-missing")
    checked.append("missing")

    print("round trip ok:", ", ".join(checked))


if __name__ == "__main__":
    main()
