/* util.c -- flag parsing, messages and progress display shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "gemm.h"
#include "model.h"

void cli_errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sola: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage(const char *usage, const char *fmt, ...)
{
    /* The usage first and the error last, where a terminal leaves the eye. The
     * command's name is the first two words of its usage ("sola refine"). */
    fprintf(stderr, "usage: %s\n", usage);
    const char *sp = strchr(usage, ' ');
    int n = sp && strchr(sp + 1, ' ') ? (int)(strchr(sp + 1, ' ') - usage) : (int)strlen(usage);
    va_list ap;
    va_start(ap, fmt);
    fputs("sola: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " ('%.*s --help' explains every option)\n", n, usage);
    return EXIT_USAGE;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

double cli_now(void)
{
    return sola_now_s(); /* core/clock.h */
}

void cli_progress_init(cli_progress *p)
{
    p->tty = isatty(STDERR_FILENO);
    p->start = cli_now();
    p->last = -1e9;
    p->interval = p->tty ? 0.1 : 5.0;
}

void cli_progress_update(cli_progress *p, const char *label, long done, long total,
                         const char *unit, const char *extra)
{
    double now = cli_now();
    if (done != total && now - p->last < p->interval)
        return;
    p->last = now;
    double el = now - p->start;
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 && total > done ? (total - done) / rate : 0;
    if (p->tty) {
        int width = 24, fill = total > 0 ? (int)(width * (double)done / total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld %s  %.1f %s/s  ETA %.0fs  %s\033[K", label, bar,
                done, total, unit, rate, unit, eta, extra ? extra : "");
    } else {
        fprintf(stderr, "%s: %ld/%ld %s, %.1f %s/s, ETA %.0fs%s%s\n", label, done, total, unit,
                rate, unit, eta, extra ? ", " : "", extra ? extra : "");
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->tty) {
        fputc('\n', stderr);
        fflush(stderr);
    }
}

sola_model *cli_load_model(const char *path)
{
    return cli_load_model_ex(path, 0);
}

sola_model *cli_load_model_ex(const char *path, size_t min_rows)
{
    sola_err e = {0};
    sola_model *m = sola_model_load_ex(path, min_rows, &e);
    if (!m)
        cli_errorf("%s", e.msg);
    return m;
}

void cli_set_threads(int n)
{
    if (n > 0)
        sola_gemm_set_threads(n);
}
