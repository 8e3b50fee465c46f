/* refine_dataset.c -- `sola refine` of a dataset in any layout (see refine_dataset.h).
 *
 * Outputs, per input layout, so a downstream config changes only its folder:
 *   NAME.npy, video_features pair/stream, HDF5 item  -> OUT/NAME.npy
 *   NAME.npz                                         -> OUT/NAME.npz (same members)
 *   NAME.csv (BMN)                                   -> OUT/NAME.csv (same header row)
 *   a folder of HDF5 files (G-TAD rgb/flow pairs)    -> the same files in OUT, each
 *                                                       pair split back per stream
 * always float32, T unchanged, [C, T] again for --layout ct. Videos are streamed
 * through refine_pipe.c: the next one is read and the previous one written while one
 * is refined. A video that cannot be read is skipped, logged with its reason and named
 * in missing_files.txt; the run then exits 1 unless --allow-missing. The files written
 * beside the output (refine_meta.json, missing_files.txt, copied siblings) are
 * refine_meta.c's. */
#include "refine_dataset.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotations.h"
#include "bytes.h"
#include "cli.h"
#include "cli_io.h"
#include "csvfeat.h"
#include "dataset.h"
#include "fsutil.h"
#include "h5io.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"
#include "refine_meta.h"
#include "refine_pipe.h"
#include "refine_shard.h"

int cli_is_h5_name(const char *path)
{
    return sola_has_ext(path, ".h5") || sola_has_ext(path, ".hdf5");
}

/* Where refined videos go. */
typedef struct outs {
    const char *dir;   /* folder output, or NULL for an HDF5 file only */
    sola_h5w *joined;  /* -o FILE.h5 or --h5-out: one dataset per video */
    /* folder output of a folder of HDF5 files: the same files, opened on first use */
    char **mfile;
    sola_h5w **mw;
    int nm;
} outs;

/* The writer of OUT/file for an HDF5-folder input (created on first use). */
static sola_h5w *mirror(outs *o, const char *file, sola_err *e)
{
    for (int i = 0; i < o->nm; i++)
        if (!strcmp(o->mfile[i], file))
            return o->mw[i];
    char **f = realloc(o->mfile, sizeof *f * (size_t)(o->nm + 1));
    if (f)
        o->mfile = f;
    sola_h5w **w = realloc(o->mw, sizeof *w * (size_t)(o->nm + 1));
    if (w)
        o->mw = w;
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", o->dir, file);
    if (!f || !w || !(o->mfile[o->nm] = strdup(file))) {
        sola_errf(e, SOLA_ENOMEM, "%s: out of memory", p);
        return NULL;
    }
    if (sola_h5w_open(p, &o->mw[o->nm], e)) {
        free(o->mfile[o->nm]);
        return NULL;
    }
    return o->mw[o->nm++];
}

/* Columns [c0, c0 + nc) of y [R, K] (time-major) or rows of it (ct: [C, T]) as a new
 * array in the same orientation. */
static int channels(const sola_array *y, int ct, int64_t c0, int64_t nc, sola_array *out,
                    sola_err *e)
{
    int64_t R = y->shape[0], K = y->shape[1];
    int64_t rows = ct ? nc : R, cols = ct ? K : nc;
    memset(out, 0, sizeof *out);
    size_t cnt = (size_t)rows * (size_t)cols;
    if (!(out->data = malloc((cnt ? cnt : 1) * sizeof(float))))
        return sola_errf(e, SOLA_ENOMEM, "out of memory splitting channels");
    for (int64_t r = 0; r < rows; r++)
        memcpy(out->data + r * cols, ct ? y->data + (c0 + r) * K : y->data + r * K + c0,
               (size_t)cols * sizeof(float));
    out->ndim = 2;
    out->shape[0] = rows;
    out->shape[1] = cols;
    return 0;
}

/* An HDF5-folder item back into the files it came from; a pair split per stream. */
static int write_mirror(const sola_dataset *d, int i, outs *o, const sola_array *y,
                        sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    if (!it->file2) {
        sola_h5w *w = mirror(o, it->file, e);
        return w ? sola_h5w_put_key(w, it->key, y->data, y->shape[0], y->shape[1], e) : e->code;
    }
    const char *first = d->flow_first ? it->file2 : it->file;
    const char *second = d->flow_first ? it->file : it->file2;
    int64_t C = d->ct ? y->shape[0] : y->shape[1];
    const char *f[2] = {first, second};
    int64_t c0[2] = {0, it->C1}, nc[2] = {it->C1, C - it->C1};
    int rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        sola_array part;
        sola_h5w *w = mirror(o, f[s], e);
        if (!w)
            return e->code;
        if (!(rc = channels(y, d->ct, c0[s], nc[s], &part, e)))
            rc = sola_h5w_put_key(w, it->key, part.data, part.shape[0], part.shape[1], e);
        sola_array_free(&part);
    }
    return rc;
}

