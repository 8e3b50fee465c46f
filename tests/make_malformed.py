#!/usr/bin/python3
"""Writes the format fixtures of the test suite (run by hand; outputs are committed).

  tests/data/formats/    files written by numpy itself (np.save with each dtype, order
                         and version; np.savez / np.savez_compressed / a streamed savez
                         with data descriptors; a ZIP64-directory npz) and safetensors
                         files laid out byte for byte as the safetensors package does,
                         plus expected.json: shapes and float32 values of each.
  tests/data/malformed/  one small file per way a file can be wrong, named for it, and
                         EXPECTED.txt: file, parser, error code, message substring.

Run with /usr/bin/python3 (it has numpy):  /usr/bin/python3 tests/make_malformed.py
"""
import io
import json
import os
import struct
import time
import zipfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FMT = os.path.join(HERE, "data", "formats")
BAD = os.path.join(HERE, "data", "malformed")

expected = {}  # formats/expected.json
manifest = []  # malformed/EXPECTED.txt rows


def fvals(a):
    """float32 values as JSON: numbers, or "inf"/"-inf"/"nan" strings."""
    out = []
    for v in np.asarray(a, dtype=np.float32).ravel(order="C").tolist():
        if v != v:
            out.append("nan")
        elif v in (float("inf"), float("-inf")):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def put(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def npy_bytes(a, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a, allow_pickle=True)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def npy_raw(header, data=b"", version=(1, 0), hlen=None):
    """A .npy image with a hand-written header dict (padded the way numpy does)."""
    h = header.encode("latin1")
    pre = 10 if version[0] == 1 else 12
    total = (pre + len(h) + 1 + 63) // 64 * 64
    h = h + b" " * (total - pre - len(h) - 1) + b"\n"
    n = len(h) if hlen is None else hlen
    lenfield = struct.pack("<H", n) if version[0] == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes(version) + lenfield + h + data


def bad(name, parser, code, substring, data):
    put(BAD, name, data)
    manifest.append((name, parser, code, substring))


# ---------------------------------------------------------------- .npy fixtures
def npy_fixtures():
    base = (np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 2.25)
    half_specials = np.array([1.0, -2.5, 65504.0, 5.960464477539063e-08, 6.103515625e-05,
                              np.inf, -np.inf, 0.333], dtype=np.float16)
    f64 = np.array([[1 / 3, -1e-40, 1e39], [2.5, -0.0, 123456789.123]], dtype=np.float64)
    btc = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7.0
    cases = {
        "f4_le_c.npy": (base.astype("<f4"), None),
        "f4_be_c.npy": (base.astype(">f4"), None),
        "f4_le_fortran.npy": (np.asfortranarray(base.astype("<f4")), None),
        "f8_be_fortran_3d.npy": (np.asfortranarray(btc.astype(">f8")), None),
        "f2_le.npy": (half_specials.astype("<f2"), None),
        "f2_be.npy": (half_specials.reshape(2, 4).astype(">f2"), None),
        "f8_le.npy": (f64.astype("<f8"), None),
        "f4_v2_btc.npy": (btc, (2, 0)),
        "f4_v3.npy": (base, (3, 0)),
        "f4_1d.npy": (np.array([1, 2, 3, 4, 5], dtype=np.float32), None),
        "f4_4d.npy": (np.arange(6, dtype=np.float32).reshape(1, 2, 1, 3), None),
        "f4_empty.npy": (np.zeros((0, 4), dtype=np.float32), None),
    }
    for name, (a, ver) in cases.items():
        put(FMT, name, npy_bytes(a, ver))
        expected[name] = {"shape": list(a.shape), "values": fvals(a.astype(np.float32))}
    # '=' and '|' byte-order marks (numpy reads both as native; it never writes them)
    for name, descr in (("f4_eq_byteorder.npy", "=f4"), ("f4_pipe_byteorder.npy", "|f4")):
        hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (3, 4), }" % descr
        data = npy_raw(hdr, base.astype("<f4").tobytes())
        assert np.array_equal(np.load(io.BytesIO(data)), base)
        put(FMT, name, data)
        expected[name] = {"shape": [3, 4], "values": fvals(base)}
    # Python-2 era headers: long literals and double-quoted keys
    hdr = '{"descr": "<f4", "fortran_order": False, "shape": (3L, 4L)}'
    put(FMT, "f4_py2_header.npy", npy_raw(hdr, base.astype("<f4").tobytes()))
    expected["f4_py2_header.npy"] = {"shape": [3, 4], "values": fvals(base)}
    # labels (read with SOLA_NPY_LABELS only)
    labels = {
        "labels_i8.npy": np.array([0, 1, 1, 0, 2, -1], dtype="<i8"),
        "labels_u1.npy": np.array([0, 1, 255, 0], dtype="u1"),
        "labels_bool.npy": np.array([False, True, True, False, True]),
        "labels_i2_be.npy": np.array([[0, -300], [7, 1]], dtype=">i2"),
    }
    for name, a in labels.items():
        put(FMT, name, npy_bytes(a))
        expected[name] = {"shape": list(a.shape), "values": fvals(a.astype(np.float32)),
                          "labels": True}


