/* refine_shard.c -- which videos a shard refines, whether an output is already
 * complete, what a killed run left behind, and the merge of the shards' parts of
 * refine_meta.json / missing_files.txt (see refine_shard.h). */
#include "refine_shard.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "csvfeat.h"
#include "fsutil.h"
#include "layouts.h"
#include "npy.h"
#include "npz.h"
#include "refine_meta_int.h"

int cli_shard_resolve(const char *flag, long shards, cli_shard *s, char *msg, size_t n)
{
    s->index = s->count = 0;
    if (flag) {
        const char *sl = strchr(flag, '/');
        char i_s[32];
        long i, c;
        if (!sl || (size_t)(sl - flag) >= sizeof i_s) {
            snprintf(msg, n, "--shard wants I/N (this process's index from 0, of N), got '%s'",
                     flag);
            return -1;
        }
        snprintf(i_s, sizeof i_s, "%.*s", (int)(sl - flag), flag);
        if (sola_parse_long(sl + 1, 1, CLI_SHARD_MAX, &c) || sola_parse_long(i_s, 0, c - 1, &i)) {
            snprintf(msg, n, "--shard wants I/N with 0 <= I < N <= %d, got '%s'", CLI_SHARD_MAX,
                     flag);
            return -1;
        }
        if (shards && shards != c) {
            snprintf(msg, n, "--shard %s and --shards %ld disagree on the count", flag, shards);
            return -1;
        }
        s->index = (int)i;
        s->count = (int)c;
        return 0;
    }
    const char *idx = getenv("JOB_COMPLETION_INDEX"), *cnt = getenv("JOB_COMPLETIONS");
    if (!idx || !*idx) {
        if (shards) {
            snprintf(msg, n, "--shards N takes this process's index from JOB_COMPLETION_INDEX "
                     "(a Kubernetes Indexed Job sets it), which is not set; outside a Job "
                     "use --shard I/N");
            return -1;
        }
        return 0;
    }
    long c = shards, i;
    if (!c && cnt && *cnt && sola_parse_long(cnt, 1, CLI_SHARD_MAX, &c)) {
        snprintf(msg, n, "JOB_COMPLETIONS='%s' is not a shard count (1..%d)", cnt,
                 CLI_SHARD_MAX);
        return -1;
    }
    if (!c) {
        snprintf(msg, n, "JOB_COMPLETION_INDEX=%s is set (a Kubernetes Indexed Job) but not "
                 "how many shards there are: pass --shards N (the Job's completions) or set "
                 "JOB_COMPLETIONS", idx);
        return -1;
    }
    if (sola_parse_long(idx, 0, c - 1, &i)) {
        snprintf(msg, n, "JOB_COMPLETION_INDEX='%s' is not an index below the %ld shards", idx,
                 c);
        return -1;
    }
    s->index = (int)i;
    s->count = (int)c;
    return 0;
}

uint64_t cli_shard_hash(const char *name)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int cli_shard_owns(const cli_shard *s, const char *name)
{
    return s->count < 2 || cli_shard_hash(name) % (uint64_t)s->count == (uint64_t)s->index;
}

static size_t trimmed(const char *out)
{
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/')
        l--;
    return l;
}

void cli_shard_part_paths(const char *out, int index, int count, char *meta, char *miss,
                          size_t n)
{
    int l = (int)trimmed(out);
    snprintf(meta, n, "%.*s/refine_meta.%d-of-%d.json", l, out, index, count);
    snprintf(miss, n, "%.*s/missing_files.%d-of-%d.txt", l, out, index, count);
}

/* ---- complete outputs ------------------------------------------------------------- */

static int npy_complete(const char *path, int64_t rows, int64_t cols)
{
    sola_map mp;
    sola_err e = {0};
    if (sola_map_file(path, &mp, &e))
        return 0;
    sola_npy_info in;
    int ok = mp.data && !sola_npy_inspect(mp.data, mp.len, path, 0, &in, &e) &&
             !strcmp(in.descr, "<f4") && !in.fortran && in.ndim == 2 &&
             in.shape[0] == rows && in.shape[1] == cols && in.data_off + in.data_len == mp.len;
    sola_unmap(&mp);
    return ok;
}

static int npz_complete(const char *path, int64_t rows, int64_t cols)
{
    sola_npz z;
    sola_err e = {0};
    if (sola_npz_open(path, &z, &e))
        return 0;
    int k = sola_npz_pick(&z, path, &e), ok = 0;
    sola_array a = {0};
    if (k >= 0 && !sola_npz_read(&z, k, 0, &a, &e))
        ok = a.ndim == 2 && a.shape[0] == rows && a.shape[1] == cols;
    sola_array_free(&a);
    sola_npz_close(&z);
    return ok;
}

static int csv_complete(const char *path, int64_t rows, int64_t cols)
{
    sola_array a = {0};
    char *hdr = NULL;
    sola_err e = {0};
    int ok = !sola_csv_load(path, &a, &hdr, &e) && a.shape[0] == rows && a.shape[1] == cols;
    sola_array_free(&a);
    free(hdr);
    return ok;
}

