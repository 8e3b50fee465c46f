/* train_worker.c -- `solad --train-worker SPEC`: the process that runs one training
 * job for the daemon's job thread (jobs_run.c), with its own OpenBLAS threads.
 *
 * SPEC is the job's spec as JSON (api_train_spec_json) plus where things are:
 * dataset_dir, checkpoint, output, base (a model file, or null for a fresh model),
 * resume, threads. Progress goes to stdout as one JSON object per line (the
 * protocol is described for users of the job routes in docs/jobs.md, "Progress"):
 *   {"type":"start","resumed_epoch":E,"resumed_step":S,"history":[E losses]}
 *       once, first: where this run starts and the loss of every epoch before it (from
 *       the checkpoint; [] for a fresh run). The only line that carries a history.
 *   {"type":"progress","epoch":..,"step":..,"loss":..,...}
 *       a few a second, and at every epoch's end, which adds "epoch_done":true,
 *       "epochs_done":N and "epoch_loss": the mean loss of epoch N -- one number, so a
 *       line costs the same at epoch 10 and at epoch 100000. solad appends it.
 *   {"type":"done","epochs_done":N} | {"type":"cancelled","message":..}
 *       | {"type":"error","message":..}
 * New fields go into these objects; solad ignores what it does not know.
 * Exit status: 0 the model is at `output`; 3 cancelled (SIGTERM), the checkpoint
 * written; 1 failed; 2 bad SPEC. */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cycle.h"
#include "dataset.h"
#include "jobs.h"
#include "model.h"
#include "train.h"
#include "trainer.h"

static atomic_int cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&cancel_flag, 1);
}

