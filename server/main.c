/* main.c -- solad: flags, setup, run, teardown. Exit codes: 0 after a drain (also on
 * the drain deadline), 1 when it cannot start, 2 on a usage error. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
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
#include "gemm.h"
#include "fsutil.h"
#include "jobs.h"
#include "server.h"
#include "streams.h"

static const char usage[] =
    "usage: solad [options]\n"
    "  --listen HOST:PORT     address to serve on (default 127.0.0.1:8080; port 0 = any\n"
    "                         free port, printed on stdout)\n"
    "  --data DIR             state directory: models/NAME/VERSION.safetensors + active,\n"
    "                         datasets/, jobs/ (default: none, embedded model only;\n"
    "                         uploads and training need one). DIR is created if its\n"
    "                         parent exists\n"
    "  --create-data          also create the missing parents of --data DIR\n"
    "  --models-dir DIR       serve a read-only model store instead (KServe storageUri,\n"
    "                         e.g. /mnt/models: NAME.safetensors or NAME/VERSION.safetensors\n"
    "                         + NAME/active); nothing is written, mutating routes get 409\n"
    "  --serve-only           with --data shared by replicas: never take the trainer lock;\n"
    "                         POST /train queues the job for the trainer\n"
    "  --train-only           with --data: run the training jobs (take the trainer lock)\n"
    "                         and refuse refine/TSM requests (421)\n"
    "  --dim C                channels of the embedded default model (default 2048)\n"
    "  --workers N            compute threads (default 1)\n"
    "  --threads N            BLAS threads per compute thread (default: CPUs / workers;\n"
    "                         see docs/daemon.md for the trade-off)\n"
    "  --max-body BYTES       largest request body, suffix K/M/G allowed (default 256M)\n"
    "  --max-frames T         longest sequence accepted (default 16384)\n"
    "  --queue N              requests that may wait for a busy worker before 503\n"
    "                         (default 64)\n"
    "  --token-file PATH      require Authorization: Bearer <file content> on mutating\n"
    "                         routes (uploads, activation)\n"
    "  --allowed-hosts LIST   names a client may put in Host besides IP addresses,\n"
    "                         localhost, single-label and *.svc names and this machine's\n"
    "                         name: comma-separated NAME or .DOMAIN (with its subdomains),\n"
    "                         * = any; other names get 400 (DNS rebinding)\n"
    "  --log-format text|json one log line per request on stderr (default text)\n"
    "  --default-model NAME   model used when a request names none (default: the only\n"
    "                         model)\n"
    "  --drain-timeout SEC    on SIGTERM/SIGINT, wait at most this long for requests in\n"
    "                         progress (default 30)\n"
    "  --conn-timeout SEC     close connections idle this long (default 60)\n"
    "  --header-timeout SEC   a request's whole header block must arrive within SEC of\n"
    "                         the connection (or the previous reply), however it trickles\n"
    "                         in; else 408 and closed (default 30)\n"
    "  --body-timeout SEC     a body must arrive within SEC of its headers, plus 1 s per\n"
    "                         --min-body-rate bytes received; else 408 and closed\n"
    "                         (default 60)\n"
    "  --min-body-rate BYTES  see --body-timeout, suffix K/M/G allowed (default 64K;\n"
    "                         0: --body-timeout bounds every body alone)\n"
    "  --max-conns N          concurrent connections (default 1024)\n"
    "  --max-conns-per-ip N   concurrent connections from one address (default 256)\n"
    "  --rescan-interval SEC  reread DATA/models this often, so replicas sharing it follow\n"
    "                         uploads and activations (default 2; 0 = only on SIGHUP)\n"
    "  --max-upload BYTES     largest dataset upload (spooled to disk, never held in\n"
    "                         memory; default 64G)\n"
    "  --train-threads N      BLAS threads of the training process, which runs at a lower\n"
    "                         CPU priority than inference (default 1)\n"
    "  --job-queue N          training jobs that may wait before POST /train answers 503\n"
    "                         (default 16)\n"
    "  --resume-jobs          when this process takes the trainer lock (at start, or when\n"
    "                         the previous trainer stops), resume interrupted jobs from\n"
    "                         their last checkpoint instead of waiting for\n"
    "                         POST /jobs/ID/resume (the shipped configs set it)\n"
    "                         Replicas sharing --data run one training job at a time: the\n"
    "                         one holding the lock on DATA/jobs/trainer.lock runs them,\n"
    "                         any replica accepts and lists them (docs/jobs.md).\n"
    "  --max-batch-frames N   dynamic batching: concurrent refines of one model version\n"
    "                         are computed as one pass of up to N snippets, bit-identical\n"
    "                         to separate passes (docs/v2.md); 0 = off (default 4096)\n"
    "  --batch-window-us US   how long a pass waits for more requests while other\n"
    "                         workers are still parsing (default 500)\n"
    "  --max-inflight-bytes BYTES  memory for request bodies and replies in progress,\n"
    "                         together; a request is admitted from its headers or gets\n"
    "                         503 + Retry-After (default 1G; docs/reliability.md)\n"
    "  --max-tsm-frames T     longest sequence whose T x T TSM is computed (default 4096)\n"
    "  --allow-nonfinite      accept NaN/Inf in features and dataset uploads (default 400)\n"
    "  --max-streams N        online refine: streams (sequence_id) open at once; a new\n"
    "                         one past N gets 503 (default 1024; 0 = streams off;\n"
    "                         docs/streaming.md)\n"
    "  --stream-idle-timeout SEC  drop a stream after SEC seconds without a chunk; a\n"
    "                         later call gets 404 saying so (default 60; decimals ok)\n"
    "  --debug-work-delay-ms N  testing aid: every compute item first sleeps N ms\n"
    "  --help, --version\n"
    "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP rescans DATA/models.\n"
    "Exit codes: 0 after a drain, 1 cannot start (port in use, unreadable data\n"
    "directory...), 2 usage error. Routes, formats and errors: docs/daemon.md.\n"
    "Example: solad --listen 127.0.0.1:8080 --data /var/lib/solad --token-file /etc/solad/token\n";

/* A usage error: the error on the last line, where the eye lands, and exit 2. */
static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "usage: solad [options]   ('solad --help' lists them)\nsolad: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

