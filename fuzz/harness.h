/* harness.h -- the bodies of the fuzz harnesses, shared by the libFuzzer entry points
 * (fuzz/fuzz_*.c, built by fuzz/CMakeLists.txt with clang) and by the corpus replay test
 * (tests/unit/test_fuzz_replay.c, built by CMake with gcc, run under ASan+UBSan in CI).
 *
 * Each fuzz_one_X(data, size) feeds one input to a parser and checks what the parser
 * promises beyond "does not crash":
 *   - a refusal returns a negative SOLA_E* code equal to e.code, with a non-empty
 *     message that names the input (FUZZ_NAME), as err.h requires;
 *   - the entry points that share a header parser agree (npy parse/peek/inspect);
 *   - whatever is accepted survives our own writer: encode it, parse it back, and the
 *     numbers are bit for bit the same (a reader and writer that disagree corrupt
 *     data silently, which no crash detector would see);
 *   - an accepted model can run a short refine;
 *   - the dataset store either refuses an upload leaving the store as it was, or
 *     stores exactly what the archive holds.
 * Returns 0 (accepted), 1 (refused cleanly) or -1 when an invariant broke; then
 * fuzz_why says which. The parser always gets an exactly sized heap copy, so ASan
 * sees a read one byte past the end.
 *
 * Everything is static: each translation unit that includes this gets its own copy,
 * and the functions it does not call are unused (hence the attribute). */
#ifndef SOLA_FUZZ_HARNESS_H
#define SOLA_FUZZ_HARNESS_H

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ftw.h>
#include <zlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsstore.h"
#include "fsutil.h"
#include "model.h"
#include "npy.h"
#include "npz.h"
#include "refine.h"
#include "safetensors.h"

#define FUZZ_NAME "fuzz-input"
#define FUZZ_UNUSED __attribute__((unused))

/* What broke, for the caller to print (libFuzzer entry: then abort). */
static char fuzz_why[1024];

FUZZ_UNUSED static int fuzz_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FUZZ_UNUSED static int fuzz_violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fuzz_why, sizeof fuzz_why, fmt, ap);
    va_end(ap);
    return -1;
}

/* A refusal must carry a known code, the same code in e, and a message naming the
 * input. Returns 1 (clean refusal) or -1. */
FUZZ_UNUSED static int fuzz_refused(const char *what, int rc, const sola_err *e)
{
    if (rc >= 0 || rc < SOLA_ENOSPC)
        return fuzz_violation("%s returned %d, not a SOLA_E* code", what, rc);
    if (e->code != rc)
        return fuzz_violation("%s returned %d but set e.code %d (message: %s)", what, rc, e->code,
                              e->msg);
    if (e->msg[0] == 0)
        return fuzz_violation("%s failed (%d) with an empty message", what, rc);
    if (!strstr(e->msg, FUZZ_NAME))
        return fuzz_violation("%s failed with a message that does not name the input: %s", what,
                              e->msg);
    return 1;
}

FUZZ_UNUSED static unsigned char *fuzz_copy(const uint8_t *data, size_t size)
{
    unsigned char *b = malloc(size ? size : 1);
    if (b && size)
        memcpy(b, data, size);
    return b;
}

/* Reads every float so that ASan/MSan see uninitialised or out-of-bounds data. */
FUZZ_UNUSED static void fuzz_touch(const float *p, size_t n)
{
    volatile float sink = 0;
    for (size_t i = 0; i < n; i++)
        sink += p[i];
    (void)sink;
}

FUZZ_UNUSED static int fuzz_same_array(const sola_array *a, const sola_array *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    size_t n = sola_array_numel(a);
    return n == 0 || memcmp(a->data, b->data, n * sizeof(float)) == 0;
}

/* Encodes an accepted array with our writer and parses it back: must be identical. */
FUZZ_UNUSED static int fuzz_npy_roundtrip(const sola_array *a)
{
    void *enc = NULL;
    size_t elen = 0;
    sola_err e = {0};
    int rc = sola_npy_encode(a->data, a->ndim, a->shape, &enc, &elen, &e);
    if (rc)
        return fuzz_violation("npy: an accepted array (ndim %d) cannot be re-encoded: %s",
                              a->ndim, e.msg);
    sola_array b;
    rc = sola_npy_parse(enc, elen, FUZZ_NAME, 0, &b, &e);
    free(enc);
    if (rc)
        return fuzz_violation("npy: our own encoding of an accepted array is refused: %s",
                              e.msg);
    int same = fuzz_same_array(a, &b);
    sola_array_free(&b);
    return same ? 0 : fuzz_violation("npy: encode+parse changed the array");
}

