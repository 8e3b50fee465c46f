/* main.c -- solad: setup, run, teardown (its flags: options.c). Exit codes: 0 after a
 * drain (also on the drain deadline), 1 when it cannot start, 2 on a usage error. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "batcher.h"
#include "bufcache.h"
#include "gemm.h"
#include "fsutil.h"
#include "jobs.h"
#include "options.h"
#include "server.h"
#include "streams.h"

/* Appends one name of --allowed-hosts (lower-cased; ".example.com" = the domain and
 * its subdomains). 0, or -1 when it is not a host name. */
static int add_host(api_hosts *hs, const char *p, size_t n)
{
    if (n == 0 || n > 253)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
            return -1;
    if (n >= 2 && p[n - 1] == '.')
        n--;
    char **names = realloc(hs->names, (size_t)(hs->n + 1) * sizeof *names);
    if (!names)
        return -1;
    hs->names = names;
    if (!(names[hs->n] = strndup(p, n)))
        return -1;
    for (size_t i = 0; i < n; i++)
        names[hs->n][i] = (char)tolower((unsigned char)names[hs->n][i]);
    hs->n++;
    return 0;
}

/* --allowed-hosts LIST ("*" = any), then this machine's host name and the --listen
 * host when it is a name (api/origin.c adds IP literals, localhost, single-label and
 * cluster-internal names itself). 0, or 2 after a usage error. */
static int build_hosts(api_hosts *hs, const char *list, const char *listen)
{
    if (list && strcmp(list, "*") == 0) {
        hs->any = 1;
        return 0;
    }
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        const char *q = p;
        size_t m = n;
        while (m && (*q == ' ')) q++, m--;
        while (m && q[m - 1] == ' ') m--;
        if (add_host(hs, q, m)) {
            char bad_name[300];
            snprintf(bad_name, sizeof bad_name, "%.*s", (int)(n < 256 ? n : 256), p);
            return srv_usage_error("--allowed-hosts: '%s' is not a host name (expected NAME "
                                   "or .DOMAIN, comma-separated, or * for any)",
                                   bad_name);
        }
        p += n + (p[n] == ',');
    }
    char me[256];
    if (gethostname(me, sizeof me) == 0) {
        me[sizeof me - 1] = '\0';
        add_host(hs, me, strlen(me)); /* a name our own check would refuse is skipped */
    }
    const char *colon = strrchr(listen, ':');
    if (colon && listen[0] != '[')
        add_host(hs, listen, (size_t)(colon - listen));
    return 0;
}

/* The token is the file's content without surrounding whitespace; it must be
 * visible ASCII (RFC 6750's b64token is a subset). A NUL would cut it short where
 * it is compared (a file starting with NUL made the empty token valid) and other
 * control bytes cannot be sent in a header, so such files are refused, not trimmed. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "solad: --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const char *why = NULL;
    size_t a = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                 buf[n - 1] == '\t'))
        n--;
    while (a < n && (buf[a] == ' ' || buf[a] == '\t'))
        a++;
    if (n == sizeof buf)
        why = "is longer than 4096 bytes";
    else if (a == n)
        why = "is empty (after removing surrounding whitespace)";
    for (size_t i = a; i < n && !why; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0)
            why = "holds a NUL byte";
        else if (c == '\n' || c == '\r')
            why = "has more than one line";
        else if (c < 0x21 || c == 0x7f)
            why = "holds a control or space character";
        else if (c > 0x7e)
            why = "holds a non-ASCII byte";
    }
    if (why) {
        fprintf(stderr, "solad: --token-file %s: the token %s; write one line of visible "
                "ASCII characters (e.g. openssl rand -hex 32 > FILE)\n", path, why);
        return NULL;
    }
    buf[n] = '\0';
    return strdup(buf + a);
}

/* Removes uploads that a dead solad left in DATA/tmp (445 MB after 8 kill -9 in the
 * round-2 tests). Replicas share the directory, so a file still being written by a
 * live replica must survive another's start: its writer holds a flock on it for as
 * long as the request lives (server/http.c), and the kernel drops that lock when the
 * process dies. A file created in the last UPLOAD_YOUNG_S seconds is left alone too
 * (between mkstemp and flock it has no lock yet). */
