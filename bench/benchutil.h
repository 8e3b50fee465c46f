/* benchutil.h -- helpers the bench programs share: percentiles and
 * starting a solad of their own.
 *
 * Header-only (static functions) on purpose: CMake builds every bench .c file as its own
 * executable, so a shared .c file would become one more program. Each bench keeps
 * its own die() (the program name and exit code differ) and its own HTTP sink (what
 * each one records from a reply differs). */
#ifndef SOLA_BENCHUTIL_H
#define SOLA_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "clock.h" /* sola_now_s: seconds on the monotonic clock */


/* qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile (0..1, nearest rank) of v[0..n), n > 0; sorts v in place. */
static inline double bench_pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

#define BENCH_SOLAD_MAXARGS 32

/* Starts the solad next to `self` (argv[0]) listening on a free loopback port with
 * --data `data` and the NULL-terminated options `extra`, its stderr (the request log,
 * part of the daemon's cost) appended to data/solad.log. Writes the URL solad printed
 * on its first stdout line into base[0..n). Returns the pid, or -1 if it did not start
 * (not built next to the bench, bad options, too many options); the caller says so and
 * exits. The caller SIGTERMs and waits for the pid. */
static inline pid_t bench_spawn_solad(const char *self, const char *data,
                                      const char *const *extra, char *base, size_t n)
{
    char bin[4096], logp[4200];
    snprintf(bin, sizeof bin, "%s", self);
    char *slash = strrchr(bin, '/');
    snprintf(slash ? slash + 1 : bin, sizeof bin - (size_t)(slash ? slash + 1 - bin : 0),
             "solad");
    snprintf(logp, sizeof logp, "%s/solad.log", data);
    const char *args[BENCH_SOLAD_MAXARGS + 6] = {bin, "--listen", "127.0.0.1:0", "--data",
                                                 data};
    int na = 5;
    for (int i = 0; extra && extra[i]; i++) {
        if (i == BENCH_SOLAD_MAXARGS)
            return -1;
        args[na++] = extra[i];
    }
    args[na] = NULL;
    int pfd[2];
    if (pipe(pfd))
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (!freopen(logp, "a", stderr))
            _exit(127);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    close(pfd[1]);
    char line[256];
    ssize_t k = read(pfd[0], line, sizeof line - 1);
    close(pfd[0]);
    line[k > 0 ? k : 0] = '\0';
    const char *p = strstr(line, "http://");
    if (!p)
        return -1;
    snprintf(base, n, "%.*s", (int)strcspn(p, "\r\n"), p);
    return pid;
}

#endif