# ---------------------------------------------------------------- .npz fixtures
class Unseekable:
    """A write-only stream: zipfile then writes data descriptors (flag bit 3)."""

    def __init__(self):
        self.buf = io.BytesIO()

    def write(self, b):
        return self.buf.write(b)

    def flush(self):
        pass

    def read(self, *args):  # numpy only checks that it exists
        raise io.UnsupportedOperation("write-only")


def zip_layout(data):
    """(eocd offset, [central entries: dict with 'at' offset and fields])."""
    eocd = data.rfind(b"PK\x05\x06")
    n, cd_size, cd_off = struct.unpack_from("<HII", data, eocd + 10)
    entries, p = [], cd_off
    for _ in range(n):
        f = struct.unpack_from("<IHHHHHHIIIHHHHHII", data, p)
        nlen, xlen, clen = f[10], f[11], f[12]
        entries.append({"at": p, "flags": f[3], "method": f[4], "crc": f[7], "csize": f[8],
                        "usize": f[9], "nlen": nlen, "xlen": xlen, "loff": f[16],
                        "name": data[p + 46:p + 46 + nlen]})
        p += 46 + nlen + xlen + clen
    return eocd, entries


def local_data_off(data, loff):
    nlen, xlen = struct.unpack_from("<HH", data, loff + 26)
    return loff + 30 + nlen + xlen


def zip_build(members, comment=b""):
    """Hand-built zip: members are dicts name, data (as stored), method, crc, usize,
    optional flags, loff (override), local (bytes to use instead of a header+data)."""
    out, cds = bytearray(), []
    for m in members:
        loff = len(out)
        flags = m.get("flags", 0)
        if m.get("local") is not None:
            out += m["local"]
        else:
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, m["method"], 0, 0x21,
                               m["crc"], len(m["data"]), m["usize"], len(m["name"]), 0)
            out += m["name"] + m["data"]
        cds.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, m["method"], 0,
                               0x21, m["crc"], m.get("csize", len(m["data"])), m["usize"],
                               len(m["name"]), 0, 0, 0, 0, 0, m.get("loff", loff))
                   + m["name"])
    cd_off = len(out)
    for c in cds:
        out += c
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(cds), len(cds), len(out) - cd_off,
                       cd_off, len(comment)) + comment
    return bytes(out)


def stored(name, payload):
    return {"name": name, "data": payload, "method": 0, "crc": zlib.crc32(payload),
            "usize": len(payload)}