int cli_output_complete(const char *path, int64_t rows, int64_t cols)
{
    if (access(path, F_OK))
        return 0;
    if (sola_has_ext(path, ".npz"))
        return npz_complete(path, rows, cols);
    if (sola_has_ext(path, ".csv"))
        return csv_complete(path, rows, cols);
    return npy_complete(path, rows, cols);
}

/* ---- what a killed run left ------------------------------------------------------- */

/* 1 if `file` (an output name: NAME.npy, NAME_fps.npy, ...) is an item's of ours. */
static int ours(const sola_dataset *d, const unsigned char *mine, const char *file)
{
    char stem[4096];
    snprintf(stem, sizeof stem, "%s", file);
    char *dot = strrchr(stem, '.');
    if (dot)
        *dot = 0;
    int i = sola_dataset_find(d, stem);
    static const char *const sib[] = {"_fps", "_timestamps_ms"};
    for (size_t s = 0; i < 0 && s < sizeof sib / sizeof *sib; s++) {
        size_t l = strlen(stem), k = strlen(sib[s]);
        if (l > k && !strcmp(stem + l - k, sib[s])) {
            stem[l - k] = 0;
            i = sola_dataset_find(d, stem);
            stem[l - k] = sib[s][0];
        }
    }
    return i >= 0 && (!mine || mine[i]);
}

int cli_shard_clean_temps(const char *out, const sola_dataset *d, const unsigned char *mine)
{
    DIR *dir = opendir(out);
    if (!dir)
        return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        /* ".FILE.tmp.PID.N" */
        const char *nm = de->d_name, *t = NULL;
        if (nm[0] != '.')
            continue;
        for (const char *p = strstr(nm, ".tmp."); p; p = strstr(p + 1, ".tmp."))
            t = p;
        if (!t || t == nm)
            continue;
        char file[4096], p[8300];
        snprintf(file, sizeof file, "%.*s", (int)(t - nm - 1), nm + 1);
        if (!ours(d, mine, file))
            continue;
        snprintf(p, sizeof p, "%s/%s", out, nm);
        if (!unlink(p)) {
            fprintf(stderr, "removed %s (a temporary file of a run that was killed)\n", p);
            removed++;
        }
    }
    closedir(dir);
    return removed;
}

/* ---- the merge -------------------------------------------------------------------- */

/* The shard count of the parts in out (0: none), or -1 when parts of two counts are
 * there (a and b get them). */
static int parts_count(const char *out, int *a, int *b)
{
    DIR *dir = opendir(out);
    *a = *b = 0;
    if (!dir)
        return 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        int i, c, end = 0;
        if (sscanf(de->d_name, "refine_meta.%d-of-%d.json%n", &i, &c, &end) != 2 ||
            de->d_name[end] || c < 1 || i < 0 || i >= c)
            continue;
        if (!*a)
            *a = c;
        else if (c != *a && !*b)
            *b = c;
    }
    closedir(dir);
    return *b ? -1 : *a;
}

int cli_shard_merge(const char *out, int count, sola_err *e)
{
    if (!count) {
        int a, b;
        count = parts_count(out, &a, &b);
        if (count < 0)
            return sola_errf(e, SOLA_EINVAL, "%s holds parts of %d shards and of %d: pass "
                             "--shards N, or remove the parts of the run that is over", out,
                             a, b);
        if (!count)
            return sola_errf(e, SOLA_ENOTFOUND, "%s: no refine_meta.I-of-N.json parts (written "
                             "by sola refine --shard I/N)", out);
    }
    char meta[4200], miss[4200];
    size_t l = 0;
    int absent = 0;
    e->msg[0] = 0;
    for (int i = 0; i < count; i++) {
        cli_shard_part_paths(out, i, count, meta, miss, sizeof meta);
        if (!access(meta, F_OK))
            continue;
        if (!absent++)
            l = (size_t)snprintf(e->msg, sizeof e->msg, "%s: no part yet from shard", out);
        if (l < sizeof e->msg)
            l += (size_t)snprintf(e->msg + l, sizeof e->msg - l, " %d/%d", i, count);
    }
    if (absent)
        return 1;
    cli_rmeta *all = NULL;
    int rc = 0;
    for (int i = 0; i < count && !rc; i++) {
        cli_rmeta *p = NULL;
        cli_shard_part_paths(out, i, count, meta, miss, sizeof meta);
        if (!(rc = cli_rmeta_load(meta, &p, e))) {
            if (!all) {
                all = p;
                continue;
            }
            rc = cli_rmeta_merge(all, p, e);
            if (rc)
                snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg), " (%s)",
                         meta);
        }
        cli_rmeta_free(p);
    }
    if (!rc) {
        json_object_del(all->head, "shard");
        int n = (int)trimmed(out);
        snprintf(meta, sizeof meta, "%.*s/refine_meta.json", n, out);
        snprintf(miss, sizeof miss, "%.*s/missing_files.txt", n, out);
        rc = cli_rmeta_write(all, meta, miss, e);
    }
    cli_rmeta_free(all);
    return rc;
}