/* One line on stdout (the parent may be gone: errors are ignored). */
static void emit(json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return;
    size_t n = strlen(text);
    text[n] = '\n';
    for (size_t off = 0; off <= n;) {
        ssize_t w = write(1, text + off, n + 1 - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(text);
}

typedef struct prog {
    double last;
    long epoch_delay_ms; /* testing aid: $SOLAD_DEBUG_EPOCH_DELAY_MS, a pause after each epoch */
} prog;

static void on_progress(const sola_train_progress *p, void *ud)
{
    prog *g = ud;
    double now = sola_now_s();
    /* a few lines a second are plenty for a progress bar; epoch ends always go */
    if (!p->epoch_done && !p->checkpointed && g->last > 0 && now - g->last < 0.2)
        return;
    g->last = now;
    json_t *o = json_pack("{s:s,s:i,s:i,s:I,s:I,s:f,s:f,s:f,s:i,s:i,s:b,s:b}", "type",
                          "progress", "epoch", p->epoch, "epochs", p->epochs, "step",
                          (json_int_t)p->step, "steps_per_epoch", (json_int_t)p->steps_per_epoch,
                          "loss", isfinite(p->loss) ? p->loss : -1.0, "windows_per_s",
                          p->windows_per_s, "eta_s", p->eta_s, "videos", p->videos, "skipped",
                          p->skipped, "epoch_done", p->epoch_done, "checkpointed",
                          p->checkpointed);
    if (o && p->epoch_done && p->nhistory > 0) {
        json_object_set_new(o, "epochs_done", json_integer(p->nhistory));
        json_object_set_new(o, "epoch_loss", json_real(p->history[p->nhistory - 1]));
    }
    if (o && p->monitored) /* the collapse guard, at epoch ends */
        json_object_set_new(o, "guard", json_pack("{s:f,s:f,s:b}", "norm_ratio", p->norm_ratio,
                                                  "const_share", p->const_share, "collapse",
                                                  p->collapse));
    emit(o);
    /* tests that must see a job mid-run (stop a trainer, watch a curve grow) pace it
     * here, so that they do not depend on how fast this machine trains; a signal
     * (SIGTERM, cancel) cuts the pause short */
    if (p->epoch_done && g->epoch_delay_ms > 0) {
        struct timespec ts = {g->epoch_delay_ms / 1000, (g->epoch_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int fail(int status, const char *type, const char *msg)
{
    emit(json_pack("{s:s,s:s}", "type", type, "message", msg));
    return status;
}

int srv_train_worker_main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc != 3)
        return fail(2, "error", "usage: solad --train-worker SPEC (started by solad itself)");
    json_error_t je;
    json_t *o = json_loads(argv[2], 0, &je);
    if (!o)
        return fail(2, "error", "train worker: the spec is not JSON");
    char dsdir[4096], ckpt[4096], out[4096], base[4096];
    const char *s;
    snprintf(dsdir, sizeof dsdir, "%s", (s = json_string_value(json_object_get(o, "dataset_dir"))) ? s : "");
    snprintf(ckpt, sizeof ckpt, "%s", (s = json_string_value(json_object_get(o, "checkpoint"))) ? s : "");
    snprintf(out, sizeof out, "%s", (s = json_string_value(json_object_get(o, "output"))) ? s : "");
    snprintf(base, sizeof base, "%s", (s = json_string_value(json_object_get(o, "base"))) ? s : "");
    int resume = json_is_true(json_object_get(o, "resume"));
    int threads = (int)json_integer_value(json_object_get(o, "threads"));
    const char *keys[] = {"dataset_dir", "checkpoint", "output", "base", "resume", "threads"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_del(o, keys[i]);
    api_train_spec sp;
    sola_err e = {0};
    int rc = api_train_spec_parse(o, &sp, &e);
    json_decref(o);
    if (rc)
        return fail(2, "error", e.msg);
    if (!dsdir[0] || !ckpt[0] || !out[0])
        return fail(2, "error", "train worker: the spec lacks dataset_dir, checkpoint or output");

    sola_dataset *d = NULL;
    sola_model *m = NULL;
    sola_train_result res = {0};
    int status = 1;
    if ((rc = sola_dataset_open(dsdir, &d, &e)))
        goto done;
    if (resume && access(ckpt, F_OK) == 0) {
        m = sola_model_load(ckpt, &e);
    } else if (base[0]) {
        m = sola_model_load(base, &e);
        resume = 0;
    } else {
        resume = 0;
        if ((m = sola_model_new(d->C, sp.hidden, sp.kernel, sp.kernel2, 0, &e))) {
            sola_model_init(m, sp.seed);
            if (sola_model_pack(m, &e)) {
                sola_model_free(m);
                m = NULL;
            }
        }
    }
    if (!m) {
        rc = e.code ? e.code : SOLA_EIO;
        goto done;
    }
    {
        /* where this run starts, and the epochs before it (the checkpoint's history) */
        const sola_tensor *st = resume ? sola_model_extra(m, "trainer.step") : NULL;
        const sola_tensor *ht = resume ? sola_model_extra(m, "trainer.loss_history") : NULL;
        int ep0 = resume ? sola_trainer_state_epoch(m) : 0;
        json_t *h = json_array();
        for (int i = 0; ht && ht->data && i < ep0 && (size_t)i < sola_tensor_numel(ht); i++)
            json_array_append_new(h, json_real(ht->data[i]));
        emit(json_pack("{s:s,s:i,s:I,s:o}", "type", "start", "resumed_epoch", ep0,
                       "resumed_step", (json_int_t)(st && st->data ? st->data[0] : 0),
                       "history", h));
    }
    sola_trainer_opts opts;
    sola_trainer_default(&opts);
    opts.cfg.W = sp.window;
    opts.cfg.N = sp.positions;
    opts.cfg.start = sp.start;
    opts.cfg.step = sp.step;
    opts.cfg.P = sp.head;
    opts.cfg.K = (float)sp.K;
    opts.lr = (float)sp.lr;
    opts.schedule = sola_schedule_parse(sp.schedule) > 0 ? sola_schedule_parse(sp.schedule)
                                                         : SOLA_SCHED_DEFAULT;
    opts.stop_on_collapse = sp.stop_on_collapse;
    opts.collapse_ratio = sp.collapse_ratio;
    opts.collapse_share = sp.collapse_share;
    opts.batch = sp.batch;
    opts.epochs = sp.epochs;
    opts.seed = sp.seed;
    opts.threads = threads > 0 ? threads : 0;
    opts.checkpoint = ckpt;
    opts.checkpoint_every = sp.checkpoint_every;
    opts.resume = resume;
    opts.objective = sp.objective;
    api_train_spec_cycle(&sp, &opts.cycle);
    opts.sola_weight = (float)sp.sola_weight;
    opts.cycle_weight = (float)sp.cycle_weight;
    opts.dataset_name = sp.dataset;
    prog g = {0};
    const char *dv = getenv("SOLAD_DEBUG_EPOCH_DELAY_MS");
    if (dv && *dv >= '0' && *dv <= '9')
        g.epoch_delay_ms = strtol(dv, NULL, 10) % 60000;
    opts.progress = on_progress;
    opts.ud = &g;
    opts.cancel = &cancel_flag;
    rc = sola_train(m, d, &opts, &res, &e);
    if (rc == 0) {
        /* the served model: parameters and provenance, not the optimizer state */
        if ((rc = sola_model_save(m, out, 0, &e)) == 0) {
            emit(json_pack("{s:s,s:i}", "type", "done", "epochs_done", res.epochs_done));
            status = 0;
        }
    } else if (rc == SOLA_ECANCEL) {
        status = fail(3, "cancelled", e.msg);
        rc = 0;
    } else if (rc == SOLA_ECOLLAPSE) {
        /* stop_on_collapse: the job's result is the last state the guard passed, which
         * the trainer wrote to the checkpoint; the record says where it stopped */
        char why[SOLA_ERRLEN];
        snprintf(why, sizeof why, "the collapse guard stopped training at the end of epoch %d "
                 "(norm ratio %.2f, constant share %.0f%%); the new version holds the state at "
                 "the end of epoch %d, the last one it passed", res.collapse_epoch,
                 res.norm_ratio, 100 * res.const_share, res.good_epoch);
        sola_model *good = sola_model_load(ckpt, &e);
        if (good && (rc = sola_model_save(good, out, 0, &e)) == 0) {
            emit(json_pack("{s:s,s:i,s:s}", "type", "done", "epochs_done", res.good_epoch,
                           "stopped", why));
            status = 0;
        } else if (!good) {
            rc = e.code ? e.code : SOLA_EIO;
        }
        sola_model_free(good);
    }
done:
    if (rc)
        status = fail(1, "error", e.msg[0] ? e.msg : sola_strerror(rc));
    sola_train_result_free(&res);
    sola_model_free(m);
    sola_dataset_free(d);
    return status;
}
