/* layouts_h5.c -- HDF5 feature files as datasets (see layouts.h): one file of one
 * dataset (or group) per video, or a folder of such files where rgb/flow pairs are
 * joined per video, as G-TAD reads its THUMOS features (gtad_lib/dataset.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "layouts.h"

/* Lists the videos of one file: the 2-D float datasets under "/"; in a file without
 * any, the groups holding exactly one. *nf gets the number selected (en[i].is_feature
 * is cleared for the rest); *grouped is 1 when they are groups. */
static int h5_videos(const char *path, sola_h5_entry **en, int *n, int *nf, int *grouped,
                     sola_err *e)
{
    int rc = sola_h5_list(path, en, n, e);
    if (rc)
        return rc;
    int flat = 0, grp = 0;
    for (int i = 0; i < *n; i++) {
        flat += (*en)[i].is_feature && !(*en)[i].in_group;
        grp += (*en)[i].is_feature && (*en)[i].in_group;
    }
    if (flat)
        for (int i = 0; i < *n; i++)
            if ((*en)[i].in_group) {
                (*en)[i].is_feature = 0; /* flat datasets are the videos; groups are extras */
                snprintf((*en)[i].what, sizeof (*en)[i].what, "group");
            }
    *nf = flat ? flat : grp;
    *grouped = !flat && grp;
    if (!*nf) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: no 2-D float datasets under '/', nor groups "
                       "holding one (it holds %d entries%s%s%s%s)", path, *n,
                       *n ? "; first: '" : "", *n ? (*en)[0].name : "", *n ? "', a " : "",
                       *n ? (*en)[0].what : "");
        sola_h5_list_free(*en, *n);
        *en = NULL;
        *n = 0;
    }
    return rc;
}

static int add_item(sola_dataset *d, int *cap, int kind, const char *name, const char *file,
                    const char *file2, const char *key, sola_err *e)
{
    if (d->n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        sola_dataset_item *ni = realloc(d->items, (size_t)nc * sizeof *ni);
        if (!ni)
            return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
        d->items = ni;
        *cap = nc;
    }
    sola_dataset_item *it = &d->items[d->n];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->name = strdup(name);
    it->file = strdup(file);
    it->file2 = file2 ? strdup(file2) : NULL;
    it->key = key ? strdup(key) : NULL;
    if (!it->name || !it->file || (file2 && !it->file2) || (key && !it->key)) {
        sola_layout_item_free(it);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
    }
    d->n++;
    return 0;
}

int sola_layout_h5_list(sola_dataset *d, sola_err *e)
{
    sola_h5_entry *en;
    int n, nf, grouped, cap = 0, rc = h5_videos(d->dir, &en, &n, &nf, &grouped, e);
    if (rc)
        return rc;
    d->layout = grouped ? "hdf5 (one group per video)" : "hdf5";
    for (int i = 0; i < n && !rc; i++)
        if (en[i].is_feature) /* others: labels, fps or metadata kept beside the features */
            rc = add_item(d, &cap, SOLA_ITEM_H5, en[i].name, en[i].key, NULL, NULL, e);
    sola_h5_list_free(en, n);
    return rc;
}

