/* jobs_run.c -- the job thread: takes the training lock when it can, recovers jobs a
 * dead runner left `running`, picks queued jobs one at a time and supervises the
 * training process of each (solad --train-worker, train_worker.c); how a run ends
 * (registration, final state, recovery) is in jobs_finish.c.
 *
 * Why a process and not a thread: OpenBLAS's thread count is global to a process, so
 * a training thread would either take the inference workers' BLAS threads or change
 * theirs; a child has its own (--train-threads), runs at a lower CPU priority, and a
 * crash in training cannot take the daemon down. The job thread itself only reads
 * the child's progress lines (JSON, one per line on a pipe), keeps the job record up
 * to date and wakes the event streams with uv_async_send.
 *
 * Crash safety: the record says `running` while a child runs; a runner that dies
 * (kill -9) leaves it so, and the next lock holder marks it `interrupted` (or
 * finishes the registration when the child had already written the model). The
 * child gets SIGTERM when the job thread dies (PR_SET_PDEATHSIG), which makes it
 * write a checkpoint at its next step. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dsstore.h"
#include "fsutil.h"
#include "jobs_int.h"

extern char **environ;

static int exists(const char *p)
{
    return access(p, F_OK) == 0;
}

void jobs_try_lock(srv_jobs *J)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET}; /* l_len 0: whole file */
    if (J->lock_fd < 0 || fcntl(J->lock_fd, F_OFD_SETLK, &fl) != 0)
        return;
    atomic_store(&J->have_lock, 1);
    char who[160];
    int n = snprintf(who, sizeof who, "%s:%ld\n", J->host, (long)getpid());
    if (ftruncate(J->lock_fd, 0) == 0 && pwrite(J->lock_fd, who, (size_t)n, 0) != n)
        srv_logf(J->s, "warn", "%s/trainer.lock: cannot note the holder", J->dir);
    srv_logf(J->s, "info", "this replica runs the training jobs (holds %s/trainer.lock)",
             J->dir);
    jobs_recover(J);
}

int jobs_trainer(srv_jobs *J, char *who, size_t n)
{
    who[0] = '\0';
    if (atomic_load(&J->have_lock)) {
        snprintf(who, n, "%s:%ld", J->host, (long)getpid());
        return 1;
    }
    char lp[4096];
    snprintf(lp, sizeof lp, "%.4000s/trainer.lock", J->dir);
    int fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1; /* no trainer ever started on this directory */
    /* F_RDLCK conflicts exactly with the trainer's write lock; GETLK only asks */
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    int held = -1;
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0)
        held = fl.l_type != F_UNLCK;
    if (held == 1) {
        ssize_t k = pread(fd, who, n - 1, 0);
        who[k > 0 ? k : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
    }
    close(fd);
    return held;
}

/* Queued jobs another replica asked to cancel (DATA/jobs/ID.cancel): cancelled now,
 * also while a job runs, so that the asker sees it without waiting for the queue. */
static void cancel_requested(srv_jobs *J)
{
    for (;;) {
        job *hit = NULL;
        pthread_mutex_lock(&J->mu);
        for (int i = 0; i < J->n && !hit; i++) {
            char cp[4096];
            if (J->v[i]->st != JS_QUEUED)
                continue;
            jobs_path(J, J->v[i]->id, "cancel", cp);
            if (exists(cp))
                hit = J->v[i];
        }
        pthread_mutex_unlock(&J->mu);
        if (!hit)
            return;
        jobs_finish(J, hit, JS_CANCELLED, NULL); /* removes the file: no loop */
    }
}

/* The next queued job (lowest id), now marked running; NULL if none. A job with a
 * cancel request from another replica is cancelled instead. */