#define UPLOAD_YOUNG_S 5
static void clean_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    struct stat st;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "upload.", 7) != 0 ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || now - st.st_mtime < UPLOAD_YOUNG_S)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) /* nobody is writing it */
            unlinkat(dirfd(d), de->d_name, 0);
        close(fd);
    }
    closedir(d);
}

static void reg_log(void *arg, const char *level, const char *msg)
{
    srv_logf(arg, level, "%s", msg);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--train-worker")) /* a training job's process */
        return srv_train_worker_main(argc, argv);
    /* Request bodies and arrays of a few MB come and go on many threads. glibc raises
     * its mmap threshold after the first such free (up to 32 MB), so they then live in
     * the heap arenas, which fragment: RSS climbed from 112 to 151 MiB over a 4-minute
     * soak with no leak. A fixed threshold keeps them mmap'ed and returned on free
     * (RSS flat at ~37 MiB, same throughput; docs/reliability.md, R2). MALLOC_* in the
     * environment still wins: mallopt is skipped when the operator set one. */
    if (!getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* OpenBLAS's helper threads busy-wait for about 2^28 cycles (~0.1 s) after every
     * call before they sleep. Between requests that spinning takes the cores from the
     * loop thread, from other workers and from training; measured (docs/daemon.md) it
     * made a competing compute up to twice as slow. OpenBLAS reads the timeout once,
     * from the environment, when it loads -- before main -- so set it and run again
     * (once: the variable then exists; an operator's own value is kept). */
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        execv("/proc/self/exe", argv);
        /* exec failed: carry on with OpenBLAS's default */
    }
    static srv s; /* static: lives as long as the worker threads may */
    srv_config *c = &s.cfg;
    int rc = srv_options(argc, argv, c);
    if (rc >= 0)
        return rc;

    /* libuv sizes its (process-wide) threadpool once, at the first uv_queue_work:
     * the workers are that pool. With batching the pool only parses and encodes and
     * the batcher's --workers threads compute, so the pool is as large as the requests
     * that may be admitted at once (each waits in the batcher for its pass). */
    char nbuf[16];
    int pool = c->workers;
    if (c->max_batch_frames > 0)
        pool = c->workers + (c->queue < 128 ? c->queue : 128);
    snprintf(nbuf, sizeof nbuf, "%d", pool < 1024 ? pool : 1024);
    setenv("UV_THREADPOOL_SIZE", nbuf, 1);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (c->threads == 0)
        c->threads = ncpu > c->workers ? (int)(ncpu / c->workers) : 1;
    sola_gemm_set_threads(c->threads); /* each compute thread takes it (core/model/gemm.h) */
    signal(SIGPIPE, SIG_IGN);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    s.start_time = (double)tv.tv_sec + tv.tv_usec / 1e6;
    s.listen_fd = -1;
    pthread_mutex_init(&s.pool.mu, NULL);
    rc = 1;
    sola_err e = {0};
    if (c->token_file && !(s.token = read_token(c->token_file)))
        return 1;
    if (build_hosts(&s.hosts, c->allowed_hosts, c->listen))
        return 2;
    if (c->data_dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/models", c->data_dir);
        if (sola_mkdirs(p, 0755, &e)) {
            fprintf(stderr, "solad: --data %s: %s\n", c->data_dir, e.msg);
            goto out;
        }
        snprintf(p, sizeof p, "%s/tmp", c->data_dir);
        if (sola_mkdirs(p, 0755, &e)) {
            fprintf(stderr, "solad: --data %s: %s\n", c->data_dir, e.msg);
            goto out;
        }
        clean_tmp(p);
        s.tmp_dir = strdup(p);
    } else {
        const char *t = getenv("TMPDIR");
        s.tmp_dir = strdup(t && *t ? t : "/tmp");
    }
    s.met = metrics_new();
    if (!s.tmp_dir || !s.met) {
        fprintf(stderr, "solad: out of memory\n");
        goto out;
    }
    s.reg = c->models_dir ? reg_new_store(c->models_dir, c->default_model, reg_log, &s, &e)
                          : reg_new(c->data_dir, c->dim, c->default_model, reg_log, &s, &e);
    if (!s.reg) {
        fprintf(stderr, "solad: %s\n", e.msg);
        goto out;
    }
    s.loop = uv_default_loop();
    if (!(s.streams = srv_streams_new(s.reg, c->max_streams, c->stream_idle_ms)) ||
        srv_streams_start_timer(s.streams, s.loop, &s.draining)) {
        fprintf(stderr, "solad: out of memory\n");
        goto out;
    }
    srv_backend_init(&s);
    s.start_ms = uv_now(s.loop);
    if (c->data_dir && !(s.jobs = srv_jobs_start(&s, &e))) {
        fprintf(stderr, "solad: training jobs: %s\n", e.msg);
        goto out;
    }
    s.ctx.jobs = s.jobs ? &srv_jobs_be : NULL;
    if (c->max_batch_frames > 0 &&
        !(s.batcher = batcher_new(c->workers, c->batch_window_us, c->max_batch_frames,
                                  &s.running, &e))) {
        fprintf(stderr, "solad: %s\n", e.msg);
        goto out;
    }
    /* freed request buffers kept for reuse: enough for a lone T = 2304 request (its
     * body and its reply), a small part of the budget (bufcache.h) */
    size_t keep = c->max_inflight / 8 < ((size_t)48 << 20) ? c->max_inflight / 8
                                                           : (size_t)48 << 20;
    if (!(s.bufs = bufcache_new(keep))) {
        fprintf(stderr, "solad: out of memory\n");
        goto out;
    }
    if (srv_http_start(&s))
        goto out;
    char blaswarn[512];
    if (sola_gemm_env_warning(blaswarn, sizeof blaswarn))
        srv_logf(&s, "warn", "%s", blaswarn);
    printf("solad listening on http://%s\n", s.bound);
    fflush(stdout);
    srv_logf(&s, "info",
             "listening on http://%s (models: %d, workers: %d, BLAS threads each: %d, "
             "queue: %d, max body: %zu bytes, max T: %d%s)",
             s.bound, reg_nmodels(s.reg), c->workers, c->threads, c->queue, c->max_body,
             c->max_frames, s.token ? ", bearer token required on mutating routes" : "");
    if (c->role == SRV_ROLE_SERVE)
        srv_logf(&s, "info", "--serve-only: training jobs posted here run on the solad that "
                             "holds %s/jobs/trainer.lock", c->data_dir);
    if (c->models_dir)
        srv_logf(&s, "info", "serving the read-only model store %s (--models-dir)",
                 c->models_dir);
    /* systemd (Type=notify): ready once the models are loaded and the port is open */
    srv_notify(&s, "READY=1\nSTATUS=serving %d models on http://%s", reg_nmodels(s.reg),
               s.bound);
    srv_http_run(&s);
    srv_jobs_stop(s.jobs); /* a running job checkpoints and becomes interrupted */
    s.jobs = NULL;
    srv_logf(&s, "info", "drained; exiting");
    rc = 0;
out:
    srv_jobs_stop(s.jobs);
    batcher_free(s.batcher); /* drained: nobody waits in it any more */
    if (s.loop) {
        srv_streams_stop_timer(s.streams);
        uv_run(s.loop, UV_RUN_NOWAIT); /* completes the timer's close */
        uv_loop_close(s.loop);
    }
    srv_streams_free(s.streams); /* open streams end; their models are released */
    reg_free(s.reg);
    metrics_free(s.met);
    srv_ws_free_all(&s);
    bufcache_free(s.bufs); /* after MHD: its replies hold buffers until it stops */
    free(s.tmp_dir);
    free(s.token);
    for (int i = 0; i < s.hosts.n; i++)
        free(s.hosts.names[i]);
    free(s.hosts.names);
    return rc;
}
