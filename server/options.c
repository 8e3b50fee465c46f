/* options.c -- solad's options, one table (see options.h). */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_helpers.h"
#include "numparse.h"

/* What an option's value is and how it reaches its field. */
enum {
    K_FLAG,     /* no argument; int field = 1 */
    K_ROLE,     /* no argument; int field = lo, another role already set is an error */
    K_STR,      /* const char * field = the argument */
    K_LISTEN,   /* K_STR checked as HOST:PORT */
    K_CHOICE,   /* int field = index of the argument in the '|'-separated arg */
    K_INT,      /* int field, an integer in [lo, hi] */
    K_UINT,     /* unsigned field, the same */
    K_DSEC,     /* double field (seconds), an integer in [lo, hi] */
    K_MS,       /* uint64_t field (ms), an integer number of seconds in [lo, hi] */
    K_MSF,      /* uint64_t field (ms), decimal seconds, 0.01 s to a year */
    K_BYTES,    /* size_t field, bytes with K/M/G suffixes, 1 B to 1 TiB; lo = 1: 0 ok */
    K_HELP,
    K_VERSION,
};

/* The command line fills this; create_data is not part of srv_config (it only decides
 * how --data is checked, here). */
typedef struct cmdline {
    srv_config cfg;
    int create_data;
} cmdline;

#define CFG(f) offsetof(cmdline, cfg.f)
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct opt {
    const char *name; /* without "--" */
    const char *arg;  /* shown in --help; NULL: takes no argument */
    int kind;
    size_t off;       /* offsetof(cmdline, ...) */
    long lo, hi;      /* bounds (K_INT, K_UINT, K_DSEC, K_MS); K_ROLE: the role */
    const char *def;  /* the default, as it would be written on the command line */
    const char *shown;/* the default in words when def is NULL ("none", "CPUs / workers") */
    const char *err;  /* a bad value: "--dim %s: expected ..." (%s = the value) */
    const char *help; /* lines separated by \n; --help appends "(default ...)" */
} opt;