/* A refined .npz: the refined member under its name, every other member copied. */
static int write_npz(const char *ip, const char *op, const sola_array *y, sola_err *e)
{
    sola_npz z;
    int rc = sola_npz_open(ip, &z, e);
    if (rc)
        return rc;
    int pick = sola_npz_pick(&z, ip, e), n = z.n;
    const char **names = calloc((size_t)n + 1, sizeof *names);
    const void **raw = calloc((size_t)n + 1, sizeof *raw);
    size_t *rawlen = calloc((size_t)n + 1, sizeof *rawlen);
    sola_array *arr = calloc((size_t)n + 1, sizeof *arr);
    if (pick < 0)
        rc = e && e->code < 0 ? e->code : SOLA_EFORMAT;
    else if (!names || !raw || !rawlen || !arr)
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", ip);
    for (int k = 0; k < n && !rc; k++) {
        names[k] = z.entries[k].name;
        if (k == pick)
            arr[k] = *y;
        else
            rc = sola_npz_member_image(&z, k, (void **)&raw[k], &rawlen[k], e);
    }
    if (!rc)
        rc = sola_npz_save_mixed(op, names, arr, raw, rawlen, n, 0, e);
    for (int k = 0; raw && k < n; k++)
        free((void *)raw[k]);
    free(names);
    free(raw);
    free(rawlen);
    free(arr);
    sola_npz_close(&z);
    return rc;
}

/* The dataset path an HDF5 output keeps: "v_a/c3d_features" for per-video groups. */
static const char *h5_key(const sola_dataset *d, const sola_dataset_item *it)
{
    return d->h5 ? it->file : it->kind == SOLA_ITEM_H5DIR ? it->key : it->name;
}

/* OUT/NAME.npy (or .npz, .csv: the input's format family) of a folder output; NULL
 * when it does not fit in n. */
static char *out_path(const sola_dataset_item *it, const char *dir, char *buf, size_t n)
{
    const char *ext = it->kind == SOLA_ITEM_NPZ ? "npz" : it->kind == SOLA_ITEM_CSV ? "csv"
                                                                                     : "npy";
    return (size_t)snprintf(buf, n, "%s/%s.%s", dir, it->name, ext) < n ? buf : NULL;
}

/* Writes one refined video y [T, C] (already in the source orientation) next to its
 * input's format, and into the joined HDF5 file when there is one. `room` writable
 * bytes precede y->data (for an .npy's header: sola_npy_save_inplace). */
static int write_item(const sola_dataset *d, int i, outs *o, const sola_array *y,
                      size_t room, sola_err *e)
{
    const sola_dataset_item *it = &d->items[i];
    int rc = 0;
    if (o->joined && (rc = sola_h5w_put_key(o->joined, h5_key(d, it), y->data, y->shape[0],
                                            y->shape[1], e)))
        return rc;
    if (!o->dir)
        return 0;
    if (it->kind == SOLA_ITEM_H5DIR)
        return write_mirror(d, i, o, y, e);
    char ip[4096], op[4096];
    snprintf(ip, sizeof ip, "%s/%s", d->dir, it->file);
    if (!out_path(it, o->dir, op, sizeof op))
        return sola_errf(e, SOLA_EINVAL, "%s: output path too long", o->dir);
    if (it->kind == SOLA_ITEM_NPZ)
        return write_npz(ip, op, y, e);
    if (it->kind == SOLA_ITEM_CSV) {
        sola_array tmp;
        char *hdr = NULL;
        rc = sola_csv_load(ip, &tmp, &hdr, e);
        sola_array_free(&tmp);
        if (!rc)
            rc = sola_csv_save(op, hdr, y->data, y->shape[0], y->shape[1], e);
        free(hdr);
        return rc;
    }
    return sola_npy_save_inplace(op, y->data, 2, y->shape, room, e);
}

/* Opens the HDF5 file `path`, creating its folder. */
static int open_h5(const char *path, sola_h5w **w, sola_err *e)
{
    const char *sl = strrchr(path, '/');
    if (sl && sl != path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(sl - path), path);
        int rc = sola_mkdirs(dir, 0755, e);
        if (rc)
            return rc;
    }
    return sola_h5w_open(path, w, e);
}