/* ---- .npy ---------------------------------------------------------------- */

FUZZ_UNUSED static int fuzz_one_npy(const uint8_t *data, size_t size)
{
    unsigned char *buf = fuzz_copy(data, size);
    if (!buf)
        return 0;
    int res = 0;
    sola_err e0 = {0}, el = {0}, ei = {0}, ep = {0};
    sola_array a0 = {0}, al = {0}, ps = {0};
    sola_npy_info info;
    size_t off = 0, dlen = 0;
    int r0 = sola_npy_parse(buf, size, FUZZ_NAME, 0, &a0, &e0);
    int rl = sola_npy_parse(buf, size, FUZZ_NAME, SOLA_NPY_LABELS, &al, &el);
    int ri = sola_npy_inspect(buf, size, FUZZ_NAME, SOLA_NPY_LABELS, &info, &ei);
    int rp = sola_npy_peek(buf, size, FUZZ_NAME, &ps, &off, &dlen, &ep);

    if (r0 && (res = fuzz_refused("sola_npy_parse", r0, &e0)) < 0)
        goto out;
    if (rl && (res = fuzz_refused("sola_npy_parse(LABELS)", rl, &el)) < 0)
        goto out;
    if (ri && (res = fuzz_refused("sola_npy_inspect", ri, &ei)) < 0)
        goto out;
    if (rp && (res = fuzz_refused("sola_npy_peek", rp, &ep)) < 0)
        goto out;
    /* LABELS widens the accepted dtypes: whatever parses without it parses with it,
     * to the same numbers. */
    if (!r0 && rl) {
        res = fuzz_violation("npy: accepted as features but refused with LABELS: %s", el.msg);
        goto out;
    }
    if (!r0 && !fuzz_same_array(&a0, &al)) {
        res = fuzz_violation("npy: features and LABELS parses differ");
        goto out;
    }
    /* The header-only entry points accept every file the full parse accepts, and
     * describe it the same way. */
    if (!rl) {
        if (ri) {
            res = fuzz_violation("npy: parsed but inspect refuses: %s", ei.msg);
            goto out;
        }
        if (info.ndim != al.ndim || memcmp(info.shape, al.shape, sizeof al.shape[0] * (size_t)al.ndim) ||
            info.data_off + info.data_len != size) {
            res = fuzz_violation("npy: inspect disagrees with parse (ndim %d/%d, off %zu + len "
                                 "%zu vs size %zu)", info.ndim, al.ndim, info.data_off,
                                 info.data_len, size);
            goto out;
        }
    }
    if (!r0) {
        if (rp) {
            res = fuzz_violation("npy: parsed but peek refuses: %s", ep.msg);
            goto out;
        }
        if (ps.ndim != a0.ndim || off + dlen != size) {
            res = fuzz_violation("npy: peek disagrees with parse");
            goto out;
        }
    }
    if (!rl) {
        fuzz_touch(al.data, sola_array_numel(&al));
        if ((res = fuzz_npy_roundtrip(&al)) < 0)
            goto out;
    }
    res = r0 ? 1 : 0;
out:
    sola_array_free(&a0);
    sola_array_free(&al);
    free(buf);
    return res;
}

/* ---- .npz ---------------------------------------------------------------- */

