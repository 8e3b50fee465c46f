#!/usr/bin/python3
"""check_peers.py -- the examples of docs/interop.md, run on inputs written the way each
extractor writes them, and their outputs read the way each peer's own loader reads
them (names, keys, dtypes, shapes, missing_files.txt, HDF5 naming, the time grid).

    /usr/bin/python3 tests/interop/check_peers.py SRC_DIR BIN_DIR

ctest runs it as test_interop_peers. The inputs are generated here (numpy, h5py,
pandas, pickle, as video_features, TSP's merge script, BSN's CSV writer, OpenTAD and
G-TAD lay them out); the loaders are re-implemented here from the peers' code, at
the lines docs/interop.md cites: this file does not contain their code, it does
what their code does with a file.

The examples are the `sh` blocks of docs/interop.md whose no-run marker ends in
"(example NAME)", run in that order in one temporary directory with bash -e, exactly
as written except that `sola train` gets `--epochs 1` (the number of epochs changes
no file name, key or layout). Config snippets are the blocks after
"<!-- config: NAME -->"; the loaders take their paths and grid from them, so a wrong
path in the page fails here.

Exit status: 0 passed, 1 a check failed, 77 numpy/h5py/pandas/yaml missing (a
failure under CI=true).
"""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import types

try:
    import h5py
    import numpy as np
    import pandas as pd
    import yaml
except ImportError as ex:  # pragma: no cover - depends on the machine
    if os.environ.get("CI") in ("true", "1"):
        print("FAIL: CI=true, so this must run, but %s" % ex)
        sys.exit(1)
    print("SKIP: %s (Debian: python3-numpy python3-h5py python3-pandas python3-yaml)" % ex)
    sys.exit(77)

SRC, BIN = (os.path.abspath(a) for a in sys.argv[1:3])
DOC = os.path.join(SRC, "docs", "interop.md")
RNG = np.random.default_rng(16)
checked = []


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- docs/interop.md ------------------------------------------------------------------

def doc_blocks():
    """{name: text} of the examples and {name: (lang, text)} of the config snippets."""
    lines = open(DOC, encoding="utf-8").read().split("\n")
    examples, configs, order = {}, {}, []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang, j = m.group(1), i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        text = "\n".join(lines[i + 1:j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        prev = lines[k] if k >= 0 else ""
        ex = re.search(r"<!--\s*no-run:.*\(example ([\w-]+)\)\s*-->", prev)
        cf = re.search(r"<!--\s*config:\s*([\w-]+)\s*-->", prev)
        if ex and lang == "sh":
            examples[ex.group(1)] = text
            order.append(ex.group(1))
        elif cf:
            configs[cf.group(1)] = (lang, text)
        i = j + 1
    return examples, configs, order


def run(cmd, cwd, ok=(0,)):
    env = {"PATH": BIN + ":/usr/bin:/bin", "HOME": cwd, "LC_ALL": "C",
           "OPENBLAS_NUM_THREADS": "2"}
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode not in ok:
        fail("exit %d from:\n%s\n--- stderr:\n%s" % (p.returncode, cmd, p.stderr[-3000:]))
    return p


def run_example(name, examples, cwd):
    check(name in examples, "docs/interop.md has no example '%s'" % name)
    cmd = re.sub(r"\bsola train\b", "sola train --epochs 1", examples[name])
    return run(cmd, cwd)


def yaml_dataset(configs, name):
    lang, text = configs[name]
    check(lang == "yaml", "config %s is not yaml" % name)
    return yaml.safe_load(text)["dataset"]


def py_config(configs, name, **names):
    lang, text = configs[name]
    check(lang == "python", "config %s is not python" % name)
    scope = dict(names)
    exec(compile(text, "docs/interop.md config " + name, "exec"), {}, scope)  # our own page
    return scope


def flag(configs, name, opt):
    m = re.search(re.escape(opt) + r"\s+(\S+)", configs[name][1])
    check(m is not None, "config %s has no %s" % (name, opt))
    return m.group(1)


def meta(path):
    with open(path) as f:
        return json.load(f)


def lines(path):
    with open(path) as f:
        return f.read().split("\n")[:-1]


# ---- inputs, as the extractors write them -----------------------------------------------

def feats(T, C, dtype=np.float32):
    return RNG.standard_normal((T, C)).astype(dtype)


def vf_save(folder, stem, key, value):
    # video_features utils/utils.py make_path + write_numpy: "{stem}_{key}.npy"
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "%s_%s.npy" % (stem, key)), value)


