/* train_spec.c -- the body of POST /train: parse, validate, and back to JSON (see
 * train.h). The objective table below is the one place that says what this build
 * can train. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "collapse.h"
#include "cycle.h"
#include "defaults.h"
#include "sola_loss.h"
#include "train.h"
#include "trainer.h"

/* Objectives the daemon knows by name, and whether this build trains them. When
 * `cycle` lands in the trainer, flip its flag (and add its parameters to `fields`). */
static const struct {
    const char *name;
    int available;
} objectives[] = {
    {"sola", 1},
    {"cycle", 1},
    {"sola+cycle", 1},
};

int api_train_objective_check(const char *name, sola_err *e)
{
    for (size_t i = 0; i < sizeof objectives / sizeof objectives[0]; i++)
        if (!strcmp(objectives[i].name, name))
            return objectives[i].available
                       ? 0
                       : sola_errf(e, SOLA_ESHAPE,
                                   "objective '%s' is not available in this build",
                                   name);
    return sola_errf(e, SOLA_EINVAL, "\"objective\": unknown objective '%.40s' (sola, cycle, "
                     "sola+cycle)", name);
}

void api_train_spec_default(api_train_spec *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->objective, sizeof s->objective, "sola");
    sola_train_cfg c;
    sola_train_cfg_default(&c);
    s->epochs = SOLA_DEFAULT_EPOCHS;
    s->batch = SOLA_DEFAULT_BATCH;
    s->lr = 0; /* the objective's default, resolved by the parse */
    s->seed = 0;
    s->window = c.W;
    s->positions = c.N;
    s->start = c.start;
    s->step = c.step;
    s->head = c.P;
    s->K = c.K;
    s->hidden = SOLA_DEFAULT_HIDDEN;
    s->kernel = SOLA_DEFAULT_K1;
    s->kernel2 = SOLA_DEFAULT_K2;
    s->checkpoint_every = SOLA_DEFAULT_CHECKPOINT_EVERY; /* a checkpoint holds 3x the params */
    s->collapse_ratio = SOLA_COLLAPSE_RATIO;
    s->collapse_share = SOLA_COLLAPSE_SHARE;
    sola_cycle_cfg cc;
    sola_cycle_cfg_default(&cc);
    s->temperature = cc.tau;
    s->cycle_lambda = cc.lambda;
    s->momentum = cc.momentum;
    s->queue = cc.queue;
    s->cycle_subset = cc.subset;
    s->cycle_hidden = cc.hidden;
    s->cycle_dim = cc.dim;
    s->sola_weight = 1;
    s->cycle_weight = 1;
}

/* The cycle settings of a spec as core takes them. */
void api_train_spec_cycle(const api_train_spec *s, sola_cycle_cfg *c)
{
    c->tau = (float)s->temperature;
    c->lambda = (float)s->cycle_lambda;
    c->momentum = (float)s->momentum;
    c->queue = s->queue;
    c->subset = s->cycle_subset;
    c->hidden = s->cycle_hidden;
    c->dim = s->cycle_dim;
}

enum { F_INT, F_NUM, F_U64, F_NUM0 }; /* F_NUM: lo < x <= hi; F_NUM0: lo <= x <= hi */

/* The numeric fields: name, kind, bounds, where; cycle = 1 for the settings of the
 * cycle objective (refused with objective sola, not shown for it). */
typedef struct field {
    const char *name;
    int kind;
    double lo, hi;
    size_t off;
    int cycle;
} field;

#define OFF(m) offsetof(api_train_spec, m)
static const field fields[] = {
    {"epochs", F_INT, 1, 1000000, OFF(epochs), 0},
    {"batch", F_INT, 1, 1 << 20, OFF(batch), 0},
    {"lr", F_NUM, 0, 10, OFF(lr), 0},
    {"seed", F_U64, 0, 9007199254740992.0, OFF(seed), 0},
    {"window", F_INT, 1, 1 << 16, OFF(window), 0},
    {"positions", F_INT, 1, 1 << 16, OFF(positions), 0},
    {"start", F_INT, 0, 1 << 16, OFF(start), 0},
    {"step", F_INT, 1, 1 << 16, OFF(step), 0},
    {"head", F_INT, 1, 1 << 16, OFF(head), 0},
    {"K", F_NUM, 0, 1e6, OFF(K), 0},
    {"hidden", F_INT, 1, 1 << 16, OFF(hidden), 0},
    {"kernel", F_INT, 1, 255, OFF(kernel), 0},
    {"kernel2", F_INT, 1, 255, OFF(kernel2), 0},
    {"checkpoint_every", F_INT, 0, 1000000, OFF(checkpoint_every), 0},
    {"collapse_ratio", F_NUM, 0, 1e6, OFF(collapse_ratio), 0},
    {"collapse_share", F_NUM0, 0, 1, OFF(collapse_share), 0},
    {"temperature", F_NUM, 0, 100, OFF(temperature), 1},
    {"cycle_lambda", F_NUM0, 0, 1e6, OFF(cycle_lambda), 1},
    {"momentum", F_NUM0, 0, 1, OFF(momentum), 1},
    {"queue", F_INT, 1, 1 << 22, OFF(queue), 1},
    {"cycle_subset", F_INT, 1, 1 << 22, OFF(cycle_subset), 1},
    {"cycle_hidden", F_INT, 1, 1 << 16, OFF(cycle_hidden), 1},
    {"cycle_dim", F_INT, 1, 1 << 16, OFF(cycle_dim), 1},
    {"sola_weight", F_NUM0, 0, 1e6, OFF(sola_weight), 1},
    {"cycle_weight", F_NUM0, 0, 1e6, OFF(cycle_weight), 1},
};
static const char *const strings[] = {"dataset", "objective", "base_model", "output_model"};