FUZZ_UNUSED static int fuzz_one_npz(const uint8_t *data, size_t size)
{
    unsigned char *buf = fuzz_copy(data, size);
    if (!buf)
        return 0;
    sola_err e = {0};
    sola_npz z;
    int rc = sola_npz_parse(buf, size, FUZZ_NAME, &z, &e);
    if (rc) {
        free(buf);
        return fuzz_refused("sola_npz_parse", rc, &e);
    }
    int res = 0, nok = 0;
    sola_array *arr = calloc((size_t)z.n + 1, sizeof *arr);
    const char **names = calloc((size_t)z.n + 1, sizeof *names);
    if (!arr || !names)
        goto out;
    for (int i = 0; i < z.n; i++) {
        /* Names are unique (duplicates are refused), so find() maps back to i. */
        if (sola_npz_find(&z, z.entries[i].name) != i) {
            res = fuzz_violation("npz: find('%s') != %d", z.entries[i].name, i);
            goto out;
        }
        sola_err me = {0};
        sola_array a;
        rc = sola_npz_read(&z, i, 0, &a, &me);
        if (rc) {
            if ((res = fuzz_refused("sola_npz_read", rc, &me)) < 0)
                goto out;
            sola_array lab;
            sola_err le = {0};
            rc = sola_npz_read(&z, i, SOLA_NPY_LABELS, &lab, &le);
            if (rc && (res = fuzz_refused("sola_npz_read(LABELS)", rc, &le)) < 0)
                goto out;
            if (!rc)
                fuzz_touch(lab.data, sola_array_numel(&lab));
            sola_array_free(&lab);
            continue;
        }
        fuzz_touch(a.data, sola_array_numel(&a));
        names[nok] = z.entries[i].name;
        arr[nok++] = a;
    }
    sola_err pe = {0};
    int k = sola_npz_pick(&z, FUZZ_NAME, &pe);
    if (k < 0 && (res = fuzz_refused("sola_npz_pick", k, &pe)) < 0)
        goto out;
    if (k >= z.n) {
        res = fuzz_violation("npz: pick returned %d of %d members", k, z.n);
        goto out;
    }
    /* Round trip of the members that parsed, through our writer (stored or deflated
     * depending on the input, to cover both). */
    if (nok > 0) {
        void *enc = NULL;
        size_t elen = 0;
        sola_err we = {0};
        rc = sola_npz_encode(names, arr, nok, (int)(size & 1), &enc, &elen, &we);
        if (rc) {
            if (we.msg[0] == 0)
                res = fuzz_violation("npz: encode failed (%d) without a message", rc);
            goto out; /* e.g. a name our writer will not write: not a reader bug */
        }
        sola_npz z2;
        sola_err re = {0};
        rc = sola_npz_parse(enc, elen, FUZZ_NAME, &z2, &re);
        if (rc) {
            free(enc);
            res = fuzz_violation("npz: our own archive is refused: %s", re.msg);
            goto out;
        }
        if (z2.n != nok)
            res = fuzz_violation("npz: wrote %d members, read back %d", nok, z2.n);
        for (int i = 0; i < nok && res == 0; i++) {
            int j = sola_npz_find(&z2, names[i]);
            sola_array b;
            if (j < 0) {
                res = fuzz_violation("npz: member '%s' lost in the round trip", names[i]);
            } else if ((rc = sola_npz_read(&z2, j, 0, &b, &re)) != 0) {
                res = fuzz_violation("npz: our member '%s' is refused: %s", names[i], re.msg);
            } else {
                if (!fuzz_same_array(&arr[i], &b))
                    res = fuzz_violation("npz: member '%s' changed in the round trip", names[i]);
                sola_array_free(&b);
            }
        }
        sola_npz_close(&z2);
        free(enc);
    }
out:
    for (int i = 0; i < nok; i++)
        sola_array_free(&arr[i]);
    free(arr);
    free(names);
    sola_npz_close(&z);
    free(buf);
    return res;
}

/* ---- safetensors --------------------------------------------------------- */

static int fuzz_dtype_size(int dt)
{
    return dt == SOLA_DT_F32 ? 4 : dt == SOLA_DT_F64 ? 8 : 2;
}