static int close_outs(outs *o, int ok, sola_err *e)
{
    int rc = 0;
    for (int i = 0; i < o->nm; i++) {
        if (ok && !rc)
            rc = sola_h5w_commit(o->mw[i], e);
        else
            sola_h5w_abort(o->mw[i]);
        free(o->mfile[i]);
    }
    free(o->mfile);
    free(o->mw);
    if (o->joined) {
        if (ok && !rc)
            rc = sola_h5w_commit(o->joined, e);
        else
            sola_h5w_abort(o->joined);
    }
    memset(o, 0, sizeof *o);
    return rc;
}

/* Run-level fields of refine_meta.json beyond the common ones (new reference). */
static json_t *run_fields(const sola_dataset *d, const cli_refine_opts *o, int64_t fixed_T)
{
    json_t *x = json_object();
    int pairs = 0;
    for (int i = 0; i < d->n; i++)
        pairs |= d->items[i].file2 != NULL;
    if (pairs)
        json_object_set_new(x, "pair_order", json_string(d->flow_first ? "flow,rgb"
                                                                       : "rgb,flow"));
    if (d->stream)
        json_object_set_new(x, "stream_suffix_removed", json_sprintf("_%s", d->stream));
    json_object_set_new(x, "declared_grid",
                        json_pack("{s:o, s:o, s:o}", "fps",
                                  o->fps > 0 ? json_real(o->fps) : json_null(), "stride",
                                  o->stride > 0 ? json_real(o->stride) : json_null(), "frames",
                                  o->frames > 0 ? json_real(o->frames) : json_null()));
    json_object_set_new(x, "fixed_length", fixed_T > 0 ? json_integer(fixed_T) : json_null());
    if (o->shards) /* a part's; the merge drops it */
        json_object_set_new(x, "shard", json_sprintf("%d/%d", o->shard, o->shards));
    return x;
}

/* Every video resized to one T (BMN csv_mean_100): says what that means, once. */
static int64_t fixed_length(const sola_dataset *d)
{
    if (d->n < 2 || strcmp(d->layout, "bmn csv"))
        return 0;
    for (int i = 1; i < d->n; i++)
        if (d->items[i].T != d->items[0].T)
            return 0;
    cli_errorf("note: every video has T=%lld: features resized to a fixed length per video "
               "(BMN/BSN csv_mean_%lld). A snippet spans duration/%lld, so the model's "
               "window covers a different time in each video; refine them with a model "
               "trained on features resized the same way (docs/interop.md)",
               (long long)d->items[0].T, (long long)d->items[0].T, (long long)d->items[0].T);
    return d->items[0].T;
}

/* One run's state for the pipeline's hooks (refine_pipe.h): the reader's and the
 * writer's side of each video. The writer side runs for every video in order. The
 * pipe's video j is item idx[j] of the dataset (this shard's, not yet complete). */
typedef struct run {
    sola_dataset *d;
    const int *idx;
    int total;
    const cli_refine_opts *o;
    outs *os;
    cli_progress *p;
    long refined, frames;
    int fatal;          /* out of memory for the bookkeeping: the run stops */
    size_t lead;        /* room before each video's rows for its .npy header */
    char *tbase;        /* a --layout ct output transposed back to [C, T] at tbase + lead,
                         * reused */
    size_t tcap;
    /* the last video's .npy written in parts as its rows become final (run_part):
     * pstate 0 none yet, 1 open (pf, pdone bytes of header and rows written), 2 a
     * write failed (prc, pe: finish reports it), 3 not written in parts; phl: the
     * length of its .npy header, which stands just before the rows */
    int pstate, prc;
    sola_afile pf;
    size_t pdone, phl;
    sola_err pe;
} run;

/* SOLA_DEBUG_READ_FAIL_AT_VIDEO=J: reading the run's video J (0-based, in the order
 * refined) fails as a file gone since the scan would, so a test sees a failed read
 * skipped and named wherever it happens -- video 0 is read ahead while the model
 * loads, the others by the pipe (tests/cli/test_cli.c). */
static int debug_read_fail(int j, const sola_dataset *d, int i, sola_err *e)
{
    const char *s = getenv("SOLA_DEBUG_READ_FAIL_AT_VIDEO");
    if (!s || !*s || atoi(s) != j)
        return 0;
    return sola_errf(e, SOLA_EIO, "%s: read failed (SOLA_DEBUG_READ_FAIL_AT_VIDEO)",
                     d->items[i].name);
}