static int known_list(char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        k += (size_t)snprintf(out + k, n - k, "%s, ", strings[i]);
    k += (size_t)snprintf(out + k, n - k, "base_version, activate, schedule, stop_on_collapse");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, ", %s", fields[i].name);
    return 0;
}

static int parse_number(const field *f, json_t *v, api_train_spec *s, sola_err *e)
{
    char *p = (char *)s + f->off;
    if (f->kind == F_NUM || f->kind == F_NUM0) {
        if (!json_is_number(v))
            return sola_errf(e, SOLA_EINVAL, "\"%s\" must be a number", f->name);
        double d = json_number_value(v);
        int lo_ok = f->kind == F_NUM ? d > f->lo : d >= f->lo;
        if (!isfinite(d) || !lo_ok || d > f->hi)
            return sola_errf(e, SOLA_EINVAL, "\"%s\" must be %s %g and <= %g (got %g)",
                             f->name, f->kind == F_NUM ? ">" : ">=", f->lo, f->hi, d);
        memcpy(p, &d, sizeof d);
        return 0;
    }
    if (!json_is_integer(v))
        return sola_errf(e, SOLA_EINVAL, "\"%s\" must be an integer", f->name);
    json_int_t x = json_integer_value(v);
    if ((double)x < f->lo || (double)x > f->hi)
        return sola_errf(e, SOLA_EINVAL, "\"%s\" must be in [%.0f, %.0f] (got %lld)", f->name,
                         f->lo, f->hi, (long long)x);
    if (f->kind == F_U64) {
        uint64_t u = (uint64_t)x;
        memcpy(p, &u, sizeof u);
    } else {
        int i = (int)x;
        memcpy(p, &i, sizeof i);
    }
    return 0;
}