def vf_i3d(folder, stem, T, fps, stack, step, streams=("rgb", "flow")):
    # extract_i3d.py: float64 [T, 1024] per stream, fps 0-d, one stamp per stack at its
    # last frame (CAP_PROP_POS_MSEC after reading it)
    for s in streams:
        vf_save(folder, stem, s, feats(T, 1024, np.float64))
    vf_save(folder, stem, "fps", np.array(float(fps)))
    vf_save(folder, stem, "timestamps_ms", np.array([(stack + k * step) / fps * 1000.0
                                                     for k in range(T)]))


def duration_for(T, fps, stride, frames):
    """A duration whose floor((d*fps - frames)/stride) + 1 is T."""
    return round(((T - 1) * stride + frames + stride / 2) / fps, 2)


def write_json(path, db):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"version": "test", "database": db}, f, indent=1)


# ---- the examples -----------------------------------------------------------------------

def thumos_vf(ex, cf, w):
    """ActionFormer THUMOS on video_features I3D (libs/datasets/thumos14.py)."""
    src = os.path.join(w, "data/thumos/i3d")
    db = {}
    spec = [("video_validation_0000051", 30, 30, "Validation"),
            ("video_validation_0000052", 34, 25, "Validation"),  # THUMOS mixes 25 and 30
            ("video_test_0000004", 28, 30, "Test"),
            ("video_test_0000006", 40, 30, "Test")]
    for name, T, fps, sub in spec:
        vf_i3d(src, name, T, fps, 16, 4)
        db[name] = {"subset": sub, "duration": duration_for(T, fps, 4, 16), "fps": fps,
                    "annotations": [{"label": "HighJump", "label_id": 0,
                                     "segment": [1.0, 2.0]}]}
    vf_i3d(src, "video_test_0000062", 30, 30, 16, 4, streams=("rgb",))  # flow failed
    db["video_test_0000062"] = dict(db["video_test_0000004"])
    db["video_test_0000099"] = dict(db["video_test_0000004"])  # never extracted
    write_json(os.path.join(w, "data/thumos/annotations/thumos14.json"), db)

    p = run_example("thumos-vf", ex, w)
    check("warning" not in p.stderr, "thumos-vf: unexpected warning:\n" + p.stderr)
    cfg = yaml_dataset(cf, "thumos-vf")
    out = os.path.join(w, cfg["feat_folder"])
    m = meta(os.path.join(out, "refine_meta.json"))
    check(lines(os.path.join(out, "missing_files.txt")) ==
          ["video_test_0000062", "video_test_0000099"], "thumos-vf: missing_files.txt")
    # thumos14.py:92-101 then :150-152, split as the config's train/val splits
    json_db = json.load(open(os.path.join(w, cfg["json_file"])))["database"]
    loaded = 0
    for key, value in json_db.items():
        if value["subset"].lower() not in ("validation", "test"):
            continue
        f = os.path.join(out, (cfg["file_prefix"] or "") + key + cfg["file_ext"])
        if not os.path.exists(f):
            continue  # thumos14.py:100-101
        x = np.load(f).astype(np.float32)
        check(x.shape == (value_T(spec, key), cfg["input_dim"]), "thumos-vf: %s %s" % (key, x.shape))
        pv = m["per_video"][key]
        # the grid ActionFormer assumes is the one the features were made with
        check(pv["stride"] == cfg["feat_stride"] and pv["frames"] == cfg["num_frames"],
              "thumos-vf: %s grid %s/%s vs config" % (key, pv["stride"], pv["frames"]))
        check(pv["fps"] == value["fps"] and pv["annotation_fps"] == value["fps"],
              "thumos-vf: %s fps" % key)
        check(pv["expected_T"] == x.shape[0], "thumos-vf: %s expected_T" % key)
        check(os.path.exists(os.path.join(out, key + "_fps.npy")), "thumos-vf: fps copied")
        loaded += 1
    check(loaded == 4, "thumos-vf: ActionFormer loaded %d videos, want 4" % loaded)
    # video_features' own defaults (64-frame stacks every 64 frames) under the same
    # command: the 16x wrong grid is named
    bad = os.path.join(w, "vf64")
    vf_i3d(bad, "video_test_0000004", 28, 30, 64, 64)
    p = run("sola refine -m thumos.safetensors vf64/ -o vf64_sola/ --stride 4 --frames 16", w)
    check("gives 64 frames between snippets, --stride 4" in p.stderr,
          "thumos-vf: no warning for a 64/64 extraction:\n" + p.stderr)
    checked.append("ActionFormer THUMOS <- video_features I3D (grid, missing list, 64/64 warning)")