/* I/O thread: video i straight into the pass's input rows. */
static int run_read(void *ud, int i, int64_t T, float *x, sola_err *e)
{
    run *r = ud;
    int rc = debug_read_fail(i, r->d, r->idx[i], e);
    return rc ? rc : sola_dataset_window(r->d, r->idx[i], 0, (int)T, x, e);
}

/* SOLA_DEBUG_STOP_AFTER_VIDEOS=N: the process stops itself (SIGSTOP) once it has
 * written N videos, so a test kills it mid-run at a known point however fast the
 * machine is (tests/cli/test_refine_shard.c). I/O thread only. */
static void debug_stop_after(long written)
{
    static long at = -1;
    if (at < 0) {
        const char *s = getenv("SOLA_DEBUG_STOP_AFTER_VIDEOS");
        at = s ? atol(s) : 0;
    }
    if (at > 0 && written >= at) {
        at = 0;
        raise(SIGSTOP);
    }
}

/* SOLA_DEBUG_OOM_AT_VIDEO=J: the bookkeeping of the run's video J (0-based, in the order
 * refined) fails as if out of memory -- the one failure that stops a run midway -- so
 * a test sees that a stopped run commits no partial HDF5 file (tests/cli/test_cli.c).
 * I/O thread only. */
static int debug_oom_at(int j)
{
    const char *s = getenv("SOLA_DEBUG_OOM_AT_VIDEO");
    return s && *s && atoi(s) == j;
}

/* SOLA_DEBUG_PART_WRITE_FAIL=1: the first write of a part of the last video fails as
 * a full disk would, so a test sees that failure path (the video skipped, no
 * temporary left: tests/cli/test_cli.c). I/O thread only. */
static int debug_part_fail(const char *path, sola_err *e)
{
    const char *s = getenv("SOLA_DEBUG_PART_WRITE_FAIL");
    if (!s || strcmp(s, "1"))
        return 0;
    return sola_errf(e, SOLA_ENOSPC, "%s: write failed (SOLA_DEBUG_PART_WRITE_FAIL)", path);
}

/* I/O thread: rows [0, rows) of the last video j are final (refine_pipe.h). A plain
 * .npy output gets its temporary file opened and the whole 4096-byte blocks of its
 * image (header then rows, contiguous in the pipe's buffer) written now, with
 * O_DIRECT where the buffer is aligned (sola_afile_write_direct), while the rest is
 * computed; run_finish writes the remainder and commits. Any
 * other output waits for run_finish as before. */
static void run_part(void *ud, int j, float *y, int64_t T, int64_t rows)
{
    run *r = ud;
    const sola_dataset *d = r->d;
    const sola_dataset_item *it = &d->items[r->idx[j]];
    if (r->pstate == 0) {
        int64_t shape[2] = {T, d->C};
        unsigned char hdr[512];
        size_t hl = sola_npy_header("<f4", 2, shape, hdr, sizeof hdr);
        char op[4096];
        r->pstate = 3;
        if (!r->os->dir || r->os->joined || r->o->ct || it->kind == SOLA_ITEM_NPZ ||
            it->kind == SOLA_ITEM_CSV || it->kind == SOLA_ITEM_H5DIR || !hl ||
            hl > r->lead || !sola_host_is_le() || !out_path(it, r->os->dir, op, sizeof op))
            return;
        memcpy((char *)y - hl, hdr, hl);
        if ((r->prc = sola_afile_open(&r->pf, op, &r->pe))) {
            r->pstate = 2;
            return;
        }
        r->pstate = 1;
        r->pdone = 0; /* bytes of the image (header, rows) in the file */
        r->phl = hl;
    }
    if (r->pstate != 1)
        return;
    size_t upto = (r->phl + (size_t)rows * (size_t)d->C * sizeof(float)) / SOLA_DIO_ALIGN *
                  SOLA_DIO_ALIGN;
    if (upto <= r->pdone)
        return;
    char *img = (char *)y - r->phl;
    if ((r->prc = debug_part_fail(r->pf.path, &r->pe)) ||
        (r->prc = sola_afile_write_direct(&r->pf, img + r->pdone, upto - r->pdone, &r->pe))) {
        sola_afile_abort(&r->pf);
        r->pstate = 2;
        return;
    }
    r->pdone = upto;
}

/* The rest of a video run_part began: written and committed, or the failure it met.
 * 0 or SOLA_E* with e filled. */