def npz_fixtures():
    feats = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 3
    other = np.array([1.5, -2.0], dtype=np.float64)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.125
    b = io.BytesIO()
    np.savez(b, feats=feats, other=other)
    put(FMT, "savez.npz", b.getvalue())
    expected["savez.npz"] = {"pick": "feats", "members": {
        "feats": {"shape": [3, 4], "values": fvals(feats)},
        "other": {"shape": [2], "values": fvals(other)}}}
    b = io.BytesIO()
    np.savez_compressed(b, x=x)
    put(FMT, "savez_compressed.npz", b.getvalue())
    expected["savez_compressed.npz"] = {"pick": "x", "members": {
        "x": {"shape": [2, 3, 4], "values": fvals(x)}}}
    # data descriptors: numpy writing to an unseekable stream
    s = Unseekable()
    lab = np.array([True, False, True])
    np.savez_compressed(s, feats=feats.astype(np.float16), labels=lab)
    data = s.buf.getvalue()
    _, ents = zip_layout(data)
    assert all(e["flags"] & 8 for e in ents), "expected data descriptors"
    put(FMT, "savez_stream.npz", data)
    expected["savez_stream.npz"] = {"pick": "feats", "members": {
        "feats": {"shape": [3, 4], "values": fvals(feats.astype(np.float16))},
        "labels": {"shape": [3], "values": fvals(lab), "labels": True}}}
    # ZIP64 central directory as zipfile writes it for members past 2 GiB: saturated
    # 32-bit fields, values in the ZIP64 extra field, ZIP64 end record + locator.
    b = io.BytesIO()
    np.savez(b, feats=feats)
    data = b.getvalue()
    eocd, ents = zip_layout(data)
    e = ents[0]
    cd_off = e["at"]
    body = data[:cd_off]
    extra = struct.pack("<HHQQQ", 1, 24, e["usize"], e["csize"], e["loff"])
    cd = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, e["flags"], e["method"], 0, 0x21,
                     e["crc"], 0xFFFFFFFF, 0xFFFFFFFF, e["nlen"], len(extra), 0, 0, 0, 0,
                     0xFFFFFFFF) + e["name"] + extra
    z64 = len(body) + len(cd)
    rec = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(cd), cd_off)
    loc = struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    data = body + cd + rec + loc + end
    assert np.array_equal(np.load(io.BytesIO(data))["feats"], feats)
    put(FMT, "zip64_directory.npz", data)
    expected["zip64_directory.npz"] = {"pick": "feats", "members": {
        "feats": {"shape": [3, 4], "values": fvals(feats)}}}


# ---------------------------------------------------------------- safetensors
# Order of the Rust Dtype enum; the package sorts tensors by dtype (descending), then name.
ST_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
            "F32", "F64", "I64", "U64"]


def st_bytes(tensors, metadata=None):
    """tensors: {name: (dtype, shape, raw bytes)}; laid out as safetensors.serialize."""
    items = sorted(tensors.items(), key=lambda kv: (-ST_ORDER.index(kv[1][0]), kv[0]))
    header, off, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dt, shape, raw) in items:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_raw(header_text, data=b"", hlen=None):
    h = header_text.encode() if isinstance(header_text, str) else header_text
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def bf16(a):
    u = np.asarray(a, dtype=np.float32).view(np.uint32) >> 16
    return u.astype("<u2")


def st_fixtures():
    w = (np.arange(6, dtype=np.float32).reshape(2, 3, 1) - 2.5) * 0.1
    h16 = np.array([1.0, -0.5, 65504.0, 5.960464477539063e-08], dtype="<f2")
    b16 = bf16([[1.0, -3.140625], [1e30, -1e-30]])
    d64 = np.array([1 / 3, -1e39, 2.0], dtype="<f8")
    i64 = np.array([7, -1], dtype="<i8")
    scalar = np.array(0.75, dtype="<f4")
    tensors = {
        "conv_network.0.weight": ("F32", w.shape, w.astype("<f4").tobytes()),
        "a_f16": ("F16", h16.shape, h16.tobytes()),
        "b_bf16": ("BF16", b16.shape, b16.tobytes()),
        "c_f64": ("F64", d64.shape, d64.tobytes()),
        "d_i64": ("I64", i64.shape, i64.tobytes()),
        "e_scalar": ("F32", (), scalar.tobytes()),
        "z_empty": ("F32", (0, 3), b""),
    }
    meta = {"format": "sola", "note": "fixture"}
    put(FMT, "model.safetensors", st_bytes(tensors, meta))
    b16f = (b16.astype(np.uint32) << 16).view(np.float32)
    expected["model.safetensors"] = {"metadata": meta, "tensors": {
        "conv_network.0.weight": {"dtype": "F32", "shape": [2, 3, 1], "values": fvals(w)},
        "a_f16": {"dtype": "F16", "shape": [4], "values": fvals(h16)},
        "b_bf16": {"dtype": "BF16", "shape": [2, 2], "values": fvals(b16f)},
        "c_f64": {"dtype": "F64", "shape": [3], "values": fvals(d64)},
        "d_i64": {"dtype": "I64", "shape": [2]},
        "e_scalar": {"dtype": "F32", "shape": [], "values": [0.75]},
        "z_empty": {"dtype": "F32", "shape": [0, 3], "values": []},
    }}
    one = np.array([[1, 2], [3, 4]], dtype="<f4")
    put(FMT, "nometa.safetensors", st_bytes({"x": ("F32", one.shape, one.tobytes())}))
    expected["nometa.safetensors"] = {"metadata": {}, "tensors": {
        "x": {"dtype": "F32", "shape": [2, 2], "values": fvals(one)}}}