FUZZ_UNUSED static int fuzz_one_safetensors(const uint8_t *data, size_t size)
{
    unsigned char *buf = fuzz_copy(data, size);
    if (!buf)
        return 0;
    sola_err e = {0};
    sola_st_file f;
    int rc = sola_st_parse(buf, size, FUZZ_NAME, &f, &e);
    if (rc) {
        free(buf);
        return fuzz_refused("sola_st_parse", rc, &e);
    }
    int res = 0, nout = 0;
    sola_st_out *out = calloc((size_t)f.n + 1, sizeof *out);
    float **conv = calloc((size_t)f.n + 1, sizeof *conv);
    if (!out || !conv)
        goto done;
    for (int i = 0; i < f.n; i++) {
        const sola_st_tensor *t = &f.t[i];
        if (sola_st_find(&f, t->name) != t) {
            res = fuzz_violation("safetensors: find('%s') does not return it", t->name);
            goto done;
        }
        if (t->ndim < 0 || t->ndim > 8) {
            res = fuzz_violation("safetensors: tensor '%s' has ndim %d", t->name, t->ndim);
            goto done;
        }
        /* The view lies inside the buffer we gave. */
        if (t->nbytes && (t->data < buf || t->data > buf + size ||
                          t->nbytes > (size_t)(buf + size - t->data))) {
            res = fuzz_violation("safetensors: tensor '%s' points outside the input", t->name);
            goto done;
        }
        if (t->dtype == SOLA_DT_OTHER)
            continue;
        size_t n = sola_st_numel(t);
        if (n * (size_t)fuzz_dtype_size(t->dtype) != t->nbytes) {
            res = fuzz_violation("safetensors: tensor '%s': %zu elements of %s in %zu bytes",
                                 t->name, n, t->dtype_str, t->nbytes);
            goto done;
        }
        float *v = malloc((n ? n : 1) * sizeof *v);
        if (!v)
            goto done;
        conv[nout] = v;
        sola_err ce = {0};
        if ((rc = sola_st_to_f32(t, v, &ce)) != 0) {
            res = fuzz_violation("safetensors: float tensor '%s' does not convert: %s", t->name,
                                 ce.msg);
            nout++;
            goto done;
        }
        fuzz_touch(v, n);
        out[nout].name = t->name;
        out[nout].ndim = t->ndim;
        memcpy(out[nout].shape, t->shape, sizeof t->shape);
        out[nout].data = v;
        nout++;
    }
    for (int i = 0; i < f.nmeta; i++)
        if (sola_st_meta(&f, f.meta_keys[i]) == NULL) {
            res = fuzz_violation("safetensors: metadata key '%s' not found", f.meta_keys[i]);
            goto done;
        }
    /* Round trip of the float tensors (as F32) and the metadata. */
    void *enc = NULL;
    size_t elen = 0;
    sola_err we = {0};
    rc = sola_st_encode(out, nout, (const char *const *)f.meta_keys,
                        (const char *const *)f.meta_vals, f.nmeta, &enc, &elen, &we);
    if (rc) {
        if (we.msg[0] == 0)
            res = fuzz_violation("safetensors: encode failed (%d) without a message", rc);
        goto done;
    }
    sola_st_file g;
    sola_err re = {0};
    rc = sola_st_parse(enc, elen, FUZZ_NAME, &g, &re);
    if (rc) {
        res = fuzz_violation("safetensors: our own encoding is refused: %s", re.msg);
        free(enc);
        goto done;
    }
    if (g.n != nout || g.nmeta != f.nmeta)
        res = fuzz_violation("safetensors: wrote %d tensors/%d meta, read %d/%d", nout, f.nmeta,
                             g.n, g.nmeta);
    for (int i = 0; i < nout && !res; i++) {
        const sola_st_tensor *t = sola_st_find(&g, out[i].name);
        size_t n = 1;
        for (int d = 0; d < out[i].ndim; d++)
            n *= (size_t)out[i].shape[d];
        if (!t || t->dtype != SOLA_DT_F32 || t->ndim != out[i].ndim ||
            memcmp(t->shape, out[i].shape, sizeof(int64_t) * (size_t)t->ndim) ||
            (n && memcmp(t->data, out[i].data, n * 4)))
            res = fuzz_violation("safetensors: tensor '%s' changed in the round trip",
                                 out[i].name);
    }
    for (int i = 0; i < f.nmeta && !res; i++) {
        const char *v = sola_st_meta(&g, f.meta_keys[i]);
        if (!v || strcmp(v, f.meta_vals[i]))
            res = fuzz_violation("safetensors: metadata '%s' changed in the round trip",
                                 f.meta_keys[i]);
    }
    sola_st_close(&g);
    free(enc);
done:
    for (int i = 0; i < nout; i++)
        free(conv[i]);
    free(conv);
    free(out);
    sola_st_close(&f);
    free(buf);
    return res;
}