/* The partner of an rgb file: its name with "rgb" (found once) replaced by "flow". */
static int flow_name(const char *rgb, char *out, size_t n)
{
    const char *p = strstr(rgb, "rgb");
    if (!p || strstr(p + 1, "rgb"))
        return -1;
    int w = snprintf(out, n, "%.*sflow%s", (int)(p - rgb), rgb, p + 3);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static int find_file(char **files, int n, const char *f)
{
    for (int i = 0; i < n; i++)
        if (files[i] && !strcmp(files[i], f))
            return i;
    return -1;
}

/* Index of the selected video `name` in a listing, or -1. */
static int find_video(const sola_h5_entry *en, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (en[i].is_feature && !strcmp(en[i].name, name))
            return i;
    return -1;
}

/* Skips (or, without skip_bad, fails on) a video only one file of a pair holds. */
static int lonely(sola_dataset *d, int skip_bad, const char *name, const char *has,
                  const char *lacks, sola_err *e)
{
    char why[1200];
    snprintf(why, sizeof why, "%s/%s: '%s' has no partner in %s (rgb/flow HDF5 pairs need "
             "both streams)", d->dir, has, name, lacks);
    if (!skip_bad)
        return sola_errf(e, SOLA_ENOTFOUND, "%s", why);
    return sola_dataset_note_skip(d, name, why) ? sola_errf(e, SOLA_ENOMEM, "%s: out of "
                                                            "memory", d->dir)
                                                : 0;
}

/* One rgb/flow pair of files into items. */
static int add_pair(sola_dataset *d, int *cap, const char *fr, const char *ff, int skip_bad,
                    sola_err *e)
{
    char pr[4096], pf[4096];
    snprintf(pr, sizeof pr, "%s/%s", d->dir, fr);
    snprintf(pf, sizeof pf, "%s/%s", d->dir, ff);
    sola_h5_entry *er = NULL, *ef = NULL;
    int nr = 0, nf = 0, sr, sf, g;
    int rc = h5_videos(pr, &er, &nr, &sr, &g, e);
    if (!rc)
        rc = h5_videos(pf, &ef, &nf, &sf, &g, e);
    for (int i = 0; i < nr && !rc; i++) {
        if (!er[i].is_feature)
            continue;
        int j = find_video(ef, nf, er[i].name);
        if (j < 0)
            rc = lonely(d, skip_bad, er[i].name, fr, ff, e);
        else if (strcmp(er[i].key, ef[j].key))
            rc = lonely(d, skip_bad, er[i].name, fr, ff, e);
        else
            rc = add_item(d, cap, SOLA_ITEM_H5DIR, er[i].name, fr, ff, er[i].key, e);
    }
    for (int j = 0; j < nf && !rc; j++)
        if (ef[j].is_feature && find_video(er, nr, ef[j].name) < 0)
            rc = lonely(d, skip_bad, ef[j].name, ff, fr, e);
    sola_h5_list_free(er, nr);
    sola_h5_list_free(ef, nf);
    return rc;
}

int sola_layout_h5dir(sola_dataset *d, int skip_bad, sola_err *e)
{
    int nfiles = d->n, cap = 0, rc = 0, pairs = 0;
    char **files = calloc((size_t)nfiles + 1, sizeof *files);
    if (!files)
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", d->dir);
    for (int i = 0; i < nfiles; i++) { /* the listing becomes the file list */
        files[i] = d->items[i].file;
        d->items[i].file = NULL;
        sola_layout_item_free(&d->items[i]);
    }
    free(d->items);
    d->items = NULL;
    d->n = 0;
    char partner[4096];
    for (int i = 0; i < nfiles && !rc; i++) {
        int j;
        if (!files[i] || flow_name(files[i], partner, sizeof partner) ||
            (j = find_file(files, nfiles, partner)) < 0)
            continue;
        rc = add_pair(d, &cap, files[i], files[j], skip_bad, e);
        free(files[i]);
        free(files[j]);
        files[i] = files[j] = NULL;
        pairs++;
    }
    for (int i = 0; i < nfiles && !rc; i++) {
        if (!files[i])
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", d->dir, files[i]);
        sola_h5_entry *en;
        int n, nf, g;
        if ((rc = h5_videos(p, &en, &n, &nf, &g, e)))
            break;
        for (int k = 0; k < n && !rc; k++)
            if (en[k].is_feature)
                rc = add_item(d, &cap, SOLA_ITEM_H5DIR, en[k].name, files[i], NULL, en[k].key,
                              e);
        sola_h5_list_free(en, n);
    }
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    d->layout = pairs ? "hdf5 rgb+flow files" : "hdf5 files";
    if (!rc && d->n == 0)
        rc = sola_errf(e, SOLA_EFORMAT, "%s: its HDF5 files hold no video that both files "
                       "of a pair have", d->dir);
    return rc;
}