def value_T(spec, key):
    return [s[1] for s in spec if s[0] == key][0]


def anet_tsp(ex, cf, w):
    """ActionFormer ActivityNet on TSP's merged HDF5 (libs/datasets/anet.py)."""
    os.makedirs(os.path.join(w, "data/anet_1.3"), exist_ok=True)
    Ts = {"abc123DEF45": 30, "xyz987UVW65": 26, "v_startsWv": 33, "qwe456RTY12": 25}
    # merge_pkl_files_into_one_h5_feature_file.py:18-23: name = video file stem (v_KEY)
    with h5py.File(os.path.join(w, "data/anet_1.3/tsp_features.h5"), "w") as h:
        for k, T in Ts.items():
            h.create_dataset("v_" + k, data=feats(T, 512), chunks=True, compression="gzip",
                             compression_opts=9)
    db = {k: {"subset": "training" if i % 2 else "validation", "duration": 20.0,
              "annotations": [{"label": "Run", "label_id": 0, "segment": [2.0, 5.0]}]}
          for i, k in enumerate(list(Ts) + ["tspFailedOn"])}
    write_json(os.path.join(w, "data/anet_1.3/annotations/anet1.3_tsp_filtered.json"), db)
    run_example("anet-tsp", ex, w)
    miss = os.path.join(w, "data/anet_1.3/tsp_sola.missing_files.txt")
    check(lines(miss) == ["tspFailedOn"], "anet-tsp: missing list %s" % lines(miss))
    run_example("anet-filter", ex, w)
    cfg = yaml_dataset(cf, "anet-tsp")
    ff = cfg["feat_folder"]
    check(".hdf5" in ff, "anet-tsp: anet.py:40 needs '.hdf5' in feat_folder")  # use_hdf5
    json_db = json.load(open(os.path.join(w, cfg["json_file"])))["database"]
    check("tspFailedOn" not in json_db and len(json_db) == 4, "anet-tsp: filtered JSON")
    with h5py.File(os.path.join(w, ff), "r") as h:  # anet.py:148-153, every video
        for key in json_db:
            x = np.asarray(h[cfg["file_prefix"] + key][()], dtype=np.float32)
            check(x.shape == (Ts[key], cfg["input_dim"]), "anet-tsp: %s %s" % (key, x.shape))
            check(h[cfg["file_prefix"] + key].dtype == np.float32, "anet-tsp: float32")
    checked.append("ActionFormer ActivityNet <- TSP HDF5 (.hdf5 name, v_ keys, filtered JSON)")