/* --data DIR: an existing directory, or a new one in an existing parent; with
 * --create-data any missing parents too. A typo (/var/lib/soald) must not silently
 * create a tree and serve the embedded model. 0 ok, 2 usage error (printed). */
static int check_data_dir(const char *dir, int create_parents)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return bad("--data %s: exists but is not a directory", dir);
        return 0;
    }
    if (create_parents)
        return 0;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        return 0; /* a relative name in the current directory */
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    fprintf(stderr, "usage: solad [options]   ('solad --help' lists them)\n"
                    "solad: --data %s: its parent directory %s does not exist (a typo?); "
                    "create it, or add --create-data to create the whole path\n",
            dir, parent);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT with a numeric port 0..65535 ([v6]:PORT too); the host is resolved later. */
static int check_listen(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return -1;
    if (spec[0] == '[' && colon[-1] != ']')
        return -1;
    long port;
    return parse_long(colon + 1, 0, 65535, &port);
}

static int parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024ULL, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024ULL * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024ULL * 1024 * 1024, end++;
    if (*end || v == 0 || v > (1ULL << 40) / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

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
            return bad("--allowed-hosts: '%s' is not a host name (expected NAME or .DOMAIN, "
                       "comma-separated, or * for any)", bad_name);
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
    c->listen = "127.0.0.1:8080";
    c->dim = 2048;
    c->workers = 1;
    c->threads = 0;
    c->max_body = 256u << 20;
    c->max_frames = 16384;
    c->queue = 64;
    c->drain_timeout = 30;
    c->conn_timeout = 60;
    c->header_timeout = 30;
    c->body_timeout = 60;
    c->min_body_rate = 64 << 10;
    c->max_conns = 1024;
    c->max_conns_per_ip = 256;
    c->rescan_ms = 2000;
    c->max_upload = (size_t)64 << 30;
    c->train_threads = 1;
    c->job_queue = 16;
    c->max_batch_frames = 4096;
    c->batch_window_us = 500;
    /* fits the Kubernetes limit of deploy/k8s (2 GiB) with the models, workspaces and
     * the training process (docs/reliability.md, "Memory budget") */
    c->max_inflight = (size_t)1 << 30;
    c->max_tsm_frames = API_TSM_MAX_T;
    c->max_streams = 1024;
    c->stream_idle_ms = 60000;

    enum { O_LISTEN = 256, O_DATA, O_DIM, O_WORKERS, O_THREADS, O_MAXBODY, O_MAXFRAMES,
           O_QUEUE, O_TOKEN, O_LOGFMT, O_DEFMODEL, O_DRAIN, O_CONNTO, O_MAXCONNS, O_PERIP,
           O_DELAY, O_RESCAN, O_HELP, O_VERSION, O_MAXUPLOAD, O_TRAINTHREADS, O_JOBQUEUE,
           O_RESUMEJOBS, O_BATCHFRAMES, O_BATCHWINDOW, O_CREATEDATA,
           O_MAXINFLIGHT, O_MAXTSM, O_NONFINITE, O_MAXSTREAMS, O_STREAMIDLE,
           O_MODELSDIR, O_SERVEONLY, O_TRAINONLY, O_HDRTO, O_BODYTO, O_BODYRATE,
           O_HOSTS };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"data", required_argument, 0, O_DATA},
        {"create-data", no_argument, 0, O_CREATEDATA},
        {"dim", required_argument, 0, O_DIM},
        {"workers", required_argument, 0, O_WORKERS},
        {"threads", required_argument, 0, O_THREADS},
        {"max-body", required_argument, 0, O_MAXBODY},
        {"max-frames", required_argument, 0, O_MAXFRAMES},
        {"queue", required_argument, 0, O_QUEUE},
        {"token-file", required_argument, 0, O_TOKEN},
        {"log-format", required_argument, 0, O_LOGFMT},
        {"default-model", required_argument, 0, O_DEFMODEL},
        {"drain-timeout", required_argument, 0, O_DRAIN},
        {"conn-timeout", required_argument, 0, O_CONNTO},
        {"header-timeout", required_argument, 0, O_HDRTO},
        {"allowed-hosts", required_argument, 0, O_HOSTS},
        {"body-timeout", required_argument, 0, O_BODYTO},
        {"min-body-rate", required_argument, 0, O_BODYRATE},
        {"max-conns", required_argument, 0, O_MAXCONNS},
        {"max-conns-per-ip", required_argument, 0, O_PERIP},
        {"debug-work-delay-ms", required_argument, 0, O_DELAY},
        {"rescan-interval", required_argument, 0, O_RESCAN},
        {"max-upload", required_argument, 0, O_MAXUPLOAD},
        {"train-threads", required_argument, 0, O_TRAINTHREADS},
        {"job-queue", required_argument, 0, O_JOBQUEUE},
        {"resume-jobs", no_argument, 0, O_RESUMEJOBS},
        {"max-batch-frames", required_argument, 0, O_BATCHFRAMES},
        {"batch-window-us", required_argument, 0, O_BATCHWINDOW},
        {"max-inflight-bytes", required_argument, 0, O_MAXINFLIGHT},
        {"max-tsm-frames", required_argument, 0, O_MAXTSM},
        {"allow-nonfinite", no_argument, 0, O_NONFINITE},
        {"max-streams", required_argument, 0, O_MAXSTREAMS},
        {"stream-idle-timeout", required_argument, 0, O_STREAMIDLE},
        {"models-dir", required_argument, 0, O_MODELSDIR},
        {"serve-only", no_argument, 0, O_SERVEONLY},
        {"train-only", no_argument, 0, O_TRAINONLY},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };
    int o, create_data = 0;
    long v;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_LISTEN:
            if (check_listen(optarg))
                return bad("--listen %s: expected HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 "
                           "or [::1]:8080 (port 0 = any free port)", optarg);
            c->listen = optarg;
            break;
        case O_DATA: c->data_dir = optarg; break;
        case O_CREATEDATA: create_data = 1; break;
        case O_DIM:
            if (parse_long(optarg, 1, 1 << 20, &v))
                return bad("--dim %s: expected a positive integer", optarg);
            c->dim = (int)v;
            break;
        case O_WORKERS:
            if (parse_long(optarg, 1, 1024, &v))
                return bad("--workers %s: expected 1..1024", optarg);
            c->workers = (int)v;
            break;
        case O_THREADS:
            if (parse_long(optarg, 1, 1024, &v))
                return bad("--threads %s: expected 1..1024", optarg);
            c->threads = (int)v;
            break;
        case O_MAXBODY:
            if (parse_bytes(optarg, &c->max_body))
                return bad("--max-body %s: expected bytes, e.g. 1048576 or 256M", optarg);
            break;
        case O_MAXFRAMES:
            if (parse_long(optarg, 1, 1 << 24, &v))
                return bad("--max-frames %s: expected a positive integer", optarg);
            c->max_frames = (int)v;
            break;
        case O_QUEUE:
            if (parse_long(optarg, 0, 1 << 20, &v))
                return bad("--queue %s: expected 0 or more", optarg);
            c->queue = (int)v;
            break;
        case O_TOKEN: c->token_file = optarg; break;
        case O_HOSTS: c->allowed_hosts = optarg; break;
        case O_LOGFMT:
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return bad("--log-format %s: expected text or json", optarg);
            c->log_json = !strcmp(optarg, "json");
            break;
        case O_DEFMODEL: c->default_model = optarg; break;
        case O_DRAIN:
            if (parse_long(optarg, 0, 86400, &v))
                return bad("--drain-timeout %s: expected seconds", optarg);
            c->drain_timeout = (double)v;
            break;
        case O_CONNTO:
            if (parse_long(optarg, 1, 86400, &v))
                return bad("--conn-timeout %s: expected seconds", optarg);
            c->conn_timeout = (unsigned)v;
            break;
        case O_HDRTO:
        case O_BODYTO:
            if (parse_long(optarg, 1, 86400, &v))
                return bad(o == O_HDRTO ? "--header-timeout %s: expected seconds, 1..86400"
                                        : "--body-timeout %s: expected seconds, 1..86400",
                           optarg);
            *(o == O_HDRTO ? &c->header_timeout : &c->body_timeout) = (unsigned)v;
            break;
        case O_BODYRATE:
            if (strcmp(optarg, "0") == 0)
                c->min_body_rate = 0;
            else if (parse_bytes(optarg, &c->min_body_rate))
                return bad("--min-body-rate %s: expected bytes per second, e.g. 65536 or "
                           "64K (0 = none)",
                           optarg);
            break;
        case O_MAXCONNS:
            if (parse_long(optarg, 1, 1 << 20, &v))
                return bad("--max-conns %s: expected a positive integer", optarg);
            c->max_conns = (unsigned)v;
            break;
        case O_PERIP:
            if (parse_long(optarg, 1, 1 << 20, &v))
                return bad("--max-conns-per-ip %s: expected a positive integer", optarg);
            c->max_conns_per_ip = (unsigned)v;
            break;
        case O_DELAY:
            if (parse_long(optarg, 0, 600000, &v))
                return bad("--debug-work-delay-ms %s: expected milliseconds", optarg);
            c->debug_delay_ms = (int)v;
            break;
        case O_RESCAN:
            if (parse_long(optarg, 0, 86400, &v))
                return bad("--rescan-interval %s: expected seconds (0 = off)", optarg);
            c->rescan_ms = (uint64_t)v * 1000;
            break;
        case O_MAXUPLOAD:
            if (parse_bytes(optarg, &c->max_upload))
                return bad("--max-upload %s: expected bytes, e.g. 1073741824 or 64G", optarg);
            break;
        case O_TRAINTHREADS:
            if (parse_long(optarg, 1, 1024, &v))
                return bad("--train-threads %s: expected 1..1024", optarg);
            c->train_threads = (int)v;
            break;
        case O_JOBQUEUE:
            if (parse_long(optarg, 0, 1 << 20, &v))
                return bad("--job-queue %s: expected 0 or more", optarg);
            c->job_queue = (int)v;
            break;
        case O_RESUMEJOBS: c->resume_jobs = 1; break;
        case O_BATCHFRAMES:
            if (parse_long(optarg, 0, 1 << 24, &v))
                return bad("--max-batch-frames %s: expected 0 (off) or more", optarg);
            c->max_batch_frames = (int)v;
            break;
        case O_BATCHWINDOW:
            if (parse_long(optarg, 0, 1000000, &v))
                return bad("--batch-window-us %s: expected 0..1000000 microseconds", optarg);
            c->batch_window_us = (int)v;
            break;
        case O_MAXINFLIGHT:
            if (parse_bytes(optarg, &c->max_inflight))
                return bad("--max-inflight-bytes %s: expected bytes, e.g. 1G", optarg);
            break;
        case O_MAXTSM:
            if (parse_long(optarg, 1, 8192, &v))
                return bad("--max-tsm-frames %s: expected 1..8192", optarg);
            c->max_tsm_frames = (int)v;
            break;
        case O_NONFINITE: c->allow_nonfinite = 1; break;
        case O_MAXSTREAMS:
            if (parse_long(optarg, 0, 1 << 20, &v))
                return bad("--max-streams %s: expected 0 (off) or more", optarg);
            c->max_streams = (int)v;
            break;
        case O_STREAMIDLE: {
            char *end;
            errno = 0;
            double sec = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(sec >= 0.01 && sec <= 86400.0 * 365))
                return bad("--stream-idle-timeout %s: expected seconds, 0.01 or more", optarg);
            c->stream_idle_ms = (uint64_t)(sec * 1000.0 + 0.5);
            break;
        }
        case O_MODELSDIR: c->models_dir = optarg; break;
        case O_SERVEONLY:
        case O_TRAINONLY:
            if (c->role && c->role != (o == O_SERVEONLY ? SRV_ROLE_SERVE : SRV_ROLE_TRAIN))
                return bad("%s", "--serve-only and --train-only exclude each other (without "
                                 "either, solad both serves and trains)");
            c->role = o == O_SERVEONLY ? SRV_ROLE_SERVE : SRV_ROLE_TRAIN;
            break;
        case O_HELP: fputs(usage, stdout); return 0;
        case O_VERSION: printf("solad %s\n", API_VERSION); return 0;
        default:
            return bad("unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument %s", argv[optind]);
    if (c->models_dir && c->data_dir)
        return bad("%s", "--models-dir (a read-only model store) and --data (a writable "
                         "state directory) exclude each other");
    if (c->role && !c->data_dir)
        return bad("%s", c->role == SRV_ROLE_SERVE
                             ? "--serve-only needs --data: the shared directory whose job "
                               "queue a trainer serves"
                             : "--train-only needs --data: the directory holding the job queue, "
                               "datasets and models");
    if (create_data && !c->data_dir)
        return bad("%s", "--create-data needs --data DIR");
    if (c->data_dir && check_data_dir(c->data_dir, create_data))
        return 2;
    if (c->default_model) {
        sola_err e = {0};
        if (api_check_name("--default-model", c->default_model, &e))
            return bad("%s", e.msg);
    }

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
    sola_gemm_set_threads(c->threads); /* each compute thread takes it (core/gemm.h) */
    signal(SIGPIPE, SIG_IGN);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    s.start_time = (double)tv.tv_sec + tv.tv_usec / 1e6;
    s.listen_fd = -1;
    pthread_mutex_init(&s.pool.mu, NULL);
    int rc = 1;
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
    free(s.tmp_dir);
    free(s.token);
    for (int i = 0; i < s.hosts.n; i++)
        free(s.hosts.names[i]);
    free(s.hosts.names);
    return rc;
}
