#!/usr/bin/python3
"""Seeds the fuzz corpora (run by hand; the outputs are committed under fuzz/corpus/).

Copies the format fixtures and the malformed corpus of the test suite into the corpus
directory of the harness that reads them, and adds tiny inputs of our own that reach
code the fixtures do not: SoLa models of every accepted dtype, with and without the
dissimilarity head, extra tensors of integer dtypes, dilations, a 0-d alpha; npz
archives with several members, labels and a 'feats' member. Tiny on purpose: the
fuzzer mutates faster and the replay test stays fast.

    /usr/bin/python3 fuzz/make_seeds.py
"""
import glob
import io
import json
import os
import shutil
import struct
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def put(kind, name, data):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(kind, pattern, prefix):
    for p in sorted(glob.glob(os.path.join(ROOT, pattern))):
        d = os.path.join(CORPUS, kind)
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(p, os.path.join(d, prefix + os.path.basename(p)))


ST_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
         "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, array); laid out as the reference writer does
    (sorted by name, header padded with spaces to 8 bytes). BF16 given as uint16."""
    hdr, blobs, off = {}, [], 0
    for name, dt, a in sorted(tensors, key=lambda t: t[0]):
        if dt == "BF16":
            raw = np.asarray(a, dtype=np.uint16).astype("<u2").tobytes()
        else:
            raw = np.asarray(a, dtype=np.dtype(ST_DT[dt]).newbyteorder("<")).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(np.shape(a)), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def model(C, H, k1, k2, dt="F32", P=0, extras=(), meta=None, scalar_alpha=False, seed=0):
    r = np.random.default_rng(seed)
    def w(*s):
        return (r.standard_normal(s) * 0.5).astype(np.float32)
    def cv(a):
        if dt == "BF16":
            return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return a
    t = [("conv_network.0.weight", dt, cv(w(H, C, k1))), ("conv_network.0.bias", dt, cv(w(H))),
         ("conv_network.2.weight", dt, cv(w(H, H, k2))), ("conv_network.2.bias", dt, cv(w(H))),
         ("conv_network.4.weight", dt, cv(w(C, H, 1))), ("conv_network.4.bias", dt, cv(w(C))),
         ("alpha", dt, cv(np.array(0.3 if scalar_alpha else [0.3], dtype=np.float32)))]
    if P:
        t += [("dissim_head.network.0.weight", dt, cv(w(P, C))),
              ("dissim_head.network.0.bias", dt, cv(w(P))),
              ("dissim_head.network.2.weight", dt, cv(w(C, P))),
              ("dissim_head.network.2.bias", dt, cv(w(C)))]
    t += list(extras)
    m = {"format": "sola"}
    m.update(meta or {})
    return safetensors(t, m)


def npy(a, version=None):
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asarray(a), version=version, allow_pickle=False)
    return b.getvalue()


def npz(members, compressed):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for name, a in members:
            # a fixed timestamp: the same arrays give the same bytes on every run
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
            z.writestr(info, npy(a))
    return b.getvalue()


def main():
    copy("npy", "tests/data/formats/*.npy", "fmt_")
    copy("npy", "tests/data/malformed/npy_*.npy", "bad_")
    copy("npz", "tests/data/formats/*.npz", "fmt_")
    copy("npz", "tests/data/malformed/npz_*.npz", "bad_")
    copy("safetensors", "tests/data/formats/*.safetensors", "fmt_")
    copy("safetensors", "tests/data/malformed/st_*", "bad_")
    copy("model", "tests/data/formats/model.safetensors", "fmt_")
    copy("model", "tests/data/ref/k1k1.safetensors", "ref_")

    # Models: each dtype, head, extras, dilations, scalar alpha.
    put("model", "k3k1_f32", model(4, 3, 3, 1, meta={"dilation1": "2", "objective": "sola"}))
    put("model", "k1k3_f16", model(3, 2, 1, 3, dt="F16", meta={"dilation2": "3"}))
    put("model", "k3k1_bf16", model(2, 2, 3, 1, dt="BF16"))
    put("model", "k1k1_f64_alpha0d", model(2, 1, 1, 1, dt="F64", scalar_alpha=True))
    put("model", "head_extras", model(3, 2, 3, 1, P=2, extras=[
        ("adamw.step", "I64", np.array([7])), ("cycle.queue_ptr", "I32", np.array([3, -1])),
        ("cycle.mask", "BOOL", np.array([True, False])), ("cycle.proj.weight", "F32",
                                                          np.ones((2, 3), np.float32))]))
    put("model", "nometa", model(2, 2, 1, 1, meta={}))
    # The same models are valid safetensors files: seed that harness with two of them.
    put("safetensors", "model_head_extras", model(3, 2, 3, 1, P=2, extras=[
        ("x.u8", "U8", np.arange(3, dtype=np.uint8))]))
    put("safetensors", "model_bf16", model(2, 2, 3, 1, dt="BF16"))

    # .npy: small ones of each version and a label file.
    put("npy", "own_v1_f4", npy(np.arange(6, dtype="<f4").reshape(2, 3)))
    put("npy", "own_v2_f8_3d", npy(np.arange(8, dtype=">f8").reshape(2, 2, 2), version=(2, 0)))
    put("npy", "own_v3_f2_fortran", npy(np.asfortranarray(np.arange(6, dtype="<f2").reshape(2, 3)),
                                        version=(3, 0)))
    put("npy", "own_labels_i4", npy(np.array([0, 1, 1, 0], dtype="<i4")))

    # .npz: several members, a 'feats' member, labels, stored and deflated.
    put("npz", "own_feats_stored", npz([("feats", np.ones((3, 2), "<f4")),
                                       ("labels", np.array([0, 1, 0], "<i8"))], False))
    put("npz", "own_feats_deflated", npz([("feats", np.arange(6, dtype="<f8").reshape(3, 2))], True))
    put("npz", "own_two_members", npz([("a", np.zeros((2, 2), "<f4")),
                                      ("b", np.zeros((1, 2), ">f2"))], True))

    # Dataset uploads (.npz, one item per member, equal C).
    copy("dataset_npz", "tests/data/formats/savez*.npz", "fmt_")
    put("dataset_npz", "ok_stored", npz([("v1", np.ones((3, 4), "<f4")),
                                         ("v2", np.arange(8, dtype="<f8").reshape(2, 4))], False))
    put("dataset_npz", "ok_deflated", npz([("a", np.zeros((5, 2), "<f4"))], True))
    put("dataset_npz", "bad_c", npz([("a", np.zeros((5, 2), "<f4")), ("b", np.zeros((5, 3), "<f4"))],
                                    True))
    put("dataset_npz", "bad_name", npz([(".hidden", np.zeros((2, 2), "<f4"))], False))
    put("dataset_npz", "bad_1d", npz([("a", np.zeros(4, "<f4"))], False))

    # API: JSON feature bodies, and whole requests (see fuzz/harness_api.h for the
    # request text form: request line, query lines, blank, header lines, blank, body).
    feats = {
        "2d": b'{"features": [[1, -2.5e0], [3, 4e-1]]}',
        "3d_opts": b'{"model": "m", "version": 1, "tsm": "both", "features": [[[1,2,3]],[[4,5,6]]]}',
        "escapes": b' {"m\\u0031": "a\\"b\\n", "x": {"y": [1, {"z": null}], "t": true},'
                   b' "features": [[1E+2, -0.0, 1e-45]]}\n',
        "nested_other": b'{"a": [[[[[[1]]]]]], "features": [[0.1, 0.2, 0.3, 0.4]]}',
        "bad_ragged": b'{"features": [[1, 2], [3]]}',
        "bad_string": b'{"features": [[1, "2"]]}',
    }
    for k, v in feats.items():
        put("api_features", k, v)

    body = b'{"features": [[1, 2, 3, 4], [5, 6, 7, 8], [0.5, -1, 2, 1e-3]]}'
    x = np.arange(12, dtype="<f4").reshape(3, 4) / 7
    small_model = model(3, 2, 1, 1, meta={})
    reqs = {
        "refine_json": b"POST /refine\nmodel=m\ntsm=both\n\nContent-Type: application/json\n"
                       b"Accept: application/json\n\n" + body,
        "refine_npy_npz": b"POST /refine\nversion=1\n\nContent-Type: application/x-npy\n"
                          b"Accept: application/x-npz\n\n" + npy(x),
        "refine_npy_npy": b"POST /refine\n\nContent-Type: application/x-npy\n\n" + npy(x),
        "tsm_png": b"POST /tsm\ntsm=both\n\nContent-Type: application/json\n"
                   b"Accept: image/png\n\n" + body,
        "tsm_npy_q": b"POST /tsm\nformat=npy\ntsm=raw\n\nContent-Type: application/json\n\n" + body,
        "tsm_get": b"GET /tsm\ndataset=d\nitem=i\nformat=json\n\n\n",
        "tsm_get_png": b"GET /tsm\ndataset=d\nitem=i\ntsm=refined\n\nAccept: image/png;q=0.9, */*;q=0.1\n\n",
        "models": b"GET /models\n\n\n",
        "model_m": b"GET /models/m\n\n\n",
        "download": b"GET /models/m/versions/1\n\n\n",
        "upload": b"PUT /models/n/versions/2\n\nAuthorization: Bearer secret\n"
                  b"Content-Type: application/octet-stream\n\n" + small_model,
        "upload_conflict": b"PUT /models/m/versions/1\n\nAuthorization: Bearer secret\n\n" + small_model,
        "upload_noauth": b"PUT /models/m/versions/3\n\n\n" + small_model,
        "activate_json": b"POST /models/m/activate\n\nAuthorization: bearer  secret \n"
                         b"Content-Type: application/json\n\n{\"version\": 1}",
        "activate_query": b"POST /models/m/activate\nversion=1\n\nAuthorization: Bearer secret\n\n",
        "ops": b"GET /healthz\n\n\n",
        "readyz": b"GET /readyz\n\n\n",
        "livez": b"GET /livez\n\n\n",
        "metrics": b"GET /metrics\n\n\n",
        "openapi": b"GET /openapi.json\n\n\n",
        "head": b"HEAD /models/m\n\n\n",
        "not_allowed": b"DELETE /refine\n\n\n",
        "not_found": b"GET /models/m/versions/1/x\n\n\n",
    }
    train = b'{"dataset": "d", "objective": "sola", "epochs": 2, "batch": 8, "lr": 0.001, ' \
            b'"seed": 3, "window": 23, "positions": 8, "start": 4, "step": 2, "head": 16, ' \
            b'"K": 16.0, "hidden": 8, "kernel": 3, "kernel2": 1, "checkpoint_every": 1, ' \
            b'"activate": true, "output_model": "m2"}'
    reqs.update({
        "train": b"POST /train\n\nAuthorization: Bearer secret\nContent-Type: application/json\n\n"
                 + train,
        "train_base": b"POST /train\n\nAuthorization: Bearer secret\nContent-Type: application/json"
                      b"\n\n{\"dataset\": \"d\", \"base_model\": \"m\", \"base_version\": 1}",
        "train_busy": b"POST /train\n\nAuthorization: Bearer secret\nContent-Type: application/json"
                      b"\n\n{\"dataset\": \"busy\"}",
        "jobs": b"GET /jobs\n\n\n",
        "job": b"GET /jobs/1\n\n\n",
        "job_cancel": b"DELETE /jobs/1\n\nAuthorization: Bearer secret\n\n",
        "job_resume": b"POST /jobs/1/resume\n\nAuthorization: Bearer secret\n\n",
        "job_events": b"GET /jobs/1/events\n\n\n",
        "datasets": b"GET /datasets\n\n\n",
        "dataset": b"GET /datasets/d\n\n\n",
        "put_item": b"PUT /datasets/d/items/j\n\nAuthorization: Bearer secret\n"
                    b"Content-Type: application/x-npy\n\n" + npy(np.ones((5, 4), "<f4")),
        "put_item_bad_c": b"PUT /datasets/d/items/k\n\nAuthorization: Bearer secret\n\n"
                          + npy(np.ones((5, 3), "<f4")),
        "put_npz": b"PUT /datasets/e\n\nAuthorization: Bearer secret\n"
                   b"Content-Type: application/x-npz\n\n"
                   + npz([("a", np.ones((4, 2), "<f4")), ("b", np.zeros((3, 2), "<f8"))], True),
        "delete_item": b"DELETE /datasets/d/items/i\n\nAuthorization: Bearer secret\n\n",
        "delete_dataset": b"DELETE /datasets/d\n\nAuthorization: Bearer secret\n\n",
    })
    for k, v in reqs.items():
        put("api_request", k, v)
    put("api_train", "full", train)
    put("api_train", "minimal", b'{"dataset": "d"}')
    put("api_train", "base", b'{"dataset": "d", "base_model": "m", "base_version": 2, '
                             b'"output_model": null, "objective": "sola", "seed": 9007199254740992}')
    put("api_train", "bad_kernel", b'{"dataset": "d", "kernel": 4}')
    put("api_train", "bad_unknown", b'{"dataset": "d", "epoch": 4}')
    put("api_train", "cycle", b'{"dataset": "d", "objective": "cycle"}')


if __name__ == "__main__":
    main()