def epic(ex, cf, w):
    """ActionFormer EPIC-Kitchens .npz (libs/datasets/epic_kitchens.py:155-158)."""
    src = os.path.join(w, "data/epic_kitchens/features")
    os.makedirs(src)
    for k, T in (("P01_01", 30), ("P01_02", 27)):
        np.savez(os.path.join(src, k + ".npz"), feats=feats(T, 2304))
    run_example("epic", ex, w)
    cfg = yaml_dataset(cf, "epic")
    for k, T in (("P01_01", 30), ("P01_02", 27)):
        with np.load(os.path.join(w, cfg["feat_folder"], k + cfg["file_ext"])) as data:
            x = data["feats"].astype(np.float32)
        check(x.shape == (T, cfg["input_dim"]), "epic: %s %s" % (k, x.shape))
    checked.append("ActionFormer EPIC-Kitchens <- .npz (feats member)")


def opentad_load(scope, w, db, subsets, prefix, fmt="npy"):
    """padding_dataset.py:56-79 then LoadFeats (loading.py:52-74): every video that is
    not blocked must load, or OpenTAD exit()s."""
    with open(os.path.join(w, scope["block_list"])) as f:
        blocked = [line.rstrip("\n") for line in f]
    n = 0
    for name, info in db.items():
        if name in blocked or info["subset"] not in subsets:
            continue
        path = os.path.join(w, scope["data_path"], "%s%s.%s" % (prefix, name, fmt))
        try:
            x = np.load(path).astype(np.float32)
        except Exception as ex:  # loading.py:64-66
            fail("OpenTAD would print 'Missing data: %s' and exit(): %s" % (path, ex))
        n += 1
        yield name, x
    check(n > 0, "OpenTAD: no video loaded")