static int finish_parts(run *r, float *y, int64_t T, sola_err *e)
{
    if (r->pstate == 2) {
        *e = r->pe;
        return r->prc;
    }
    size_t len = r->phl + (size_t)T * (size_t)r->d->C * sizeof(float);
    char *img = (char *)y - r->phl;
    int rc = sola_afile_write_direct(&r->pf, img + r->pdone, len - r->pdone, e);
    if (rc) {
        sola_afile_abort(&r->pf);
        return rc;
    }
    return sola_afile_commit(&r->pf, e);
}

/* I/O thread: writes a refined video, or records why video i was skipped. */
static int run_finish(void *ud, int j, int stage, float *y, int64_t T, int *rc,
                      sola_err *e)
{
    run *r = ud;
    int i = r->idx[j];
    sola_dataset *d = r->d;
    if (stage >= 1)
        r->frames += (long)T;
    int parts = r->pstate == 1 || r->pstate == 2;
    if (parts) { /* the last video, begun by run_part */
        if (stage == 2)
            *rc = finish_parts(r, y, T, e);
        else if (r->pstate == 1)
            sola_afile_abort(&r->pf);
        r->pstate = 3;
    }
    if (stage == 2 && !parts) {
        int64_t C = d->C;
        sola_array ya = {.data = y, .ndim = 2, .shape = {T, C}};
        size_t n = (size_t)T * (size_t)C;
        if (r->o->ct && n > r->tcap) {
            /* laid out like the pipe's buffers: aligned, with the header's room */
            size_t bytes = (r->lead + n * sizeof(float) + SOLA_DIO_ALIGN - 1) /
                           SOLA_DIO_ALIGN * SOLA_DIO_ALIGN;
            char *t = aligned_alloc(SOLA_DIO_ALIGN, bytes);
            if (t) {
                free(r->tbase);
                r->tbase = t;
                r->tcap = n;
            }
        }
        if (r->o->ct && n > r->tcap) {
            *rc = sola_errf(e, SOLA_ENOMEM, "out of memory transposing [%lld, %lld]",
                            (long long)T, (long long)C);
        } else {
            if (r->o->ct) {
                float *tt = (float *)(r->tbase + r->lead);
                for (int64_t t = 0; t < T; t++)
                    for (int64_t c = 0; c < C; c++)
                        tt[(size_t)c * (size_t)T + (size_t)t] = y[(size_t)t * (size_t)C + (size_t)c];
                ya.data = tt;
                ya.shape[0] = C;
                ya.shape[1] = T;
            }
            *rc = write_item(d, i, r->os, &ya, r->lead, e);
        }
    }
    int oom = debug_oom_at(j);
    if (*rc && r->p->tty)
        fputc('\n', stderr);
    if (*rc)
        cli_errorf("skipped %s: %s", d->items[i].name, e->msg);
    if (oom || (*rc && sola_dataset_note_skip(d, d->items[i].name, e->msg))) {
        /* the run cannot say what it skipped: it stops, and close_outs aborts an HDF5
         * output rather than commit part of the videos */
        cli_errorf("out of memory at %s: stopped after %d of %d videos%s", d->items[i].name,
                   j, r->total, r->os->joined || r->os->nm ? " (no HDF5 output written)" : "");
        r->fatal = 1;
        return 1;
    }
    if (!*rc)
        r->refined++;
    char extra[64];
    snprintf(extra, sizeof extra, "%ld frames", r->frames);
    cli_progress_update(r->p, "refine", j + 1, r->total, "videos", extra);
    debug_stop_after(r->refined);
    return 0;
}

/* Which videos this process refines: mine[i] for this shard's items (*mine NULL when
 * not sharded: every item), and in idx[0..*n) those of them whose output is not
 * already complete (--skip-existing; *kept counts the others). 0 or SOLA_ENOMEM. */
static int plan(const sola_dataset *d, const cli_refine_opts *o, const char *out,
                unsigned char **mine, int **idx, int *n, int *kept)
{
    cli_shard sh = {o->shard, o->shards};
    *mine = o->shards ? calloc((size_t)d->n + 1, 1) : NULL;
    *idx = malloc(sizeof **idx * ((size_t)d->n + 1));
    *n = *kept = 0;
    if ((o->shards && !*mine) || !*idx) {
        free(*mine);
        free(*idx);
        *mine = NULL;
        *idx = NULL;
        return SOLA_ENOMEM;
    }
    for (int i = 0; i < d->n; i++) {
        const sola_dataset_item *it = &d->items[i];
        if (*mine && !((*mine)[i] = (unsigned char)cli_shard_owns(&sh, it->name)))
            continue;
        char op[4200];
        if (o->skip_existing && out_path(it, out, op, sizeof op) &&
            cli_output_complete(op, o->ct ? d->C : it->T, o->ct ? it->T : d->C)) {
            (*kept)++;
            continue;
        }
        (*idx)[(*n)++] = i;
    }
    return 0;
}