static job *pick(srv_jobs *J)
{
    for (;;) {
        pthread_mutex_lock(&J->mu);
        job *j = NULL;
        for (int i = 0; i < J->n && !j; i++)
            if (J->v[i]->st == JS_QUEUED)
                j = J->v[i];
        if (!j) {
            pthread_mutex_unlock(&J->mu);
            return NULL;
        }
        char cp[4096];
        jobs_path(J, j->id, "cancel", cp);
        if (exists(cp)) {
            pthread_mutex_unlock(&J->mu);
            jobs_finish(J, j, JS_CANCELLED, NULL);
            continue;
        }
        j->st = JS_RUNNING;
        j->local = 1;
        j->runs++;
        j->error[0] = '\0';
        j->eta_s = 0;
        j->windows_per_s = 0;
        if (!j->started[0])
            jobs_now_iso(j->started);
        snprintf(j->runner, sizeof j->runner, "%s:%ld", J->host, (long)getpid());
        J->running_id = j->id;
        atomic_store(&J->cancel, 0);
        jobs_changed(J, j);
        pthread_mutex_unlock(&J->mu);
        return j;
    }
}

/* ---- one run ----------------------------------------------------------------------- */

typedef struct run_state {
    int done, cancelled_msg;
    char error[512];
    int dirty;
    double last_write, last_log;
} run_state;

/* One JSON line from the child (the protocol: train_worker.c). Every line is small:
 * the history arrives once (start) and then one epoch's loss at a time, appended
 * here, so a line costs the same at epoch 10 and at epoch 100000. */
static void on_line(srv_jobs *J, job *j, run_state *rs, const char *line)
{
    json_t *o = json_loads(line, 0, NULL);
    if (!o)
        return;
    const char *type = json_string_value(json_object_get(o, "type"));
    int epoch_done = 0, warn = 0;
    pthread_mutex_lock(&J->mu);
    if (type && !strcmp(type, "progress")) {
        j->epoch = (int)json_integer_value(json_object_get(o, "epoch"));
        j->step = (long)json_integer_value(json_object_get(o, "step"));
        j->steps_per_epoch = (long)json_integer_value(json_object_get(o, "steps_per_epoch"));
        j->loss = json_number_value(json_object_get(o, "loss"));
        j->windows_per_s = json_number_value(json_object_get(o, "windows_per_s"));
        j->eta_s = json_number_value(json_object_get(o, "eta_s"));
        j->videos = (int)json_integer_value(json_object_get(o, "videos"));
        j->skipped = (int)json_integer_value(json_object_get(o, "skipped"));
        epoch_done = json_is_true(json_object_get(o, "epoch_done"));
        json_t *el = json_object_get(o, "epoch_loss");
        json_int_t n = json_integer_value(json_object_get(o, "epochs_done"));
        /* epoch n's loss: the next one, or (never in practice) a repeat of a known one;
         * a gap would mean a lost line, and a history with a hole is worse than a
         * short one */
        if (epoch_done && json_is_number(el) && n >= 1 && n <= j->nhist + 1) {
            j->nhist = (int)n - 1;
            job_hist_push(j, json_number_value(el));
        }
        json_t *g = json_object_get(o, "guard");
        if (json_is_object(g)) {
            j->guard_epoch = j->epoch;
            j->norm_ratio = json_number_value(json_object_get(g, "norm_ratio"));
            j->const_share = json_number_value(json_object_get(g, "const_share"));
            if (json_is_true(json_object_get(g, "collapse")) && !j->collapse_epoch) {
                j->collapse_epoch = j->epoch;
                snprintf(j->warning, sizeof j->warning,
                         "the collapse guard fired at the end of epoch %d: the refinement is "
                         "%.2f times the features' norm and %.0f%% of it is one vector added "
                         "to every snippet; lower lr, or send stop_on_collapse (docs/training.md)",
                         j->epoch, j->norm_ratio, 100 * j->const_share);
                warn = 1;
            }
        }
    } else if (type && !strcmp(type, "start")) {
        j->resumed_epoch = (int)json_integer_value(json_object_get(o, "resumed_epoch"));
        j->resumed_step = (long)json_integer_value(json_object_get(o, "resumed_step"));
        /* the run's base: the checkpoint's epochs (a record written after the last
         * checkpoint may hold more; those epochs are trained again) */
        json_t *h = json_object_get(o, "history"), *v;
        size_t i;
        j->nhist = 0;
        json_array_foreach(h, i, v) job_hist_push(j, json_number_value(v));
    } else if (type && !strcmp(type, "done")) {
        rs->done = 1;
        const char *why = json_string_value(json_object_get(o, "stopped"));
        if (why)
            snprintf(j->warning, sizeof j->warning, "%s", why);
    } else if (type && (!strcmp(type, "error") || !strcmp(type, "cancelled"))) {
        const char *m = json_string_value(json_object_get(o, "message"));
        snprintf(rs->error, sizeof rs->error, "%s", m ? m : type);
    }
    jobs_changed(J, j);
    int id = j->id, ep = j->epoch, eps = j->spec.epochs;
    double loss = j->nhist ? j->hist[j->nhist - 1] : 0;
    char warning[512];
    snprintf(warning, sizeof warning, "%s", warn ? j->warning : "");
    pthread_mutex_unlock(&J->mu);
    if (warning[0])
        srv_logf(J->s, "warn", "job %d: %s", id, warning);
    json_decref(o);
    rs->dirty = 1;
    jobs_notify(J);
    /* the record follows within JOBS_RECORD_INTERVAL_S (supervise); the log every
     * few seconds */
    double now = sola_now_s();
    if (epoch_done && (ep == eps || now - rs->last_log >= 5.0)) {
        rs->last_log = now;
        srv_logf(J->s, "info", "job %d: epoch %d/%d, loss %.6f", id, ep, eps, loss);
    }
}