static int parse_name(const char *what, json_t *v, char *out, size_t n, sola_err *e)
{
    if (json_is_null(v)) {
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v))
        return sola_errf(e, SOLA_EINVAL, "\"%s\" must be a string", what);
    const char *s = json_string_value(v);
    char label[48];
    snprintf(label, sizeof label, "\"%s\"", what);
    int rc = strcmp(what, "objective") ? api_check_name(label, s, e) : 0;
    if (rc)
        return rc;
    if (strlen(s) >= n)
        return sola_errf(e, SOLA_EINVAL, "\"%s\" is too long", what);
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int api_train_spec_parse(json_t *o, api_train_spec *s, sola_err *e)
{
    api_train_spec_default(s);
    if (!json_is_object(o))
        return sola_errf(e, SOLA_EINVAL, "request body: expected a JSON object "
                         "{\"dataset\": NAME, ...}");
    const char *key, *cycle_key = NULL;
    json_t *v;
    int rc = 0, has_cycle = 0;
    json_object_foreach(o, key, v) {
        int done = 0;
        for (size_t i = 0; i < sizeof strings / sizeof strings[0] && !done; i++) {
            if (strcmp(key, strings[i]))
                continue;
            done = 1;
            char *dst = i == 0 ? s->dataset : i == 1 ? s->objective
                                            : i == 2 ? s->base_model : s->output_model;
            size_t n = i == 1 ? sizeof s->objective : sizeof s->dataset;
            rc = parse_name(key, v, dst, n, e);
        }
        for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !done; i++)
            if (!strcmp(key, fields[i].name)) {
                done = 1;
                rc = parse_number(&fields[i], v, s, e);
                has_cycle |= fields[i].cycle;
                if (fields[i].cycle && !cycle_key)
                    cycle_key = fields[i].name;
            }
        if (!done && !strcmp(key, "base_version")) {
            done = 1;
            if (json_is_null(v))
                s->base_version = 0;
            else if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                     json_integer_value(v) > INT32_MAX)
                rc = sola_errf(e, SOLA_EINVAL, "\"base_version\" must be a positive integer");
            else
                s->base_version = (int)json_integer_value(v);
        }
        if (!done && !strcmp(key, "schedule")) {
            done = 1;
            if (!json_is_string(v) || sola_schedule_parse(json_string_value(v)) < 0)
                rc = sola_errf(e, SOLA_EINVAL, "\"schedule\" must be \"constant\" or \"cosine\"");
            else
                snprintf(s->schedule, sizeof s->schedule, "%s", json_string_value(v));
        }
        if (!done && !strcmp(key, "stop_on_collapse")) {
            done = 1;
            if (!json_is_boolean(v))
                rc = sola_errf(e, SOLA_EINVAL, "\"stop_on_collapse\" must be true or false");
            else
                s->stop_on_collapse = json_is_true(v);
        }
        if (!done && !strcmp(key, "activate")) {
            done = 1;
            if (!json_is_boolean(v))
                rc = sola_errf(e, SOLA_EINVAL, "\"activate\" must be true or false");
            else
                s->activate = json_is_true(v);
        }
        if (!done) {
            char known[512];
            known_list(known, sizeof known);
            return sola_errf(e, SOLA_EINVAL, "unknown field \"%.40s\" (known: %s)", key, known);
        }
        if (rc)
            return rc;
    }
    if (!s->dataset[0])
        return sola_errf(e, SOLA_EINVAL, "\"dataset\" is required: the name of a dataset "
                         "uploaded with PUT /datasets/NAME");
    if ((rc = api_train_objective_check(s->objective, e)))
        return rc;
    /* lr and schedule not given: the objective's (docs/training.md) */
    float dlr;
    int dsched;
    if ((rc = sola_trainer_objective_defaults(s->objective, &dlr, &dsched, e)))
        return rc;
    if (s->lr == 0) { /* 1e-4, not the float's 9.99999975e-05 */
        char num[32];
        snprintf(num, sizeof num, "%.6g", (double)dlr);
        s->lr = strtod(num, NULL);
    }
    if (!s->schedule[0])
        snprintf(s->schedule, sizeof s->schedule, "%s", sola_schedule_name(dsched));
    int cyc = strcmp(s->objective, "sola") != 0;
    if (has_cycle && !cyc)
        return sola_errf(e, SOLA_EINVAL, "\"%s\" is a setting of the cycle objective: send "
                         "\"objective\": \"cycle\" or \"sola+cycle\"", cycle_key);
    if (cyc) {
        sola_cycle_cfg cc;
        api_train_spec_cycle(s, &cc);
        if ((rc = sola_cycle_cfg_check(&cc, e)))
            return rc;
    }
    if (s->base_version && !s->base_model[0])
        return sola_errf(e, SOLA_EINVAL, "\"base_version\" needs \"base_model\"");
    if (s->kernel % 2 == 0 || s->kernel2 % 2 == 0)
        return sola_errf(e, SOLA_EINVAL, "\"kernel\" and \"kernel2\" must be odd (got %d, %d)",
                         s->kernel, s->kernel2);
    sola_train_cfg c = {s->window, s->positions, s->start, s->step, s->head, (float)s->K};
    if ((rc = sola_train_cfg_check(&c, e)))
        return rc;
    if (!s->output_model[0])
        snprintf(s->output_model, sizeof s->output_model, "%s",
                 s->base_model[0] ? s->base_model : s->dataset);
    return 0;
}

json_t *api_train_spec_json(const api_train_spec *s)
{
    json_t *o = json_pack("{s:s,s:s,s:s?,s:s,s:b}", "dataset", s->dataset, "objective",
                          s->objective, "base_model", s->base_model[0] ? s->base_model : NULL,
                          "output_model", s->output_model, "activate", s->activate);
    if (!o)
        return NULL;
    if (s->base_version)
        json_object_set_new(o, "base_version", json_integer(s->base_version));
    if (s->schedule[0])
        json_object_set_new(o, "schedule", json_string(s->schedule));
    json_object_set_new(o, "stop_on_collapse", json_boolean(s->stop_on_collapse));
    int cyc = strcmp(s->objective, "sola") != 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const field *f = &fields[i];
        const char *p = (const char *)s + f->off;
        json_t *v;
        if (f->cycle && !cyc)
            continue;
        if (f->kind == F_NUM || f->kind == F_NUM0) {
            double d;
            memcpy(&d, p, sizeof d);
            v = json_real(d);
        } else if (f->kind == F_U64) {
            uint64_t u;
            memcpy(&u, p, sizeof u);
            v = json_integer((json_int_t)u);
        } else {
            int x;
            memcpy(&x, p, sizeof x);
            v = json_integer(x);
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}
