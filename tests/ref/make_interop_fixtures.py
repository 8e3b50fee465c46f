#!/usr/bin/python3
"""Writes tests/data/interop/: one tiny dataset per layout users bring from other
codebases (docs/spec.md section 2), read by tests/cli/test_layouts.c and tests/cli/test_annotations.c.

Run with the system python (numpy, h5py from Debian python3-h5py):
    /usr/bin/python3 tests/ref/make_interop_fixtures.py
The files are committed, so the test suite runs without Python. Values follow
val(t, c, s) = s * (t + c / 100) so a test can name the value it expects at any
snippet t and channel c without a reference file.
"""
import json
import os
import pickle
import shutil

import numpy as np
import h5py

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "interop")


def val(T, C, s=1.0, dtype=np.float32):
    t = np.arange(T, dtype=np.float64)[:, None]
    c = np.arange(C, dtype=np.float64)[None, :]
    return (s * (t + c / 100.0)).astype(dtype)


def d(*parts):
    p = os.path.join(ROOT, *parts)
    os.makedirs(p, exist_ok=True)
    return p


def main():
    shutil.rmtree(ROOT, ignore_errors=True)

    # video_features i3d: rgb + flow float64, flow one snippet shorter; fps and
    # timestamps siblings that must not become videos.
    vf = d("vf_pairs")
    np.save(os.path.join(vf, "v_a_rgb.npy"), val(7, 6, 1.0, np.float64))
    np.save(os.path.join(vf, "v_a_flow.npy"), val(6, 6, -1.0, np.float64))
    np.save(os.path.join(vf, "v_a_fps.npy"), np.array(25.0))
    # as video_features' I3D stamps each stack at its last frame (extract_i3d.py:124):
    # 16-frame stacks every 4 frames at 25 fps
    np.save(os.path.join(vf, "v_a_timestamps_ms.npy"), (16 + 4 * np.arange(7)) / 25.0 * 1000)
    np.save(os.path.join(vf, "v_b_rgb.npy"), val(5, 6, 2.0, np.float64))
    np.save(os.path.join(vf, "v_b_flow.npy"), val(5, 6, -2.0, np.float64))
    np.save(os.path.join(vf, "v_b_fps.npy"), np.array(30.0))

    # the same with one video's flow missing and one video corrupt
    vh = d("vf_missing")
    np.save(os.path.join(vh, "v_a_rgb.npy"), val(7, 6, 1.0, np.float64))
    np.save(os.path.join(vh, "v_a_flow.npy"), val(6, 6, -1.0, np.float64))
    np.save(os.path.join(vh, "v_lonely_rgb.npy"), val(4, 6, 3.0, np.float64))
    np.save(os.path.join(vh, "v_bad_rgb.npy"), val(4, 6, 3.0, np.float64))
    with open(os.path.join(vh, "v_bad_flow.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00garbage, not a header")

    # single stream (CLIP) with siblings: items are v_x, v_y
    vs = d("vf_single")
    np.save(os.path.join(vs, "v_x_clip.npy"), val(4, 5, 1.0))
    np.save(os.path.join(vs, "v_x_fps.npy"), np.array(25.0))
    np.save(os.path.join(vs, "v_y_clip.npy"), val(3, 5, 2.0))
    np.save(os.path.join(vs, "v_y_timestamps_ms.npy"), np.arange(3) * 1000.0)

    # HDF5, one dataset per video (TSP / G-TAD); a float64 one, and non-feature
    # entries (a 1-D array and a group) that are not videos.
    with h5py.File(os.path.join(ROOT, "tsp.h5"), "w") as h:
        h.create_dataset("v_a", data=val(6, 4, 1.0))
        h.create_dataset("v_b", data=val(9, 4, 2.0, np.float64))
        h.create_dataset("fps", data=np.array([25.0, 30.0]))
        h.create_group("meta")

    # ActivityNet C3D: one group per video holding "c3d_features" (float64); a group
    # with two datasets is not a video
    with h5py.File(os.path.join(ROOT, "anet_c3d.hdf5"), "w") as h:
        h.create_group("v_a").create_dataset("c3d_features", data=val(6, 4, 1.0, np.float64))
        h.create_group("v_b").create_dataset("c3d_features", data=val(8, 4, 2.0, np.float64))
        g = h.create_group("v_two")
        g.create_dataset("x", data=val(3, 4))
        g.create_dataset("y", data=val(3, 4))

    # G-TAD THUMOS: rgb and flow HDF5 files per split, one dataset per video
    # (gtad_lib/dataset.py:197-222 joins flow then rgb, cut to the shorter T); v_c has
    # no flow; gzip as TSP's merge script writes
    gt = d("gtad")
    with h5py.File(os.path.join(gt, "rgb_val.h5"), "w") as r, \
            h5py.File(os.path.join(gt, "flow_val.h5"), "w") as f:
        r.create_dataset("v_a", data=val(6, 3, 1.0), compression="gzip")
        f.create_dataset("v_a", data=val(5, 2, -1.0), compression="gzip")
        r.create_dataset("v_b", data=val(4, 3, 2.0))
        f.create_dataset("v_b", data=val(4, 2, -2.0))
        r.create_dataset("v_c", data=val(4, 3, 3.0))

    # video_features r21d: NAME_r21d.npy and nothing beside it (extract_r21d.py:54)
    r2 = d("vf_r21d")
    np.save(os.path.join(r2, "v_a_r21d.npy"), val(4, 4, 1.0))
    np.save(os.path.join(r2, "v_b_r21d.npy"), val(3, 4, 2.0))

    # pickled features only (video_features save_pickle, TSP per-video output):
    # never unpickled, only refused with the way to convert
    pk = d("pkl")
    with open(os.path.join(pk, "v_a.pkl"), "wb") as f:
        pickle.dump(val(3, 4), f)

    # BMN/BSN csv_mean_100 (here 10 x 8), header row of column names
    cs = d("bmn_csv")
    for name, s in (("v_a", 1.0), ("v_b", 2.0)):
        x = val(10, 8, s)
        with open(os.path.join(cs, name + ".csv"), "w") as f:
            f.write(",".join("f%d" % i for i in range(8)) + "\n")
            for row in x:
                f.write(",".join("%.6f" % v for v in row) + "\n")

    # .npz: "feats" among other members, and a single-member archive
    nz = d("npz")
    np.savez(os.path.join(nz, "v_a.npz"), feats=val(5, 4, 1.0), fps=np.array(30.0))
    np.savez_compressed(os.path.join(nz, "v_b.npz"), x=val(3, 4, 2.0))

    # channel-first [C, T] (MS-TCN), float64
    ct = d("ct")
    np.save(os.path.join(ct, "c_a.npy"), val(9, 4, 1.0, np.float64).T.copy())
    np.save(os.path.join(ct, "c_b.npy"), val(3, 4, 2.0, np.float64).T.copy())

    # files that disagree on C: the odd one must be named
    mc = d("mixed_c")
    np.save(os.path.join(mc, "m_a.npy"), val(5, 4))
    np.save(os.path.join(mc, "m_b.npy"), val(6, 4))
    np.save(os.path.join(mc, "m_odd.npy"), val(5, 6))

    # ActionFormer/OpenTAD THUMOS-style annotations (stride 4, 16 frames, offset 8)
    an = d("ann")
    db = {
        "video_validation_0000051": {
            "subset": "Validation", "duration": 4.0, "fps": 30.0,
            "annotations": [
                {"label": "BaseballPitch", "segment": [1.0, 2.0], "label_id": 7},
                {"label": "CricketBowling", "segment": [1.5, 2.5], "label_id": 9},
                {"label": "BaseballPitch", "segment": [100.0, 110.0], "label_id": 7},
            ],
        },
        "video_validation_0000052": {
            "subset": "validation", "duration": 2.0,
            "annotations": [{"label": "CricketBowling", "segment": [0.0, 0.5]}],
        },
        "video_test_0000001": {
            "subset": "Test", "duration": 3.0, "fps": 30.0,
            "annotations": [{"label": "BaseballPitch", "segment": [0.5, 1.0]}],
        },
    }
    with open(os.path.join(an, "thumos.json"), "w") as f:
        json.dump({"version": "Thumos14-30fps", "database": db}, f, indent=1)
    fe = d("ann", "feats")
    # 4 s at 30 fps = 120 frames -> (120 - 16) / 4 + 1 = 27 snippets
    np.save(os.path.join(fe, "video_validation_0000051.npy"), val(27, 4, 1.0))
    # 2 s at the default fps given by the test (30) -> 12; 20 is off by 8: a warning
    np.save(os.path.join(fe, "video_validation_0000052.npy"), val(20, 4, 2.0))
    np.save(os.path.join(fe, "video_test_0000001.npy"), val(19, 4, 3.0))

    total = 0
    for dp, _, fs in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print("wrote %s (%d bytes)" % (os.path.normpath(ROOT), total))


if __name__ == "__main__":
    main()