/* Room before each video's rows for its .npy header, [T, C] or [C, T]: the longest T
 * of the run has the most digits. */
static size_t header_room(const sola_dataset *d, const int *idx, int n)
{
    int64_t Tmax = 1, shape[2];
    for (int j = 0; j < n; j++)
        Tmax = d->items[idx[j]].T > Tmax ? d->items[idx[j]].T : Tmax;
    shape[0] = Tmax;
    shape[1] = d->C;
    unsigned char hdr[512];
    return sola_npy_header("<f4", 2, shape, hdr, sizeof hdr);
}

/* See refine_dataset.h. */
struct cli_prefetch {
    sola_dataset *d; /* the scan, until cli_refine_dataset takes it */
    /* plan()'s answer for d (planned 0: not made, out of memory), taken with it */
    int planned, n, kept;
    unsigned char *mine;
    int *idx;
    int item;        /* the dataset index of the video read ahead */
    cli_pipe_first first;
};

static int prefetch_read(void *ud, int64_t T, float *x, sola_err *e)
{
    struct cli_prefetch *pf = ud;
    int rc = debug_read_fail(0, pf->d, pf->item, e);
    return rc ? rc : sola_dataset_window(pf->d, pf->item, 0, (int)T, x, e);
}

struct cli_prefetch *cli_refine_prefetch(const char *in, const char *out,
                                         const cli_refine_opts *o)
{
    struct cli_prefetch *pf = calloc(1, sizeof *pf);
    sola_err e = {0};
    sola_dataset_opts dopt = {.ct = o->ct, .skip_bad = 1, .flow_first = o->flow_first};
    if (!pf || sola_dataset_open_ex(in, &dopt, &pf->d, &e)) {
        free(pf);
        return NULL;
    }
    pf->planned = !plan(pf->d, o, out, &pf->mine, &pf->idx, &pf->n, &pf->kept);
    if (pf->planned && pf->n > 0) {
        pf->item = pf->idx[0];
        pf->first.T = pf->d->items[pf->item].T;
        pf->first.C = pf->d->C;
        pf->first.lead = header_room(pf->d, pf->idx, pf->n);
        pf->first.read = prefetch_read;
        pf->first.ud = pf;
        pf->first.warm = 1;
        cli_pipe_first_start(&pf->first); /* on failure the pipe reads it itself */
    }
    return pf;
}

int64_t cli_prefetch_min_T(const struct cli_prefetch *pf)
{
    if (!pf || !pf->planned || pf->n < 1)
        return 0;
    int64_t T = pf->d->items[pf->idx[0]].T;
    for (int j = 1; j < pf->n; j++)
        if (pf->d->items[pf->idx[j]].T < T)
            T = pf->d->items[pf->idx[j]].T;
    return T > 0 ? T : 0;
}

void cli_prefetch_free(struct cli_prefetch *pf)
{
    if (!pf)
        return;
    cli_pipe_first_free(&pf->first);
    if (pf->d)
        sola_dataset_free(pf->d);
    free(pf->mine);
    free(pf->idx);
    free(pf);
}

/* A shard's end: merges the parts when they are all there. 0, or an exit code. */
static int merge_parts(const char *out, const cli_refine_opts *o)
{
    sola_err e = {0};
    int rc = cli_shard_merge(out, o->shards, &e);
    if (rc == 1) {
        fprintf(stderr, "%s; the last shard to finish merges the parts into "
                "refine_meta.json and missing_files.txt (or: sola refine --merge-meta %s)\n",
                e.msg, out);
        return EXIT_OK;
    }
    if (rc) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "every shard of %d is done: parts merged into %s/refine_meta.json and "
            "%s/missing_files.txt\n", o->shards, out, out);
    return EXIT_OK;
}

