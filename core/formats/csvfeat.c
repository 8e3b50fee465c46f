/* csvfeat.c -- BMN/BSN feature CSV (csv_mean_100: a header row, then 100 rows of 400
 * comma-separated numbers), read and written (see csvfeat.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvfeat.h"
#include "fsutil.h"

/* End of the line starting at p (the '\n' or end), bounded by end. */
static const char *line_end(const char *p, const char *end)
{
    const char *q = memchr(p, '\n', (size_t)(end - p));
    return q ? q : end;
}

/* Blank line (spaces, tabs, '\r' only). */
static int blank(const char *p, const char *q)
{
    for (; p < q; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return 0;
    return 1;
}

static int64_t count_fields(const char *p, const char *q)
{
    int64_t n = 1;
    for (; p < q; p++)
        n += *p == ',';
    return n;
}

int sola_csv_load(const char *path, sola_array *out, char **header, sola_err *e)
{
    memset(out, 0, sizeof *out);
    if (header)
        *header = NULL;
    sola_map m;
    int rc = sola_map_file(path, &m, e);
    if (rc)
        return rc;
    const char *p = m.data, *end = p + m.len;
    if (!m.len) {
        sola_unmap(&m);
        return sola_errf(e, SOLA_EFORMAT, "%s: empty file (expected a header row and rows "
                         "of numbers)", path);
    }
    const char *h = line_end(p, end);
    size_t hl = (size_t)(h - p);
    while (hl && p[hl - 1] == '\r')
        hl--;
    /* Count data rows and take the column count from the first one. */
    int64_t rows = 0, cols = 0;
    for (const char *l = h < end ? h + 1 : end; l < end;) {
        const char *q = line_end(l, end);
        if (!blank(l, q)) {
            if (!rows)
                cols = count_fields(l, q);
            rows++;
        }
        l = q < end ? q + 1 : end;
    }
    size_t n;
    if (!rows) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: no data rows after the header row", path);
        goto out;
    }
    if (sola_mul_size((size_t)rows, (size_t)cols, &n) || sola_mul_size(n, sizeof(float), &n)) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s: %lld x %lld values is too large", path,
                       (long long)rows, (long long)cols);
        goto out;
    }
    if (!(out->data = malloc(n)) || (header && !(*header = strndup(p, hl)))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    int64_t r = 0, lineno = 1;
    for (const char *l = h < end ? h + 1 : end; l < end && !rc;) {
        const char *q = line_end(l, end);
        lineno++;
        if (!blank(l, q)) {
            int64_t c = 0;
            for (const char *f = l; f <= q && !rc; c++) {
                const char *fe = memchr(f, ',', (size_t)(q - f));
                fe = fe ? fe : q;
                char num[64];
                size_t fl = (size_t)(fe - f);
                while (fl && (f[fl - 1] == '\r' || f[fl - 1] == ' '))
                    fl--;
                while (fl && *f == ' ')
                    f++, fl--;
                char *stop = NULL;
                if (c < cols && fl && fl < sizeof num) {
                    memcpy(num, f, fl);
                    num[fl] = 0;
                    out->data[r * cols + c] = strtof(num, &stop);
                }
                if (c >= cols)
                    rc = sola_errf(e, SOLA_EFORMAT, "%s:%lld: %lld values, the first row has "
                                   "%lld", path, (long long)lineno,
                                   (long long)count_fields(l, q), (long long)cols);
                else if (!stop || *stop)
                    rc = sola_errf(e, SOLA_EFORMAT, "%s:%lld: column %lld: '%.*s' is not a "
                                   "number", path, (long long)lineno, (long long)c + 1,
                                   (int)(fl < 32 ? fl : 32), f);
                f = fe + 1;
            }
            if (!rc && c != cols)
                rc = sola_errf(e, SOLA_EFORMAT, "%s:%lld: %lld values, the first row has %lld",
                               path, (long long)lineno, (long long)c, (long long)cols);
            r++;
        }
        l = q < end ? q + 1 : end;
    }
    if (!rc) {
        out->ndim = 2;
        out->shape[0] = rows;
        out->shape[1] = cols;
    }
out:
    if (rc) {
        sola_array_free(out);
        if (header) {
            free(*header);
            *header = NULL;
        }
    }
    sola_unmap(&m);
    return rc;
}

int sola_csv_save(const char *path, const char *header, const float *data, int64_t rows,
                  int64_t cols, sola_err *e)
{
    sola_afile a;
    int rc = sola_afile_open(&a, path, e);
    if (rc)
        return rc;
    char buf[64];
    if (header) {
        if ((rc = sola_afile_write(&a, header, strlen(header), e)) ||
            (rc = sola_afile_write(&a, "\n", 1, e)))
            goto err;
    } else {
        for (int64_t c = 0; c < cols; c++) {
            int k = snprintf(buf, sizeof buf, c + 1 < cols ? "%lld," : "%lld\n", (long long)c);
            if ((rc = sola_afile_write(&a, buf, (size_t)k, e)))
                goto err;
        }
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int k = snprintf(buf, sizeof buf, c + 1 < cols ? "%.9g," : "%.9g\n",
                             (double)data[r * cols + c]);
            if ((rc = sola_afile_write(&a, buf, (size_t)k, e)))
                goto err;
        }
    return sola_afile_commit(&a, e);
err:
    sola_afile_abort(&a);
    return rc;
}