static const opt opts[] = {
    {"listen", "HOST:PORT", K_LISTEN, CFG(listen), 0, 0, "127.0.0.1:8080", NULL,
     "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 "
     "(port 0 = any free port)",
     "address to serve on (port 0 = any free port, printed on stdout)"},
    {"data", "DIR", K_STR, CFG(data_dir), 0, 0, NULL, "none", NULL,
     "state directory: models/NAME/VERSION.safetensors + active,\n"
     "datasets/, jobs/ (none: the embedded model only; uploads and\n"
     "training need one). DIR is created if its parent exists"},
    {"create-data", NULL, K_FLAG, offsetof(cmdline, create_data), 0, 0, NULL, "off", NULL,
     "also create the missing parents of --data DIR"},
    {"models-dir", "DIR", K_STR, CFG(models_dir), 0, 0, NULL, "none", NULL,
     "serve a read-only model store instead (KServe storageUri,\n"
     "e.g. /mnt/models: NAME.safetensors or NAME/VERSION.safetensors\n"
     "+ NAME/active); nothing is written, mutating routes get 409"},
    {"serve-only", NULL, K_ROLE, CFG(role), SRV_ROLE_SERVE, 0, NULL, "off", NULL,
     "with --data shared by replicas: never take the trainer lock;\n"
     "POST /train queues the job for the trainer"},
    {"train-only", NULL, K_ROLE, CFG(role), SRV_ROLE_TRAIN, 0, NULL, "off", NULL,
     "with --data: run the training jobs (take the trainer lock)\n"
     "and refuse refine/TSM requests (421)"},
    {"dim", "C", K_INT, CFG(dim), 1, 1 << 20, "2048", NULL,
     "--dim %s: expected a positive integer", "channels of the embedded default model"},
    {"workers", "N", K_INT, CFG(workers), 1, 1024, "1", NULL, "--workers %s: expected 1..1024",
     "compute threads"},
    {"threads", "N", K_INT, CFG(threads), 1, 1024, NULL, "CPUs / workers",
     "--threads %s: expected 1..1024",
     "BLAS threads per compute thread (see docs/daemon.md for\nthe trade-off)"},
    {"max-body", "BYTES", K_BYTES, CFG(max_body), 0, 0, "256M", NULL,
     "--max-body %s: expected bytes, e.g. 1048576 or 256M",
     "largest request body, suffix K/M/G allowed"},
    {"max-frames", "T", K_INT, CFG(max_frames), 1, 1 << 24, "16384", NULL,
     "--max-frames %s: expected a positive integer", "longest sequence accepted"},
    {"queue", "N", K_INT, CFG(queue), 0, 1 << 20, "64", NULL, "--queue %s: expected 0 or more",
     "requests that may wait for a busy worker before 503"},
    {"token-file", "PATH", K_STR, CFG(token_file), 0, 0, NULL, "none", NULL,
     "require Authorization: Bearer <file content> on mutating\n"
     "routes (uploads, activation)"},
    {"allowed-hosts", "LIST", K_STR, CFG(allowed_hosts), 0, 0, NULL, "none", NULL,
     "names a client may put in Host besides IP addresses,\n"
     "localhost, single-label and *.svc names and this machine's\n"
     "name: comma-separated NAME or .DOMAIN (with its subdomains),\n"
     "* = any; other names get 400 (DNS rebinding)"},
    {"log-format", "text|json", K_CHOICE, CFG(log_json), 0, 0, "text", NULL,
     "--log-format %s: expected text or json", "one log line per request on stderr"},
    {"default-model", "NAME", K_STR, CFG(default_model), 0, 0, NULL, "the only model", NULL,
     "model used when a request names none"},
    {"drain-timeout", "SEC", K_DSEC, CFG(drain_timeout), 0, 86400, "30", NULL,
     "--drain-timeout %s: expected seconds",
     "on SIGTERM/SIGINT, wait at most this long for requests in\nprogress"},
    {"conn-timeout", "SEC", K_UINT, CFG(conn_timeout), 1, 86400, "60", NULL,
     "--conn-timeout %s: expected seconds", "close connections idle this long"},
    {"header-timeout", "SEC", K_UINT, CFG(header_timeout), 1, 86400, "30", NULL,
     "--header-timeout %s: expected seconds, 1..86400",
     "a request's whole header block must arrive within SEC of\n"
     "the connection (or the previous reply), however it trickles\n"
     "in; else 408 and closed"},
    {"body-timeout", "SEC", K_UINT, CFG(body_timeout), 1, 86400, "60", NULL,
     "--body-timeout %s: expected seconds, 1..86400",
     "a body must arrive within SEC of its headers, plus 1 s per\n"
     "--min-body-rate bytes received; else 408 and closed"},
    {"min-body-rate", "BYTES", K_BYTES, CFG(min_body_rate), 1, 0, "64K", NULL,
     "--min-body-rate %s: expected bytes per second, e.g. 65536 or 64K (0 = none)",
     "see --body-timeout, suffix K/M/G allowed (0: --body-timeout\nbounds every body alone)"},
    {"max-conns", "N", K_UINT, CFG(max_conns), 1, 1 << 20, "1024", NULL,
     "--max-conns %s: expected a positive integer", "concurrent connections"},
    {"max-conns-per-ip", "N", K_UINT, CFG(max_conns_per_ip), 1, 1 << 20, "256", NULL,
     "--max-conns-per-ip %s: expected a positive integer",
     "concurrent connections from one address"},
    {"rescan-interval", "SEC", K_MS, CFG(rescan_ms), 0, 86400, "2", NULL,
     "--rescan-interval %s: expected seconds (0 = off)",
     "reread DATA/models this often, so replicas sharing it follow\n"
     "uploads and activations (0 = only on SIGHUP)"},
    {"max-upload", "BYTES", K_BYTES, CFG(max_upload), 0, 0, "64G", NULL,
     "--max-upload %s: expected bytes, e.g. 1073741824 or 64G",
     "largest dataset upload (spooled to disk, never held in\nmemory)"},
    {"train-threads", "N", K_INT, CFG(train_threads), 1, 1024, "1", NULL,
     "--train-threads %s: expected 1..1024",
     "BLAS threads of the training process, which runs at a lower\n"
     "CPU priority than inference"},
    {"job-queue", "N", K_INT, CFG(job_queue), 0, 1 << 20, "16", NULL,
     "--job-queue %s: expected 0 or more",
     "training jobs that may wait before POST /train answers 503"},
    {"resume-jobs", NULL, K_FLAG, CFG(resume_jobs), 0, 0, NULL, "off", NULL,
     "when this process takes the trainer lock (at start, or when\n"
     "the previous trainer stops), resume interrupted jobs from\n"
     "their last checkpoint instead of waiting for\n"
     "POST /jobs/ID/resume (the shipped configs set it)"},
    {"max-batch-frames", "N", K_INT, CFG(max_batch_frames), 0, 1 << 24, "4096", NULL,
     "--max-batch-frames %s: expected 0 (off) or more",
     "dynamic batching: concurrent refines of one model version\n"
     "are computed as one pass of up to N snippets, bit-identical\n"
     "to separate passes (docs/v2.md); 0 = off"},
    {"batch-window-us", "US", K_INT, CFG(batch_window_us), 0, 1000000, "500", NULL,
     "--batch-window-us %s: expected 0..1000000 microseconds",
     "how long a pass waits for more requests while other\nworkers are still parsing"},
    /* 1G fits the Kubernetes limit of deploy/k8s (2 GiB) with the models, workspaces and
     * the training process (docs/reliability.md, "Memory budget") */
    {"max-inflight-bytes", "BYTES", K_BYTES, CFG(max_inflight), 0, 0, "1G", NULL,
     "--max-inflight-bytes %s: expected bytes, e.g. 1G",
     "memory for request bodies and replies in progress,\n"
     "together; a request is admitted from its headers or gets\n"
     "503 + Retry-After (docs/reliability.md)"},
    {"max-tsm-frames", "T", K_INT, CFG(max_tsm_frames), 1, 8192, STR(API_TSM_MAX_T), NULL,
     "--max-tsm-frames %s: expected 1..8192", "longest sequence whose T x T TSM is computed"},
    {"allow-nonfinite", NULL, K_FLAG, CFG(allow_nonfinite), 0, 0, NULL, "off", NULL,
     "accept NaN/Inf in features and dataset uploads (else 400)"},
    {"max-streams", "N", K_INT, CFG(max_streams), 0, 1 << 20, "1024", NULL,
     "--max-streams %s: expected 0 (off) or more",
     "online refine: streams (sequence_id) open at once; a new\n"
     "one past N gets 503 (0 = streams off; docs/streaming.md)"},
    {"stream-idle-timeout", "SEC", K_MSF, CFG(stream_idle_ms), 0, 0, "60", NULL,
     "--stream-idle-timeout %s: expected seconds, 0.01 or more",
     "drop a stream after SEC seconds without a chunk; a\n"
     "later call gets 404 saying so (decimals ok)"},
    {"debug-work-delay-ms", "N", K_INT, CFG(debug_delay_ms), 0, 600000, "0", NULL,
     "--debug-work-delay-ms %s: expected milliseconds",
     "testing aid: every compute item first sleeps N ms"},
    {"help", NULL, K_HELP, 0, 0, 0, NULL, NULL, NULL, NULL},
    {"version", NULL, K_VERSION, 0, 0, 0, NULL, NULL, NULL, NULL},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const char usage_tail[] =
    "  --help, --version\n"
    "Replicas sharing --data run one training job at a time: the one holding the lock on\n"
    "DATA/jobs/trainer.lock runs them, any replica accepts and lists them (docs/jobs.md).\n"
    "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP rescans DATA/models.\n"
    "Exit codes: 0 after a drain, 1 cannot start (port in use, unreadable data\n"
    "directory...), 2 usage error. Routes, formats and errors: docs/daemon.md.\n"
    "Example: solad --listen 127.0.0.1:8080 --data /var/lib/solad --token-file /etc/solad/token\n";

#define HELP_COL 25   /* where help text starts */
#define HELP_WIDTH 88 /* longest line --help writes where it can choose */

static void print_usage(FILE *f)
{
    fputs("usage: solad [options]\n", f);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        if (o->kind == K_HELP || o->kind == K_VERSION)
            continue;
        int col = fprintf(f, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "%*s", col < HELP_COL ? HELP_COL - col : 2, "");
        col = col < HELP_COL ? HELP_COL : col + 2;
        for (const char *p = o->help; *p;) {
            size_t n = strcspn(p, "\n");
            fwrite(p, 1, n, f);
            col += (int)n;
            p += n;
            if (*p == '\n') {
                p++;
                fprintf(f, "\n%*s", HELP_COL, "");
                col = HELP_COL;
            }
        }
        const char *d = o->def ? o->def : o->shown;
        if (d) {
            int need = (int)strlen(d) + 11; /* " (default X)" */
            if (col + need > HELP_WIDTH)
                fprintf(f, "\n%*s(default %s)", HELP_COL, "", d);
            else
                fprintf(f, " (default %s)", d);
        }
        fputc('\n', f);
    }
    fputs(usage_tail, f);
}