/* argv/envp for the child, built before fork (nothing may allocate after it). */
static char *child_spec(srv_jobs *J, job *j, const char *dsdir, int resume)
{
    char ckpt[4096], out[4096], base[4096];
    jobs_path(J, j->id, "ckpt", ckpt);
    jobs_path(J, j->id, "out", out);
    jobs_path(J, j->id, "base", base);
    pthread_mutex_lock(&J->mu);
    json_t *o = api_train_spec_json(&j->spec);
    pthread_mutex_unlock(&J->mu);
    if (!o)
        return NULL;
    json_object_set_new(o, "dataset_dir", json_string(dsdir));
    json_object_set_new(o, "checkpoint", json_string(ckpt));
    json_object_set_new(o, "output", json_string(out));
    json_object_set_new(o, "base", exists(base) ? json_string(base) : json_null());
    json_object_set_new(o, "resume", json_boolean(resume));
    json_object_set_new(o, "threads", json_integer(J->s->cfg.train_threads));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static char **child_env(int threads)
{
    int n = 0;
    while (environ[n])
        n++;
    char **env = calloc((size_t)n + 3, sizeof *env);
    if (!env)
        return NULL;
    int k = 0;
    /* the worker sets its threads from the spec; these bound the GEMM library's pool
     * before that (OpenMP for oneDNN, or OpenBLAS) */
    for (int i = 0; i < n; i++)
        if (strncmp(environ[i], "OPENBLAS_NUM_THREADS=", 21) &&
            strncmp(environ[i], "OMP_NUM_THREADS=", 16))
            env[k++] = environ[i];
    static char var[48], var2[48];
    snprintf(var, sizeof var, "OPENBLAS_NUM_THREADS=%d", threads);
    snprintf(var2, sizeof var2, "OMP_NUM_THREADS=%d", threads);
    env[k++] = var;
    env[k++] = var2;
    env[k] = NULL;
    return env;
}

/* Starts the child; its stdout is *fd. Returns the pid or -1. */
static pid_t spawn(const char *spec, int threads, int *fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    char *argv[] = {"solad", "--train-worker", (char *)spec, NULL};
    char **env = child_env(threads);
    if (!env) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    /* nice levels below solad: 10, or $SOLAD_TRAIN_NICE (0..19; 0 to measure without) */
    const char *nv = getenv("SOLAD_TRAIN_NICE");
    int nice_by = nv && *nv >= '0' && *nv <= '9' ? atoi(nv) : 10;
    int prio = getpriority(PRIO_PROCESS, 0) + (nice_by > 19 ? 19 : nice_by);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe calls only from here on */
        dup2(p[1], 1);
        /* only stdin/stdout/stderr: no inherited sockets or pipes keep a client's
         * connection (or anything else of the daemon's) open after it has gone */
        close_range(3, ~0U, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(120);
        setpriority(PRIO_PROCESS, 0, prio > 19 ? 19 : prio);
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    free(env);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *fd = p[0];
    return pid;
}

/* Reads the child's lines until it exits; returns its wait status. */
static int supervise(srv_jobs *J, job *j, pid_t pid, int fd, run_state *rs, int *user_cancel)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int sent_term = 0, killed = 0;
    double t_term = 0, last_check = 0;
    char cancel_file[4096];
    jobs_path(J, j->id, "cancel", cancel_file);
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, 200);
        if (r > 0) {
            if (cap - len < 65536) {
                size_t nc = cap ? cap * 2 : 131072;
                char *nb = nc <= (64u << 20) ? realloc(buf, nc) : NULL;
                if (!nb) { /* a runaway line: drop what we have */
                    len = 0;
                } else {
                    buf = nb;
                    cap = nc;
                }
            }
            ssize_t n = cap - len > 0 ? read(fd, buf + len, cap - len - 1) : 0;
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break; /* EOF: the child exited (or closed stdout) */
            len += (size_t)n;
            char *start = buf, *nl;
            while ((nl = memchr(start, '\n', (size_t)(buf + len - start)))) {
                *nl = '\0';
                on_line(J, j, rs, start);
                start = nl + 1;
            }
            len = (size_t)(buf + len - start);
            memmove(buf, start, len);
        }
        double now = sola_now_s();
        int c = atomic_load(&J->cancel);
        if (now - last_check > 0.5) {
            /* what other replicas did meanwhile: new jobs, cancel requests */
            last_check = now;
            if (!c && exists(cancel_file))
                atomic_store(&J->cancel, c = CANCEL_USER);
            jobs_refresh(J);
            cancel_requested(J);
        }
        if (c == CANCEL_USER)
            *user_cancel = 1;
        if (c && !sent_term) {
            kill(pid, SIGTERM); /* the child checkpoints at its next step and exits 3 */
            sent_term = 1;
            t_term = now;
        }
        if (sent_term && !killed && now - t_term > J->s->cfg.drain_timeout + 5) {
            srv_logf(J->s, "warn", "job %d: the training process did not stop within %.0f s; "
                     "killing it", j->id, J->s->cfg.drain_timeout + 5);
            kill(pid, SIGKILL);
            killed = 1;
        }
        if (rs->dirty && now - rs->last_write >= JOBS_RECORD_INTERVAL_S) {
            sola_err e = {0};
            jobs_write(J, j, &e); /* other replicas and restarts see the progress */
            rs->dirty = 0;
            rs->last_write = now;
        }
    }
    free(buf);
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void run_job(srv_jobs *J, job *j)
{
    sola_err e = {0};
    char dsdir[4096], snap[4096], ckpt[4096], base[4096], msg[600];
    int id = j->id;
    jobs_write(J, j, &e);
    jobs_notify(J);
    pthread_mutex_lock(&J->mu);
    api_train_spec sp = j->spec;
    int resume = j->resume;
    pthread_mutex_unlock(&J->mu);
    jobs_path(J, id, "data", snap);
    jobs_path(J, id, "ckpt", ckpt);
    jobs_path(J, id, "base", base);
    resume = resume && exists(ckpt);
    srv_logf(J->s, "info", "job %d started%s: dataset %s -> model %s", id,
             resume ? " (resuming from its checkpoint)" : "", sp.dataset, sp.output_model);

    /* Train on hard links of the items as they are now: uploads or deletes while the
     * job runs, or before it resumes, do not change what it reads. */
    if (!exists(snap) && sola_ds_snapshot(J->ds_root, sp.dataset, snap, &e)) {
        if (e.code == SOLA_ENOTFOUND) {
            snprintf(msg, sizeof msg, "dataset %s no longer exists", sp.dataset);
            jobs_finish(J, j, JS_FAILED, msg);
            return;
        }
        srv_logf(J->s, "warn", "job %d: %s; training on the live dataset", id, e.msg);
    }
    if (exists(snap))
        snprintf(dsdir, sizeof dsdir, "%s", snap);
    else
        snprintf(dsdir, sizeof dsdir, "%.3900s/%s", J->ds_root, sp.dataset);

    if (!resume && sp.base_model[0] && !exists(base)) {
        reg_ver *v = NULL;
        const sola_model *m = NULL;
        int rc = reg_acquire(J->s->reg, sp.base_model, sp.base_version, &v, &e);
        if (!rc && !(m = reg_get(J->s->reg, v, &e)))
            rc = e.code ? e.code : SOLA_EIO;
        if (!rc) {
            rc = sola_model_save(m, base, 1, &e);
            pthread_mutex_lock(&J->mu);
            j->base_version = reg_ver_version(v);
            pthread_mutex_unlock(&J->mu);
        }
        if (v)
            reg_release(J->s->reg, v);
        if (rc) {
            snprintf(msg, sizeof msg, "base model: %s", e.msg);
            jobs_finish(J, j, JS_FAILED, msg);
            return;
        }
    }

    char *spec = child_spec(J, j, dsdir, resume);
    int fd = -1;
    pid_t pid = spec ? spawn(spec, J->s->cfg.train_threads, &fd) : -1;
    free(spec);
    if (pid < 0) {
        snprintf(msg, sizeof msg, "cannot start the training process: %s", strerror(errno));
        jobs_finish(J, j, JS_FAILED, msg);
        return;
    }
    run_state rs = {0};
    int user_cancel = 0;
    int status = supervise(J, j, pid, fd, &rs, &user_cancel);

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rs.done) {
        if (jobs_register(J, j, &e)) {
            snprintf(msg, sizeof msg, "registering the model: %s", e.msg);
            jobs_finish(J, j, JS_FAILED, msg);
        } else {
            jobs_finish(J, j, JS_SUCCEEDED, NULL);
        }
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        snprintf(msg, sizeof msg, "solad was shutting down; POST /jobs/%d/resume continues "
                 "from the checkpoint", id);
        jobs_finish(J, j, user_cancel ? JS_CANCELLED : JS_INTERRUPTED, user_cancel ? NULL : msg);
    } else if (!user_cancel && atomic_load(&J->cancel) == CANCEL_SHUTDOWN) {
        snprintf(msg, sizeof msg, "solad was shutting down and the training process did not "
                 "stop in time; POST /jobs/%d/resume continues from the last checkpoint", id);
        jobs_finish(J, j, JS_INTERRUPTED, msg);
    } else if (rs.error[0]) {
        jobs_finish(J, j, user_cancel ? JS_CANCELLED : JS_FAILED, user_cancel ? NULL : rs.error);
    } else {
        if (WIFSIGNALED(status))
            snprintf(msg, sizeof msg, "the training process died (signal %d: %s)",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(msg, sizeof msg, "the training process exited with status %d",
                     WEXITSTATUS(status));
        jobs_finish(J, j, user_cancel ? JS_CANCELLED : JS_FAILED, user_cancel ? NULL : msg);
    }
}

void *jobs_thread(void *arg)
{
    srv_jobs *J = arg;
    for (;;) {
        pthread_mutex_lock(&J->mu);
        int stop = J->stop, draining = J->draining;
        pthread_mutex_unlock(&J->mu);
        if (stop)
            break;
        if (!atomic_load(&J->have_lock) && !draining && J->s->cfg.role != SRV_ROLE_SERVE)
            jobs_try_lock(J);
        jobs_refresh(J);
        job *j = atomic_load(&J->have_lock) && !draining ? pick(J) : NULL;
        if (j) {
            run_job(J, j);
            continue;
        }
        /* other replicas queue by writing records: look again in a moment */
        pthread_mutex_lock(&J->mu);
        if (!J->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 500 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&J->cv, &J->mu, &ts);
        }
        pthread_mutex_unlock(&J->mu);
    }
    if (atomic_load(&J->have_lock)) {
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
        fcntl(J->lock_fd, F_OFD_SETLK, &fl); /* another replica may take over at once */
        atomic_store(&J->have_lock, 0);
    }
    return NULL;
}