int cli_refine_dataset(const sola_model *m, const char *mpath, const char *in,
                       const char *out, const cli_refine_opts *o, sola_ws *ws,
                       struct cli_prefetch *pf)
{
    sola_err e = {0};
    sola_dataset *d = NULL;
    sola_dataset_opts dopt = {.ct = o->ct, .skip_bad = 1, .flow_first = o->flow_first};
    int took = 0; /* d is pf's: its plan is pf's too (pf frees it unless taken) */
    if (pf && pf->d) {
        /* the scan made while the model loaded; its read ahead is done before the
         * dataset can be freed on any path below */
        cli_pipe_first_wait(&pf->first);
        d = pf->d;
        pf->d = NULL;
        took = 1;
    } else if (sola_dataset_open_ex(in, &dopt, &d, &e)) {
        cli_errorf("%s", e.msg);
        return EXIT_RUNTIME;
    }
    int h5_only = cli_is_h5_name(out);
    const char *h5path = h5_only ? out : o->h5_out;
    int rc = EXIT_OK;
    if (d->C != m->C) {
        int pairs = !strcmp(d->layout, "video_features rgb+flow") ||
                    !strcmp(d->layout, "hdf5 rgb+flow files");
        cli_errorf("%s: features have C=%d but %s expects C=%d%s", in, d->C, mpath, m->C,
                   d->C * 2 == m->C && !pairs
                       ? " (a model for rgb+flow pairs given one stream? refine both streams "
                         "joined, or train a model on this stream)"
                   : m->C * 2 == d->C && pairs
                       ? " (a model for one stream given rgb+flow pairs? use a model trained "
                         "on the joined streams)"
                   : o->ct ? ""
                           : " (channel-first files? try --layout ct)");
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    const char *trained = sola_model_meta(m, "train.pair_order");
    const char *order = d->flow_first ? "flow,rgb" : "rgb,flow";
    int pairs = 0;
    for (int i = 0; i < d->n; i++)
        pairs |= d->items[i].file2 != NULL;
    if (pairs && trained && strcmp(trained, order)) {
        cli_errorf("%s was trained on rgb/flow pairs joined %s, these would be joined %s: "
                   "pass --pair-order %s", mpath, trained, order, trained);
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < d->n && (o->shards || o->skip_existing); i++)
        if (d->items[i].kind == SOLA_ITEM_H5DIR) {
            cli_errorf("%s: a folder of HDF5 files is refined into the same files, which "
                       "shards cannot share and --skip-existing cannot check video by "
                       "video: refine it in one process, without --shard/--skip-existing",
                       in);
            sola_dataset_free(d);
            return EXIT_RUNTIME;
        }
    sola_annotations *ann = NULL;
    if (o->annotations && sola_ann_load_ex(o->annotations, o->subset, NULL, &ann, &e)) {
        cli_errorf("%s", e.msg);
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    cli_rmeta *rm = cli_rmeta_new(o->names);
    outs os = {.dir = h5_only ? NULL : out};
    char meta_p[4200], miss_p[4200], in_meta[4200], in_miss[4200];
    cli_rmeta_paths(out, h5_only, meta_p, miss_p, sizeof meta_p);
    if (o->shards)
        cli_shard_part_paths(out, o->shard, o->shards, meta_p, miss_p, sizeof meta_p);
    cli_rmeta_paths(in, d->h5, in_meta, in_miss, sizeof in_meta);
    int inherited = 0;
    if (!rm) {
        cli_errorf("out of memory");
        sola_ann_free(ann);
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    if ((!h5_only && sola_mkdirs(out, 0755, &e)) || (h5path && open_h5(h5path, &os.joined, &e)) ||
        cli_rmeta_inherit(rm, in_miss, &inherited, &e) ||
        cli_rmeta_describe(rm, m, mpath, in, d, o->ct, run_fields(d, o, fixed_length(d)))) {
        cli_errorf("%s", e.msg[0] ? e.msg : "out of memory");
        close_outs(&os, 0, &e);
        cli_rmeta_free(rm);
        sola_ann_free(ann);
        sola_dataset_free(d);
        return EXIT_RUNTIME;
    }
    if (h5path && !strstr(h5path, ".hdf5"))
        fprintf(stderr, "note: %s: ActionFormer takes feat_folder for an HDF5 file only when "
                "its path contains \".hdf5\" (libs/datasets/anet.py); name it .hdf5 for it\n",
                h5path);
    if (inherited)
        fprintf(stderr, "%s: %d name%s carried over into %s\n", in_miss, inherited,
                inherited == 1 ? "" : "s", miss_p);
    cli_shard sh = {o->shard, o->shards};
    for (int i = 0; i < d->nskipped; i++)
        if (cli_shard_owns(&sh, d->skipped[i]))
            cli_errorf("skipped %s: %s", d->skipped[i], d->skip_why[i]);
    int scan_skipped = d->nskipped;
    unsigned char *mine = NULL;
    int *idx = NULL, ntodo = 0, kept = 0, planned = took && pf->planned;
    if (planned) { /* the plan made with the scan, while the model loaded */
        mine = pf->mine, idx = pf->idx, ntodo = pf->n, kept = pf->kept;
        pf->mine = NULL, pf->idx = NULL;
    }
    cli_progress p;
    cli_progress_init(&p);
    run r = {.d = d, .o = o, .os = &os, .p = &p};
    int64_t *Ts = malloc(sizeof *Ts * (size_t)(d->n + 1));
    if (!Ts || (!planned && plan(d, o, out, &mine, &idx, &ntodo, &kept))) {
        cli_errorf("out of memory");
        rc = EXIT_RUNTIME;
    } else {
        if (o->shards || o->skip_existing)
            cli_shard_clean_temps(out, d, mine);
        if (kept)
            fprintf(stderr, "%d video%s already refined in %s (--skip-existing): kept\n", kept,
                    kept == 1 ? "" : "s", out);
        for (int j = 0; j < ntodo; j++)
            Ts[j] = d->items[idx[j]].T;
        r.idx = idx;
        r.total = ntodo;
        r.lead = header_room(d, idx, ntodo);
        /* video 0 as read while the model loaded, when it is this run's first */
        cli_pipe_hooks hk = {.read = run_read, .finish = run_finish, .part = run_part,
                             .ud = &r, .lead = r.lead,
                             .first = pf && ntodo > 0 && pf->item == idx[0] ? &pf->first
                                                                           : NULL};
        cli_refine_pipe(m, ws, ntodo, Ts, &hk);
        if (r.pstate == 1) /* the run stopped before the last video's finish */
            sola_afile_abort(&r.pf);
        if (r.fatal)
            rc = EXIT_RUNTIME;
    }
    free(Ts);
    free(idx);
    free(r.tbase);
    long refined = r.refined, frames = r.frames;
    cli_progress_end(&p);
    if (close_outs(&os, rc == EXIT_OK, &e)) {
        cli_errorf("%s", e.msg);
        rc = EXIT_RUNTIME;
    }
    cli_rmeta_grid declared = {.fps = o->fps, .fps_from = "--fps", .stride = o->stride,
                               .frames = o->frames, .grid_from = "--stride/--frames"};
    int warned = 0;
    if (cli_rmeta_collect(rm, d, mine, h5_only ? NULL : out, &declared, 5, &warned, &e) ||
        (ann && cli_rmeta_annotations(rm, d, ann, 5, &warned, &e)) ||
        cli_rmeta_write(rm, meta_p, miss_p, &e)) {
        cli_errorf("%s", e.msg);
        rc = EXIT_RUNTIME;
    }
    free(mine);
    if (o->shards)
        fprintf(stderr, "shard %d/%d: refined %ld of its %d videos (%s) into %s, %d kept "
                "(%ld frames); the %d shards share %d videos\n", o->shard, o->shards, refined,
                ntodo + kept, d->layout, out, kept, frames, o->shards, d->n + scan_skipped);
    else
        fprintf(stderr, "refined %ld of %d videos (%s) into %s%s%s (%ld frames)\n", refined,
                d->n + scan_skipped, d->layout, out,
                o->h5_out && !h5_only ? " and " : "", o->h5_out && !h5_only ? o->h5_out : "",
                frames);
    int nmiss = cli_rmeta_nmissing(rm), nabsent = cli_rmeta_nabsent(rm);
    if (nabsent)
        cli_errorf("%d annotated video%s of %s %s no features in %s (named in %s)", nabsent,
                   nabsent == 1 ? "" : "s", o->annotations, nabsent == 1 ? "has" : "have", in,
                   miss_p);
    int nskip = 0; /* this shard's: a scan-time skip is its name's shard's to report */
    for (int i = 0; i < d->nskipped; i++)
        nskip += cli_shard_owns(&sh, d->skipped[i]);
    if (nskip) {
        cli_errorf("%d video%s skipped (%d name%s in %s)%s", nskip, nskip == 1 ? "" : "s",
                   nmiss, nmiss == 1 ? "" : "s", miss_p,
                   o->allow_missing ? "; --allow-missing: not an error" : "");
        if (!o->allow_missing)
            rc = EXIT_RUNTIME;
    }
    if (o->shards) {
        int mrc = merge_parts(out, o);
        if (mrc)
            rc = mrc;
    }
    cli_rmeta_free(rm);
    sola_ann_free(ann);
    sola_dataset_free(d);
    return rc;
}