def opentad_thumos(ex, cf, w):
    """OpenTAD THUMOS (features_i3d_pad.py, datasets/thumos.py, LoadFeats)."""
    src = os.path.join(w, "data/thumos-14/features/i3d_actionformer_stride4_thumos")
    os.makedirs(src)
    Ts = {"video_validation_0000051": 30, "video_validation_0000052": 35,
          "video_test_0000004": 28}
    for k, T in Ts.items():
        np.save(os.path.join(src, k + ".npy"), feats(T, 2048))
    with open(os.path.join(src, "video_test_0000062.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00cut short")  # a download that stopped
    # OpenTAD ships the list (generate_missing_list.py:17-19: "\n".join, no final newline)
    with open(os.path.join(src, "missing_files.txt"), "w") as f:
        f.write("video_test_0000270")
    db = {}
    for k, T in dict(Ts, video_test_0000062=30, video_test_0000270=30).items():
        fps = 25.0 if k.endswith("52") else 30.0
        d = duration_for(T, fps, 4, 16)
        db[k] = {"subset": "validation" if "validation" in k else "test", "duration": d,
                 "frame": int(round(d * fps)),  # OpenTAD keeps the frame count, not fps
                 "annotations": [{"label": "Ambiguous", "segment": [0.5, 1.0]},
                                 {"label": "HighJump", "segment": [1.0, 2.0]}]}
    write_json(os.path.join(w, "data/thumos-14/annotations/thumos_14_anno.json"), db)
    p = run_example("opentad-thumos", ex, w)
    check("warning" not in p.stderr, "opentad-thumos: unexpected warning:\n" + p.stderr)
    scope = py_config(cf, "opentad-thumos")
    got = dict(opentad_load(scope, w, db, ("validation", "test"), ""))
    check(sorted(got) == sorted(Ts), "opentad-thumos: loaded %s" % sorted(got))
    for k, x in got.items():
        check(x.shape == (Ts[k], 2048), "opentad-thumos: %s %s" % (k, x.shape))
    m = meta(os.path.join(w, scope["data_path"], "refine_meta.json"))
    pv = m["per_video"]["video_validation_0000052"]
    check(pv["fps_from"] == "annotations: frame/duration" and abs(pv["fps"] - 25) < 0.01,
          "opentad-thumos: per-video fps from frame/duration: %s" % pv)
    checked.append("OpenTAD THUMOS <- its own feature folder (block_list, frame/duration fps)")


def opentad_anet(ex, cf, w):
    """OpenTAD ActivityNet (features_tsp_pad.py: prefix v_, block_list by key)."""
    src = os.path.join(w, "data/activitynet-1.3/features/anet_tsp_npy_unresize")
    os.makedirs(src)
    Ts = {"abc123DEF45": 30, "v_startsWv": 28, "qwe456RTY12": 26}
    for k, T in Ts.items():
        np.save(os.path.join(src, "v_" + k + ".npy"), feats(T, 512))
    with open(os.path.join(src, "v_brokenVid1.npy"), "wb") as f:
        f.write(b"not a numpy file")
    with open(os.path.join(src, "missing_files.txt"), "w") as f:
        f.write("goneFromYT1\n")
    db = {k: {"subset": "training" if i % 2 else "validation", "duration": 30.0,
              "frame": 900, "annotations": [{"label": "Run", "segment": [2.0, 5.0]}]}
          for i, k in enumerate(list(Ts) + ["brokenVid1", "goneFromYT1", "neverThere1"])}
    write_json(os.path.join(w, "data/activitynet-1.3/annotations/activity_net.v1-3.min.json"),
               db)
    run_example("opentad-anet", ex, w)
    scope = py_config(cf, "opentad-anet")
    got = dict(opentad_load(scope, w, db, ("training", "validation"), "v_"))
    check(sorted(got) == sorted(Ts), "opentad-anet: loaded %s" % sorted(got))
    check(lines(os.path.join(w, scope["block_list"])) ==
          ["brokenVid1", "goneFromYT1", "neverThere1"],
          "opentad-anet: block list %s" % lines(os.path.join(w, scope["block_list"])))
    checked.append("OpenTAD ActivityNet <- v_KEY.npy (strip-v names, inherited + annotated)")


def bmn(ex, cf, w):
    """BMN csv_mean_100 (dataset.py:53-56) from BSN's writer (data_process.py:115-131)."""
    src = os.path.join(w, "data/activitynet_feature_cuhk/csv_mean_100")
    os.makedirs(src)
    cols = ["f%d" % i for i in range(400)]
    names = ["v_abc123DEF45", "v_xyz987UVW65"]
    for n in names:
        pd.DataFrame(feats(100, 400, np.float64), columns=cols).to_csv(
            os.path.join(src, n + ".csv"), index=False)
    p = run_example("bmn", ex, w)
    check("every video has T=100" in p.stderr, "bmn: no fixed-length note")
    feature_path = flag(cf, "bmn", "--feature_path")
    for n in names:
        df = pd.read_csv(os.path.join(w, feature_path + "csv_mean_" + str(100) + "/" + n + ".csv"))
        check(list(df.columns) == cols, "bmn: header row")
        x = df.values[:, :].T
        check(x.shape == (400, 100) and np.isfinite(x).all(), "bmn: %s %s" % (n, x.shape))
    checked.append("BMN <- BSN csv_mean_100 (parent folder as feature_path, header kept)")


def gtad(ex, cf, w):
    """G-TAD THUMOS rgb/flow HDF5 files (gtad_lib/dataset.py:197-222)."""
    src = os.path.join(w, "data/thumos_feature/TSN_pretrain_avepool_allfrms_hdf5")
    os.makedirs(src)
    vids = {"val": {"video_validation_0000051": 40, "video_validation_0000052": 33},
            "test": {"video_test_0000004": 36}}
    for split, vs in vids.items():
        with h5py.File(os.path.join(src, "rgb_%s.h5" % split), "w") as r, \
                h5py.File(os.path.join(src, "flow_%s.h5" % split), "w") as f:
            for k, T in vs.items():
                r.create_dataset(k, data=feats(T, 1024))
                f.create_dataset(k, data=feats(T - 1, 1024))  # one row short
    run_example("gtad", ex, w)
    feature_path = os.path.join(w, flag(cf, "gtad", "--feature_path"))
    run("sola refine -m gtad.safetensors --pair-order flow,rgb "
        "data/thumos_feature/TSN_pretrain_avepool_allfrms_hdf5/ -o joined.h5", w)
    skip = 1  # skip_videoframes; any value reads the same rows of both files
    with h5py.File(os.path.join(w, "joined.h5"), "r") as joined:
        for split, vs in vids.items():
            fl = h5py.File(feature_path + "/flow_%s.h5" % split, "r")
            rg = h5py.File(feature_path + "/rgb_%s.h5" % split, "r")
            for k, T in vs.items():
                parts = [fl[k][::skip, ...], rg[k][::skip, ...]]
                n = min(h.shape[0] for h in parts)
                x = np.concatenate([h[:n, :] for h in parts], axis=1)
                check(x.shape == (T - 1, 2048), "gtad: %s %s" % (k, x.shape))
                # G-TAD's own join of the split files is the refined vector
                check(np.array_equal(x, joined[k][()]), "gtad: %s differs from the joined "
                      "refine" % k)
            fl.close()
            rg.close()
    checked.append("G-TAD <- rgb/flow HDF5 files (flow,rgb order, split back exactly)")


def mstcn(ex, cf, w):
    """MS-TCN [C, T] features (batch_gen.py:40-46, main.py:42)."""
    src = os.path.join(w, "data/gtea/features")
    os.makedirs(src)
    Ts = {"S1_Cheese_C1": 40, "S1_Coffee_C1": 31}
    for k, T in Ts.items():
        np.save(os.path.join(src, k + ".npy"), feats(T, 2048, np.float64).T.copy())
    run_example("mstcn", ex, w)
    scope = py_config(cf, "mstcn", args=types.SimpleNamespace(dataset="gtea"))
    for k, T in Ts.items():
        x = np.load(os.path.join(w, scope["features_path"] + (k + ".txt").split('.')[0] + '.npy'))
        check(x.shape == (2048, T), "mstcn: %s %s" % (k, x.shape))
        check(x[:, ::2].shape[1] == (T + 1) // 2, "mstcn: sample_rate")
    checked.append("MS-TCN <- [C, T] (features_path)")


def pkl(ex, cf, w):
    """Pickles: refused with the conversion that the page shows."""
    src = os.path.join(w, "data/tsp_pkl")
    os.makedirs(src)
    for k, T in (("v_abc123DEF45", 30), ("v_xyz987UVW65", 27)):
        with open(os.path.join(src, k + ".pkl"), "wb") as f:  # eval_video_dataset.py:109-112
            pickle.dump(feats(T, 512), f)
    p = run("sola refine -m anet_tsp.safetensors data/tsp_pkl/ -o data/tsp_pkl_sola/", w,
            ok=(1,))
    conv = ex["pkl"].split("\n")[0]
    check(conv.startswith("/usr/bin/python3 -c"), "pkl: the page's first line converts")
    check(conv[len("/usr/bin/python3 -c "):] in p.stderr,
          "pkl: sola's message does not give the page's command:\n" + p.stderr)
    run_example("pkl", ex, w)
    for k, T in (("v_abc123DEF45", 30), ("v_xyz987UVW65", 27)):
        x = np.load(os.path.join(w, "data/tsp_pkl_sola", k + ".npy"))
        check(x.shape == (T, 512) and x.dtype == np.float32, "pkl: %s" % k)
    checked.append("pickles <- refused, converted with the printed command")


def main():
    examples, configs, order = doc_blocks()
    steps = {"thumos-vf": thumos_vf, "anet-tsp": anet_tsp, "anet-filter": None,
             "epic": epic, "opentad-thumos": opentad_thumos, "opentad-anet": opentad_anet,
             "bmn": bmn, "gtad": gtad, "mstcn": mstcn, "pkl": pkl}
    check(set(order) == set(steps), "examples in docs/interop.md %s, checked here %s"
          % (sorted(order), sorted(steps)))
    w = tempfile.mkdtemp(prefix="sola-peers-")
    try:
        for name in order:
            if steps[name]:
                steps[name](examples, configs, w)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    for c in checked:
        print("ok: " + c)
    print("PASS: %d peers, %d examples of docs/interop.md" % (len(checked), len(order)))


if __name__ == "__main__":
    main()