int srv_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "usage: solad [options]   ('solad --help' lists them)\nsolad: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
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
    return sola_parse_long(colon + 1, 0, 65535, &port);
}

/* Bytes, with an optional K/M/G suffix (powers of 1024): 1 B .. 1 TiB. */
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

/* Applies one value of option o to cl. 0, or -1 when the value is not one o takes
 * (the caller prints o->err). K_ROLE's conflict is reported here (returns 2). */
static int apply(const opt *o, const char *val, cmdline *cl)
{
    char *field = (char *)cl + o->off;
    long v;
    switch (o->kind) {
    case K_FLAG: *(int *)field = 1; return 0;
    case K_ROLE:
        if (*(int *)field && *(int *)field != (int)o->lo)
            return srv_usage_error("%s", "--serve-only and --train-only exclude each other "
                                         "(without either, solad both serves and trains)");
        *(int *)field = (int)o->lo;
        return 0;
    case K_LISTEN:
        if (check_listen(val))
            return -1;
        /* fall through */
    case K_STR: *(const char **)field = val; return 0;
    case K_CHOICE: {
        size_t n = strlen(val);
        int idx = 0;
        for (const char *p = o->arg; *p; idx++) {
            size_t m = strcspn(p, "|");
            if (m == n && !strncmp(p, val, n)) {
                *(int *)field = idx;
                return 0;
            }
            p += m + (p[m] == '|');
        }
        return -1;
    }
    case K_INT:
    case K_UINT:
    case K_DSEC:
    case K_MS:
        if (sola_parse_long(val, o->lo, o->hi, &v))
            return -1;
        if (o->kind == K_INT)
            *(int *)field = (int)v;
        else if (o->kind == K_UINT)
            *(unsigned *)field = (unsigned)v;
        else if (o->kind == K_DSEC)
            *(double *)field = (double)v;
        else
            *(uint64_t *)field = (uint64_t)v * 1000;
        return 0;
    case K_MSF: {
        char *end;
        errno = 0;
        double sec = strtod(val, &end);
        if (errno || end == val || *end || !(sec >= 0.01 && sec <= 86400.0 * 365))
            return -1;
        *(uint64_t *)field = (uint64_t)(sec * 1000.0 + 0.5);
        return 0;
    }
    case K_BYTES:
        if (o->lo && strcmp(val, "0") == 0) {
            *(size_t *)field = 0;
            return 0;
        }
        return parse_bytes(val, (size_t *)field);
    }
    return -1;
}