# ---------------------------------------------------------------- malformed
def npy_malformed():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    good = npy_bytes(base)
    raw = base.tobytes()
    F = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
    bad("npy_empty_file.npy", "npy", "EFORMAT", "empty file", b"")
    bad("npy_bad_magic.npy", "npy", "EFORMAT", "bad magic", b"\x93NUMPX" + good[6:])
    bad("npy_version_9.npy", "npy", "EUNSUP", "version 9.0", npy_raw(F, raw, version=(9, 0)))
    bad("npy_version_1_5.npy", "npy", "EUNSUP", "version 1.5", npy_raw(F, raw, version=(1, 5)))
    bad("npy_header_too_long.npy", "npy", "ETOOBIG", "exceeds the limit",
        npy_raw(F, raw, version=(2, 0), hlen=1 << 20))
    bad("npy_header_past_end.npy", "npy", "EFORMAT", "runs past the end",
        npy_raw(F, b"", hlen=500)[:100])
    bad("npy_truncated_prefix.npy", "npy", "EFORMAT", "truncated .npy header", good[:8])
    bad("npy_not_dict.npy", "npy", "EFORMAT", "not a Python dict", npy_raw("[1, 2]", raw))
    bad("npy_missing_shape.npy", "npy", "EFORMAT", "lacks the key 'shape'",
        npy_raw("{'descr': '<f4', 'fortran_order': False, }", raw))
    bad("npy_extra_key.npy", "npy", "EFORMAT", "unexpected or repeated key 'foo'",
        npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'foo': 1}", raw))
    bad("npy_duplicate_key.npy", "npy", "EFORMAT", "unexpected or repeated key 'descr'",
        npy_raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}", raw))
    bad("npy_unterminated_string.npy", "npy", "EFORMAT", "'descr' must be a dtype string",
        npy_raw("{'descr': '<f4", raw))
    bad("npy_garbage_after_dict.npy", "npy", "EFORMAT", "after the dict", npy_raw(F + " xyz", raw))
    bad("npy_unclosed_dict.npy", "npy", "EFORMAT", "expected ',' or '}'",
        npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4) ", raw))
    bad("npy_fortran_not_bool.npy", "npy", "EFORMAT", "must be True or False",
        npy_raw("{'descr': '<f4', 'fortran_order': 1, 'shape': (3, 4)}", raw))
    bad("npy_shape_not_tuple.npy", "npy", "EFORMAT", "must be a tuple",
        npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4]}", raw))
    bad("npy_nul_in_header.npy", "npy", "EFORMAT", "a control byte",
        npy_raw("{'descr': '<f4', 'fortran_order': False, \0'shape': (3, 4)}", raw))
    bad("npy_object_array.npy", "npy", "EUNSUP", "object arrays",
        npy_bytes(np.array([1, "a", None], dtype=object)))
    bad("npy_structured.npy", "npy", "EUNSUP", "structured dtypes",
        npy_bytes(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])))
    bad("npy_complex.npy", "npy", "EUNSUP", "'<c8' is not supported",
        npy_bytes(np.zeros(3, dtype="<c8")))
    bad("npy_unicode.npy", "npy", "EUNSUP", "'<U3' is not supported",
        npy_bytes(np.array(["abc", "de"])))
    bad("npy_descr_name.npy", "npy", "EUNSUP", "'float32' is not supported",
        npy_raw("{'descr': 'float32', 'fortran_order': False, 'shape': (3, 4)}", raw))
    bad("npy_f3.npy", "npy", "EUNSUP", "'<f3' is not supported",
        npy_raw("{'descr': '<f3', 'fortran_order': False, 'shape': (3, 4)}", raw))
    bad("npy_int_features.npy", "npy", "EUNSUP", "features must be float",
        npy_bytes(np.arange(6, dtype="<i8").reshape(2, 3)))
    bad("npy_negative_shape.npy", "npy", "EFORMAT", "negative dimension",
        npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4)}", raw))
    bad("npy_shape_product_overflow.npy", "npy", "EFORMAT", "overflows",
        npy_raw("{'descr': '<f4', 'fortran_order': False, "
                "'shape': (4294967296, 4294967296, 4)}", raw))
    bad("npy_dim_overflow.npy", "npy", "EFORMAT", "dimension overflows",
        npy_raw("{'descr': '<f4', 'fortran_order': False, "
                "'shape': (99999999999999999999999,)}", raw))
    bad("npy_truncated_data.npy", "npy", "EFORMAT", "truncated", good[:-5])
    bad("npy_trailing_bytes.npy", "npy", "EFORMAT", "4 trailing", good + b"\0\0\0\0")
    bad("npy_5d.npy", "npy", "ESHAPE", "more than 4 dimensions",
        npy_bytes(np.zeros((1, 1, 1, 1, 2), dtype="<f4")))
    bad("npy_scalar.npy", "npy", "ESHAPE", "0-dimensional", npy_bytes(np.float32(1.5)))