/* ---- SoLa model (sola_model_from_buffer) --------------------------------- */

FUZZ_UNUSED static int fuzz_same_model(const sola_model *a, const sola_model *b, int with_train)
{
    if (a->C != b->C || a->H != b->H || a->k1 != b->k1 || a->k2 != b->k2 || a->d1 != b->d1 ||
        a->d2 != b->d2)
        return 0;
    if (with_train) {
        if (a->P != b->P || a->nparams != b->nparams || a->nextra != b->nextra)
            return 0;
        if (memcmp(a->params, b->params, a->nparams * sizeof(float)))
            return 0;
        for (int i = 0; i < a->nextra; i++) {
            const sola_tensor *t = sola_model_extra(b, a->extra[i].name);
            size_t n = sola_tensor_numel(&a->extra[i]);
            if (!t || t->ndim != a->extra[i].ndim || sola_tensor_numel(t) != n ||
                (n && memcmp(t->data, a->extra[i].data, n * sizeof(float))))
                return 0;
        }
        return 1;
    }
    /* Without training state: the module part of params only. */
    sola_layout l;
    sola_model_layout(a->C, a->H, a->k1, a->k2, 0, &l);
    return b->P == 0 && memcmp(a->params, b->params, l.module_total * sizeof(float)) == 0;
}

FUZZ_UNUSED static int fuzz_one_model(const uint8_t *data, size_t size)
{
    unsigned char *buf = fuzz_copy(data, size);
    if (!buf)
        return 0;
    sola_err e = {0};
    sola_model *m = sola_model_from_buffer(buf, size, FUZZ_NAME, &e);
    free(buf); /* the model owns copies of everything it keeps */
    if (!m)
        return fuzz_refused("sola_model_from_buffer", e.code, &e);
    int res = 0;
    sola_model *m2 = NULL;
    void *enc = NULL;
    float *x = NULL, *y = NULL;
    sola_ws *ws = NULL;
    if (m->C < 1 || m->H < 1 || m->k1 < 1 || m->k2 < 1 || !(m->k1 & 1) || !(m->k2 & 1) ||
        m->d1 < 1 || m->d2 < 1 || !m->g0 || !m->g2 || !m->g4) {
        res = fuzz_violation("model: accepted with C=%d H=%d k1=%d k2=%d d1=%d d2=%d packed=%d",
                             m->C, m->H, m->k1, m->k2, m->d1, m->d2, m->g0 && m->g2 && m->g4);
        goto out;
    }
    for (int train = 1; train >= 0; train--) {
        size_t elen = 0;
        sola_err se = {0};
        int rc = sola_model_serialize(m, train, &enc, &elen, &se);
        if (rc) {
            res = fuzz_violation("model: an accepted model does not serialize: %s", se.msg);
            goto out;
        }
        m2 = sola_model_from_buffer(enc, elen, FUZZ_NAME, &se);
        if (!m2) {
            res = fuzz_violation("model: our own serialization (train=%d) is refused: %s", train,
                                 se.msg);
            goto out;
        }
        if (!fuzz_same_model(m, m2, train)) {
            res = fuzz_violation("model: serialize+load (train=%d) changed the model", train);
            goto out;
        }
        sola_model_free(m2);
        m2 = NULL;
        free(enc);
        enc = NULL;
    }
    /* A short refine: whatever the weights, no out-of-bounds access, and a workspace
     * of bounded size (finding F5: the padding once made a 1.6 KB model ask for 2 GB;
     * inputs in fuzz/regressions/model). */
    int T = 1 + (int)(size % 4);
    size_t n = (size_t)T * (size_t)m->C;
    x = malloc(n * sizeof *x);
    y = malloc(n * sizeof *y);
    ws = sola_ws_new();
    if (x && y && ws) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        sola_err re = {0};
        int rc = sola_refine(m, x, T, y, ws, &re);
        if (rc)
            res = fuzz_violation("model: refine of T=%d refused on an accepted model: %s", T,
                                 re.msg);
        else if (sola_ws_bytes(ws) > ((size_t)64 << 20))
            res = fuzz_violation("model: refine of T=%d (C=%d H=%d k1=%d k2=%d) holds a %zu MiB "
                                 "workspace", T, m->C, m->H, m->k1, m->k2,
                                 sola_ws_bytes(ws) >> 20);
        else
            fuzz_touch(y, n);
    }