/* --data DIR: an existing directory, or a new one in an existing parent; with
 * --create-data any missing parents too. A typo (/var/lib/soald) must not silently
 * create a tree and serve the embedded model. 0 ok, 2 usage error (printed). */
static int check_data_dir(const char *dir, int create_parents)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return srv_usage_error("--data %s: exists but is not a directory", dir);
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

/* The options' combination, once all are read. -1 ok, else 2 (printed). */
static int check_together(const cmdline *cl)
{
    const srv_config *c = &cl->cfg;
    if (c->models_dir && c->data_dir)
        return srv_usage_error("%s", "--models-dir (a read-only model store) and --data (a "
                                     "writable state directory) exclude each other");
    if (c->role && !c->data_dir)
        return srv_usage_error("%s", c->role == SRV_ROLE_SERVE
                                         ? "--serve-only needs --data: the shared directory "
                                           "whose job queue a trainer serves"
                                         : "--train-only needs --data: the directory holding "
                                           "the job queue, datasets and models");
    if (cl->create_data && !c->data_dir)
        return srv_usage_error("%s", "--create-data needs --data DIR");
    if (c->data_dir && check_data_dir(c->data_dir, cl->create_data))
        return 2;
    if (c->default_model) {
        sola_err e = {0};
        if (api_check_name("--default-model", c->default_model, &e))
            return srv_usage_error("%s", e.msg);
    }
    return -1;
}

int srv_options(int argc, char **argv, srv_config *c)
{
    static cmdline cl; /* argv outlives it; static keeps getopt's table small */
    memset(&cl, 0, sizeof cl);
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def && apply(&opts[i], opts[i].def, &cl)) {
            fprintf(stderr, "solad: internal error: the default of --%s (%s) is invalid\n",
                    opts[i].name, opts[i].def);
            abort();
        }
    struct option gopts[NOPTS + 1];
    for (size_t i = 0; i < NOPTS; i++)
        gopts[i] = (struct option){opts[i].name, opts[i].arg ? required_argument : no_argument,
                                   NULL, 256 + (int)i};
    gopts[NOPTS] = (struct option){0, 0, 0, 0};
    int k;
    opterr = 0;
    while ((k = getopt_long(argc, argv, "", gopts, NULL)) != -1) {
        if (k < 256 || k >= 256 + (int)NOPTS)
            return srv_usage_error("unknown or incomplete option %s", argv[optind - 1]);
        const opt *o = &opts[k - 256];
        if (o->kind == K_HELP) {
            print_usage(stdout);
            return 0;
        }
        if (o->kind == K_VERSION) {
            printf("solad %s\n", API_VERSION);
            return 0;
        }
        int rc = apply(o, optarg, &cl);
        if (rc > 0)
            return rc;
        if (rc < 0)
            return srv_usage_error(o->err, optarg);
    }
    if (optind < argc)
        return srv_usage_error("unexpected argument %s", argv[optind]);
    int rc = check_together(&cl);
    *c = cl.cfg;
    return rc;
}