def npz_malformed():
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = io.BytesIO()
    np.savez(b, feats=feats)
    good = b.getvalue()
    eocd, ents = zip_layout(good)
    e0 = ents[0]
    d0 = local_data_off(good, e0["loff"])
    b = io.BytesIO()
    np.savez_compressed(b, feats=feats)
    goodz = b.getvalue()
    eocdz, entsz = zip_layout(goodz)
    ez = entsz[0]
    npy = npy_bytes(feats)

    def patch(data, off, fmt, *vals):
        d = bytearray(data)
        struct.pack_into(fmt, d, off, *vals)
        return bytes(d)

    bad("npz_empty_file.npz", "npz", "EFORMAT", "too short", b"")
    bad("npz_not_zip.npz", "npz", "EFORMAT", "no end-of-central-directory", npy * 2)
    bad("npz_truncated_half.npz", "npz", "EFORMAT", "no end-of-central-directory",
        good[:len(good) // 2])
    bad("npz_truncated_tail.npz", "npz", "EFORMAT", "no end-of-central-directory", good[:-7])
    d = bytearray(good)
    d[d0 + len(npy) - 1] ^= 0x40  # a data byte: the .npy still parses, the CRC does not match
    bad("npz_bad_crc.npz", "npz", "EFORMAT", "CRC-32 mismatch", bytes(d))
    bad("npz_bad_crc_field.npz", "npz", "EFORMAT", "CRC-32 mismatch",
        patch(good, e0["at"] + 16, "<I", e0["crc"] ^ 1))
    d = patch(good, e0["at"] + 8, "<H", e0["flags"] | 1)
    bad("npz_encrypted.npz", "npz", "EUNSUP", "encrypted", patch(d, e0["loff"] + 6, "<H", 1))
    for name, comp, meth in (("npz_bzip2.npz", zipfile.ZIP_BZIP2, "method 12 (bzip2)"),
                             ("npz_lzma.npz", zipfile.ZIP_LZMA, "method 14 (lzma)")):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", compression=comp) as zf:
            zf.writestr("feats.npy", npy)
        bad(name, "npz", "EUNSUP", meth, b.getvalue())
    bad("npz_duplicate_names.npz", "npz", "EFORMAT", "'feats' appears twice",
        zip_build([stored(b"feats.npy", npy), stored(b"feats.npy", npy)]))
    # member B's local header sits inside member A's data: overlapping entries
    inner = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(npy), len(npy),
                        len(npy), 5, 0) + b"b.npy" + npy
    a = stored(b"a.npy", inner)
    bm = stored(b"b.npy", npy)
    bm["loff"] = 30 + 5
    bm["local"] = b""
    bad("npz_overlap.npz", "npz", "EFORMAT", "overlap", zip_build([a, bm]))
    bad("npz_cd_out_of_bounds.npz", "npz", "EFORMAT", "lies outside the archive",
        patch(good, eocd + 16, "<I", 0x7FFFFFF0))
    bad("npz_local_out_of_bounds.npz", "npz", "EFORMAT", "local header at offset",
        patch(good, e0["at"] + 42, "<I", 0x7FFFFFF0))
    d = patch(good, e0["at"] + 46 + 2, "<B", 0)
    bad("npz_name_nul.npz", "npz", "EFORMAT", "NUL byte", patch(d, e0["loff"] + 30 + 2, "<B", 0))
    bad("npz_local_name_mismatch.npz", "npz", "EFORMAT", "does not match",
        patch(good, e0["loff"] + 30, "<B", ord("g")))
    bad("npz_member_truncated_npy.npz", "npz", "EFORMAT", "member 'feats': truncated",
        zip_build([stored(b"feats.npy", npy[:-8])]))
    bad("npz_member_not_npy.npz", "npz", "EFORMAT", "member 'feats': not a .npy",
        zip_build([stored(b"feats.npy", b"hello world, not an array")]))
    dz = local_data_off(goodz, ez["loff"])
    bad("npz_corrupt_deflate.npz", "npz", "EFORMAT", "corrupt deflate data",
        patch(goodz, dz, "<B", 0xFF))
    bad("npz_size_larger_than_stream.npz", "npz", "EFORMAT", "but %d were declared"
        % (ez["usize"] + 100), patch(goodz, ez["at"] + 24, "<I", ez["usize"] + 100))
    bad("npz_size_smaller_than_stream.npz", "npz", "EFORMAT", "more than the declared",
        patch(goodz, ez["at"] + 24, "<I", ez["usize"] - 100))
    bad("npz_deflate_bomb_size.npz", "npz", "EFORMAT", "beyond what deflate can produce",
        patch(goodz, ez["at"] + 24, "<I", 0xF0000000))
    bad("npz_deflate_truncated.npz", "npz", "EFORMAT", "ends early",
        zip_build([{"name": b"feats.npy", "data": zlib.compress(npy)[2:-4][:30], "method": 8,
                    "crc": zlib.crc32(npy), "usize": len(npy)}]))
    bad("npz_stored_size_mismatch.npz", "npz", "EFORMAT", "compressed but",
        patch(good, e0["at"] + 24, "<I", e0["usize"] + 1))
    bad("npz_member_past_directory.npz", "npz", "EFORMAT", "runs past the end of its data area",
        zip_build([dict(stored(b"feats.npy", npy), csize=len(npy) + 200, usize=len(npy) + 200)]))
    b = io.BytesIO()
    np.savez(b, a=feats, b=feats)
    bad("npz_multi_no_feats.npz", "npz", "EFORMAT", "none named 'feats'", b.getvalue())
    bad("npz_empty_archive.npz", "npz", "EFORMAT", "archive is empty", zip_build([]))
    bad("npz_zip64_locator_missing.npz", "npz", "EFORMAT", "ZIP64 locator is missing",
        patch(good, eocd + 8, "<HH", 0xFFFF, 0xFFFF))
    bad("npz_too_many_entries.npz", "npz", "EFORMAT", "claims 1000 entries",
        patch(good, eocd + 8, "<HH", 1000, 1000))
    bad("npz_multidisk.npz", "npz", "EUNSUP", "multi-disk", patch(good, eocd + 4, "<H", 1))
    bad("npz_cd_entry_corrupt.npz", "npz", "EFORMAT", "central directory entry 0 is corrupt",
        patch(good, e0["at"], "<I", 0x01020304))


def st_malformed():
    one = np.array([1, 2, 3, 4], dtype="<f4").tobytes()

    def hdr(d):
        return json.dumps(d, separators=(",", ":"))

    ok = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    bad("st_empty_file.safetensors", "st", "EFORMAT", "shorter than the 8-byte", b"")
    bad("st_short.safetensors", "st", "EFORMAT", "shorter than the 8-byte", b"\x10\0\0\0\0")
    bad("st_header_too_big.safetensors", "st", "ETOOBIG", "exceeds the limit",
        st_raw(hdr({"a": ok}), one, hlen=200 << 20))
    bad("st_header_past_end.safetensors", "st", "EFORMAT", "runs past the end",
        st_raw(hdr({"a": ok}), one, hlen=1000))
    bad("st_not_json.safetensors", "st", "EFORMAT", "not valid JSON", st_raw("{not json}", one))
    bad("st_trailing_garbage.safetensors", "st", "EFORMAT", "not valid JSON",
        st_raw(hdr({"a": ok}) + " xyz", one))
    bad("st_nul_in_header.safetensors", "st", "EFORMAT", "not valid JSON",
        st_raw(b'{"a":\0' + hdr(ok).encode() + b"}", one))
    bad("st_not_object.safetensors", "st", "EFORMAT", "not a JSON object", st_raw("[1,2,3]", one))
    bad("st_entry_not_object.safetensors", "st", "EFORMAT", "entry must be an object",
        st_raw(hdr({"a": 5}), one))
    bad("st_missing_dtype.safetensors", "st", "EFORMAT", "non-string \"dtype\"",
        st_raw(hdr({"a": {"shape": [4], "data_offsets": [0, 16]}}), one))
    bad("st_missing_shape.safetensors", "st", "EFORMAT", "non-array \"shape\"",
        st_raw(hdr({"a": {"dtype": "F32", "data_offsets": [0, 16]}}), one))
    bad("st_negative_shape.safetensors", "st", "EFORMAT", "non-negative integers",
        st_raw(hdr({"a": dict(ok, shape=[-4])}), one))
    bad("st_float_shape.safetensors", "st", "EFORMAT", "non-negative integers",
        st_raw(hdr({"a": dict(ok, shape=[4.0])}), one))
    bad("st_missing_offsets.safetensors", "st", "EFORMAT", "\"data_offsets\" must be",
        st_raw(hdr({"a": {"dtype": "F32", "shape": [4]}}), one))
    bad("st_three_offsets.safetensors", "st", "EFORMAT", "\"data_offsets\" must be",
        st_raw(hdr({"a": dict(ok, data_offsets=[0, 8, 16])}), one))
    bad("st_unknown_dtype.safetensors", "st", "EUNSUP", "unknown dtype \"F7\"",
        st_raw(hdr({"a": dict(ok, dtype="F7")}), one))
    bad("st_offsets_reversed.safetensors", "st", "EFORMAT", "end before they begin",
        st_raw(hdr({"a": dict(ok, data_offsets=[16, 0])}), one))
    bad("st_offsets_past_end.safetensors", "st", "EFORMAT", "run past the 16 bytes of data",
        st_raw(hdr({"a": dict(ok, data_offsets=[8, 24])}), one))
    bad("st_size_mismatch.safetensors", "st", "EFORMAT", "need 12",
        st_raw(hdr({"a": dict(ok, shape=[3])}), one))
    bad("st_overlap.safetensors", "st", "EFORMAT", "overlap",
        st_raw(hdr({"a": dict(ok, shape=[2], data_offsets=[0, 8]),
                    "b": dict(ok, shape=[2], data_offsets=[4, 12])}), one))
    bad("st_shape_overflow.safetensors", "st", "EFORMAT", "shape overflows",
        st_raw(hdr({"a": dict(ok, shape=[1 << 40, 1 << 40])}), one))
    bad("st_too_many_dims.safetensors", "st", "EUNSUP", "9 dimensions",
        st_raw(hdr({"a": dict(ok, shape=[1] * 8 + [4])}), one))
    bad("st_metadata_not_object.safetensors", "st", "EFORMAT", "must be an object of strings",
        st_raw(hdr({"__metadata__": "sola", "a": ok}), one))
    bad("st_metadata_value_number.safetensors", "st", "EFORMAT", "\"format\" must be a string",
        st_raw(hdr({"__metadata__": {"format": 1}, "a": ok}), one))
    bad("st_duplicate_key.safetensors", "st", "EFORMAT", "duplicate",
        st_raw('{"a":' + hdr(ok) + ',"a":' + hdr(ok) + "}", one))


def main():
    # zipfile stamps members with the current time; a fixed clock keeps the committed
    # fixtures byte-identical when the script is rerun.
    time.time = lambda: 1700000000.0
    np.seterr(over="ignore")  # 1e39 -> inf in float32 is intended
    os.makedirs(FMT, exist_ok=True)
    os.makedirs(BAD, exist_ok=True)
    npy_fixtures()
    npz_fixtures()
    st_fixtures()
    with open(os.path.join(FMT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    npy_malformed()
    npz_malformed()
    st_malformed()
    with open(os.path.join(BAD, "EXPECTED.txt"), "w") as f:
        f.write("# file\tparser\tcode\tmessage substring (written by tests/make_malformed.py)\n")
        for row in manifest:
            f.write("\t".join(row) + "\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d in (FMT, BAD) for n in os.listdir(d))
    print("wrote %d format files, %d malformed files, %d bytes" %
          (len(os.listdir(FMT)), len(manifest), total))


if __name__ == "__main__":
    main()