out:
    sola_ws_free(ws);
    free(x);
    free(y);
    free(enc);
    sola_model_free(m2);
    sola_model_free(m);
    return res;
}

/* ---- dataset store: a .npz upload (sola_ds_put_npz) ---------------------------- */

/* The store's directory for this process: ROOT holds dataset "keep" (item "a",
 * [2, 3]); ROOT/../up.npz receives each input. Built once, removed at exit. */
static char fuzz_ds_dir[300];

static int fuzz_ds_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Also called by the replay test: check's forked children leave through _exit. */
FUZZ_UNUSED static void fuzz_ds_cleanup(void)
{
    if (fuzz_ds_dir[0])
        nftw(fuzz_ds_dir, fuzz_ds_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* (Re)creates dataset "keep"; 0 or -1. */
static int fuzz_ds_keep(const char *root)
{
    char p[512];
    sola_err e = {0};
    snprintf(p, sizeof p, "%s/keep.npy", fuzz_ds_dir);
    const float x[6] = {1, 2, 3, 4, 5, 6};
    int created;
    if (access(p, F_OK) != 0 && sola_npy_save(p, x, 2, (int64_t[]){2, 3}, &e))
        return -1;
    return sola_ds_put_item(root, "keep", "a", p, 0, &created, NULL, NULL, &e) ? -1 : 0;
}

static const char *fuzz_ds_root(void)
{
    static char root[400];
    if (!root[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_ds_dir, sizeof fuzz_ds_dir, "%s/solafuzz-ds.%ld",
                 tmp && *tmp ? tmp : "/tmp", (long)getpid());
        snprintf(root, sizeof root, "%s/datasets", fuzz_ds_dir);
        sola_err e = {0};
        if (sola_mkdirs(root, 0755, &e) || fuzz_ds_keep(root))
            abort();
        atexit(fuzz_ds_cleanup);
    }
    return root;
}

/* Hidden entries (staging, trash, upload files) in dir, ".lock" aside. */
static int fuzz_ds_hidden(const char *dir, char *first, size_t n)
{
    DIR *d = opendir(dir);
    int c = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            strcmp(de->d_name, ".lock") && c++ == 0)
            snprintf(first, n, "%s", de->d_name);
    if (d)
        closedir(d);
    return c;
}


/* The input is an uploaded .npz, stored as dataset "x" (even sizes) or over the
 * existing dataset "keep" (odd sizes). Refused: a clean refusal naming the dataset
 * (or "the uploaded .npz" for archive-level errors),
 * no hidden leftovers, "keep" unchanged and "x" absent. Accepted: every item is a
 * [T, C] float file with one C, equal bit for bit to what the random-access reader
 * (sola_npz_read) makes of the same member. */
FUZZ_UNUSED static int fuzz_one_dataset_npz(const uint8_t *data, size_t size)
{
    const char *root = fuzz_ds_root();
    const char *ds = size & 1 ? "keep" : "x";
    char src[512], p[600], hid[256] = "";
    snprintf(src, sizeof src, "%s/up.npz", fuzz_ds_dir);
    FILE *f = fopen(src, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        if (f)
            fclose(f);
        return 0;
    }
    fclose(f);
    int created = -1, nitems = -1, res = 0;
    sola_err e = {0};
    int rc = sola_ds_put_npz(root, ds, src, 0, &created, &nitems, &e);
    if (fuzz_ds_hidden(root, hid, sizeof hid)) {
        res = fuzz_violation("dataset store: %s left in the store after a %s upload", hid,
                             rc ? "refused" : "accepted");
        goto restore;
    }
    sola_ds_info info;
    memset(&info, 0, sizeof info);
    if (rc) {
        /* The message names the dataset, or the upload for archive-level errors. */
        if (rc >= 0 || rc < SOLA_ENOSPC || e.code != rc || !e.msg[0] ||
            (!strstr(e.msg, ds) && !strstr(e.msg, "uploaded"))) {
            res = fuzz_violation("sola_ds_put_npz refused with code %d/%d and message \"%s\" "
                                 "(must name dataset %s or the upload)", rc, e.code, e.msg, ds);
            goto restore;
        }
        sola_err se = {0};
        int src2 = sola_ds_stat(root, ds, &info, &se);
        if (!strcmp(ds, "x") && src2 != SOLA_ENOTFOUND)
            res = fuzz_violation("a refused upload left dataset x behind (stat: %d)", src2);
        else if (!strcmp(ds, "keep") &&
                 (src2 || info.n != 1 || strcmp(info.items[0].name, "a") || info.C != 3))
            res = fuzz_violation("a refused upload changed dataset keep");
        sola_ds_info_free(&info);
        res = res ? res : 1;
        goto restore;
    }
    /* Accepted: compare every item with the random-access reader's view. */
    sola_npz z;
    sola_err ze = {0};
    if (sola_npz_parse(data, size, FUZZ_NAME, &z, &ze)) {
        res = fuzz_violation("the store accepted an archive sola_npz_parse refuses: %s", ze.msg);
        goto restore;
    }
    sola_err se = {0};
    if (sola_ds_stat(root, ds, &info, &se) || info.n != z.n || info.n != nitems) {
        res = fuzz_violation("stored %d items of %d members (stat: %s)", info.n, z.n, se.msg);
        sola_npz_close(&z);
        sola_ds_info_free(&info);
        goto restore;
    }
    for (int i = 0; i < z.n && !res; i++) {
        sola_array a, b;
        sola_err re = {0};
        snprintf(p, sizeof p, "%s/%s/%s.npy", root, ds, z.entries[i].name);
        if (sola_npz_read(&z, i, 0, &a, &re)) {
            res = fuzz_violation("member %s stored, but sola_npz_read refuses it: %s",
                                 z.entries[i].name, re.msg);
        } else {
            if (sola_npy_load(p, 0, &b, &re))
                res = fuzz_violation("stored item %s does not load: %s", p, re.msg);
            else if (b.ndim != 2 || b.shape[1] != info.C || !fuzz_same_array(&a, &b))
                res = fuzz_violation("stored item %s differs from the archive's member", p);
            sola_array_free(&b);
            sola_array_free(&a);
        }
    }
    sola_npz_close(&z);
    sola_ds_info_free(&info);
restore:
    /* Back to the fixture for the next input. */
    snprintf(p, sizeof p, "%s/x", root);
    nftw(p, fuzz_ds_rm, 16, FTW_DEPTH | FTW_PHYS);
    if (!strcmp(ds, "keep") && !rc) {
        snprintf(p, sizeof p, "%s/keep", root);
        nftw(p, fuzz_ds_rm, 16, FTW_DEPTH | FTW_PHYS);
        if (fuzz_ds_keep(root))
            abort();
    }
    unlink(src);
    return res;
}

/* ---- dispatch by corpus directory name ------------------------------------ */

typedef int (*fuzz_fn)(const uint8_t *, size_t);

typedef struct fuzz_target {
    const char *name; /* corpus directory under fuzz/corpus and fuzz/regressions */
    fuzz_fn fn;
} fuzz_target;

FUZZ_UNUSED static const fuzz_target fuzz_targets[] = {
    {"npy", fuzz_one_npy},
    {"npz", fuzz_one_npz},
    {"safetensors", fuzz_one_safetensors},
    {"model", fuzz_one_model},
    {"dataset_npz", fuzz_one_dataset_npz},
};
#define FUZZ_NTARGETS ((int)(sizeof fuzz_targets / sizeof fuzz_targets[0]))

/* libFuzzer glue: a broken invariant is a crash, with the reason on stderr. */
#define FUZZ_ENTRY(fn)                                                                 \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                      \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                       \
    {                                                                                  \
        if (fn(data, size) < 0) {                                                      \
            fprintf(stderr, "fuzz invariant broken: %s\n", fuzz_why);                  \
            abort();                                                                   \
        }                                                                              \
        return 0;                                                                      \
    }

#endif
