/* selector.c - library bookkeeping in the state, debounced recomputation and front publication. */
#include "selector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/ensemble.h"
#include "ensflow/log.h"

/* A library member whose validation probabilities are loaded (decoded to float32). */
typedef struct {
    char id[ENS_ID_MAX];
    float *probs;
    double ms_per_sample;
    int64_t memory_bytes;
} cached_model_t;

/* One study: its loaded library and whether its front is behind. */
typedef struct {
    char id[ENS_ID_MAX];
    int32_t n_val, k;   /* 0 = not known yet */
    int32_t *labels;    /* n_val of them, or NULL */
    cached_model_t *m;
    int n, cap;
    int dirty;
    double first_ms, last_ms; /* oldest and newest unpublished model (monotonic ms) */
} study_t;

struct ens_selector_cache_s {
    study_t *st;
    int n, cap;
    int recovered; /* the dirty set of an earlier run was read */
};

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void study_clear(study_t *st) {
    for (int i = 0; i < st->n; i++)
        free(st->m[i].probs);
    free(st->m);
    free(st->labels);
    st->m = NULL;
    st->labels = NULL;
    st->n = st->cap = 0;
}

static study_t *study_get(ens_selector_t *s, const char *id) {
    if (!s->cache && !(s->cache = calloc(1, sizeof *s->cache)))
        return NULL;
    ens_selector_cache_t *c = s->cache;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->st[i].id, id))
            return &c->st[i];
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        void *p = realloc(c->st, (size_t)cap * sizeof *c->st);
        if (!p)
            return NULL;
        c->st = p;
        c->cap = cap;
    }
    study_t *st = &c->st[c->n++];
    memset(st, 0, sizeof *st);
    snprintf(st->id, sizeof st->id, "%s", id);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The model's cost and its probabilities from the state, appended to the study's cache. */
static ens_err_t load_model(ens_selector_t *s, study_t *st, const char *model, char *errstr,
                            size_t size) {
    ens_state_eval_t ev;
    ens_err_t err = ens_state_eval_get(s->state, st->id, model, &ev, errstr, size);
    if (err)
        return err;
    cached_model_t cm = {0};
    snprintf(cm.id, sizeof cm.id, "%s", model);
    cm.ms_per_sample = ev.ms_per_sample;
    cm.memory_bytes = ev.memory_bytes;
    err = ens_state_probs_get(s->state, st->id, model, st->n_val, st->k, ev.probs_f16,
                              &cm.probs, errstr, size);
    if (err)
        return err;
    if (st->n == st->cap) {
        int cap = st->cap ? st->cap * 2 : 16;
        void *p = realloc(st->m, (size_t)cap * sizeof *st->m);
        if (!p) {
            free(cm.probs);
            return ENS_ERR_NOMEM;
        }
        st->m = p;
        st->cap = cap;
    }
    st->m[st->n++] = cm;
    return ENS_OK;
}

/* Sizes and labels of a study not seen since this process started (restart recovery). */
static ens_err_t load_shape(ens_selector_t *s, study_t *st, const char *any_model, char *errstr,
                            size_t size) {
    if (!st->k) {
        ens_state_eval_t ev;
        ens_err_t err = ens_state_eval_get(s->state, st->id, any_model, &ev, errstr, size);
        if (err && err != ENS_ERR_NOTFOUND)
            return err;
        st->n_val = ev.n_val;
        st->k = ev.n_classes;
        if (st->n_val <= 0 || st->k <= 0 || st->k > 100000) {
            st->n_val = st->k = 0;
            return ens_err_set(errstr, size, ENS_ERR_NOTFOUND,
                               "shape of the library of %s unknown", st->id);
        }
    }
    if (st->labels)
        return ENS_OK;
    return ens_state_labels_get(s->state, st->id, st->n_val, st->k, &st->labels, errstr, size);
}

/* The front's ensembles: single, top-K, Caruana, then the mogreedy front cheapest first. */
static ens_err_t run_all(const ens_selector_t *s, const ens_library_member_t *lib, int n,
                         const ens_selection_data_t *d, int top_k, ens_ensemble_front_t *f) {
    static const char *methods[] = {"single", "topk", "caruana", "mogreedy"};
    ens_select_opts_t o = s->opts;
    o.top_k = top_k;
    ens_ensemble_t *got[4] = {0};
    int n_got[4] = {0}, total = 0;
    ens_err_t err = ENS_OK;
    for (int i = 0; i < 4 && !err; i++) {
        if (i == 1 && (top_k < 2 || n < 2))
            continue;
        err = ens_select_run(methods[i], lib, n, d, &o, &got[i], &n_got[i]);
        total += n_got[i];
    }
    if (!err && !(f->ensembles = calloc((size_t)total + 1, sizeof *f->ensembles)))
        err = ENS_ERR_NOMEM;
    for (int i = 0; i < 4; i++) {
        if (!err && got[i]) { /* move the ensembles; their heap members now belong to the event */
            memcpy(f->ensembles + f->n_ensembles, got[i], (size_t)n_got[i] * sizeof *got[i]);
            f->n_ensembles += n_got[i];
            free(got[i]);
        } else
            ens_select_ensembles_free(got[i], n_got[i]);
    }
    return err;
}

ens_err_t ens_selector_recompute(ens_selector_t *s, const char *study_id, ens_event_t *out,
                                 char *errstr, size_t size) {
    double t0 = mono_ms();
    study_t *st = study_get(s, study_id);
    if (!st)
        return ENS_ERR_NOMEM;
    ens_state_study_t study; /* a study without its record still has the default top_k */
    ens_err_t err = ens_state_study_get(s->state, study_id, &study, errstr, size);
    if (err && err != ENS_ERR_NOTFOUND)
        return err;
    int top_k = study.top_k;

    char **ids = NULL;
    int n = 0, n_new = 0;
    if ((err = ens_state_library_list(s->state, study_id, &ids, &n, errstr, size)))
        return err;
    if (n == 0) {
        ens_state_strings_free(ids, n);
        return ens_err_set(errstr, size, ENS_ERR_REDIS, "library of %s unreadable", study_id);
    }
    const char **names = malloc((size_t)n * sizeof *names);
    ens_library_member_t *lib = calloc((size_t)n, sizeof *lib);
    char *is_new = calloc((size_t)n, 1);
    int *row = calloc((size_t)n, sizeof *row); /* each member's row in the cache */
    int32_t *sel = NULL, *hold = NULL;
    err = names && lib && is_new && row ? ENS_OK : ENS_ERR_NOMEM;
    for (int i = 0; !err && i < n; i++)
        names[i] = ids[i];
    if (!err) {
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        err = load_shape(s, st, names[0], errstr, size);
    }
    for (int i = 0; !err && i < n; i++) {
        int found = -1;
        for (int j = 0; j < st->n && found < 0; j++)
            if (!strcmp(st->m[j].id, names[i]))
                found = j;
        if (found < 0) {
            if ((err = load_model(s, st, names[i], errstr, size)))
                break;
            found = st->n - 1;
            is_new[i] = 1;
            n_new++;
        }
        row[i] = found;
    }
    /* only now: loading a model may move st->m, and with it the ids lib points at */
    for (int i = 0; !err && i < n; i++) {
        const cached_model_t *cm = &st->m[row[i]];
        lib[i] = (ens_library_member_t){cm->id, cm->probs, cm->ms_per_sample, cm->memory_bytes};
    }
    ens_selection_data_t d = {.n = st->n_val, .k = st->k, .labels = st->labels};
    if (!err)
        err = ens_select_halves(d.n, &sel, &d.n_sel, &hold, &d.n_hold);
    d.sel_idx = sel;
    d.hold_idx = hold;
    /* every model's own point, for the report */
    for (int i = 0; !err && i < n; i++) {
        if (!is_new[i])
            continue;
        ens_state_eval_t halves = {
            .sel_accuracy = ens_accuracy(lib[i].probs, d.labels, d.sel_idx, d.n_sel, d.k),
            .holdout_accuracy = ens_accuracy(lib[i].probs, d.labels, d.hold_idx, d.n_hold, d.k),
            .sel_logloss = ens_logloss(lib[i].probs, d.labels, d.sel_idx, d.n_sel, d.k),
            .holdout_logloss = ens_logloss(lib[i].probs, d.labels, d.hold_idx, d.n_hold, d.k)};
        err = ens_state_eval_put_halves(s->state, study_id, names[i], &halves, errstr, size);
    }
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *f = &ev.u.ensemble_front;
    snprintf(f->study_id, sizeof f->study_id, "%s", study_id);
    snprintf(f->front_id, sizeof f->front_id, "front-n%d", n);
    f->n_models = n;
    double t_sel = mono_ms();
    if (!err)
        err = run_all(s, lib, n, &d, top_k, f);
    t_sel = mono_ms() - t_sel;
    if (!err)
        err = ens_state_front_put(s->state, study_id, &ev, errstr, size);
    if (!err)
        err = ens_kafka_produce_event(s->producer, ENS_TOPIC_ENSEMBLE_FRONTS, study_id, &ev,
                                      ev.event_id, errstr, size);
    if (!err) {
        for (int i = 0; i < f->n_ensembles; i++)
            ENS_DEBUG("select",
                      "study=%s msg=\"front member\" ensemble=%s members=%d val_acc=%.4f "
                      "holdout_acc=%.4f val_logloss=%.4f holdout_logloss=%.4f cost_ms=%.4f",
                      study_id, f->ensembles[i].ensemble_id, (int)f->ensembles[i].n_members,
                      f->ensembles[i].val_accuracy, f->ensembles[i].holdout_accuracy,
                      f->ensembles[i].val_logloss, f->ensembles[i].holdout_logloss,
                      f->ensembles[i].cost_ms_per_sample);
        /* best: what `ensflow deploy` without limits would take */
        int b = ens_ensemble_choose(f->ensembles, f->n_ensembles, NULL);
        const ens_ensemble_t *best = &f->ensembles[b < 0 ? f->n_ensembles - 1 : b];
        ENS_INFO("study=%s msg=\"front published\" models=%d new=%d ensembles=%d "
                 "best=%s holdout_acc=%.4f holdout_logloss=%.4f cost_ms=%.4f select_ms=%.1f "
                 "total_ms=%.1f",
                 study_id, n, n_new, (int)f->n_ensembles, best->ensemble_id,
                 best->holdout_accuracy, best->holdout_logloss, best->cost_ms_per_sample, t_sel,
                 mono_ms() - t0);
    }
    if (!err && out)
        *out = ev;
    else
        ens_event_free(&ev);
    free(sel);
    free(hold);
    free(is_new);
    free(row);
    free(lib);
    free(names);
    ens_state_strings_free(ids, n);
    return err;
}

ens_err_t ens_selector_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_selector_t *s = ctx;
    if (ev->type != ENS_EV_MODEL_EVALUATED)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "selector does not take %s",
                           ens_event_type_name(ev->type));
    const ens_model_evaluated_t *me = &ev->u.model_evaluated;
    if (me->n_val <= 0 || me->n_classes <= 0 || me->n_classes > 100000)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model %s: bad n_val/n_classes",
                           me->model_id);
    ens_err_t err = ens_state_library_add(s->state, me->study_id, me->model_id, errstr, size);
    if (!err)
        err = ens_state_dirty_add(s->state, me->study_id, errstr, size);
    if (err)
        return err;
    study_t *st = study_get(s, me->study_id);
    if (!st)
        return ENS_ERR_NOMEM;
    if (st->n_val != me->n_val || st->k != me->n_classes) { /* a new shape: start over */
        study_clear(st);
        st->n_val = me->n_val;
        st->k = me->n_classes;
    }
    double now = mono_ms();
    if (!st->dirty)
        st->first_ms = now;
    st->dirty = 1;
    st->last_ms = now;
    return ENS_OK;
}

void ens_selector_tick(void *ctx) {
    ens_selector_t *s = ctx;
    char errstr[512];
    if (!s->cache && !(s->cache = calloc(1, sizeof *s->cache)))
        return;
    if (!s->cache->recovered) {
        char **ids = NULL;
        int n = 0;
        if (!ens_state_dirty_list(s->state, &ids, &n, errstr, sizeof errstr)) {
            for (int i = 0; i < n; i++) {
                study_t *st = ids[i][0] ? study_get(s, ids[i]) : NULL;
                if (st && !st->dirty) {
                    st->dirty = 1;
                    st->first_ms = st->last_ms = 0; /* due now */
                }
            }
            s->cache->recovered = 1;
        } else
            ENS_WARN("msg=\"cannot read the dirty set\" error=\"%s\"", errstr);
        ens_state_strings_free(ids, n);
    }
    double now = mono_ms();
    for (int i = 0; i < s->cache->n; i++) {
        study_t *st = &s->cache->st[i];
        if (!st->dirty || (now - st->last_ms < s->debounce_ms &&
                           now - st->first_ms < s->max_delay_ms))
            continue;
        char id[ENS_ID_MAX];
        snprintf(id, sizeof id, "%s", st->id); /* recompute may move the study array */
        ens_err_t err = ens_selector_recompute(s, id, NULL, errstr, sizeof errstr);
        if (!err)
            err = ens_kafka_flush(s->producer, 30000, errstr, sizeof errstr);
        if (!err)
            err = ens_state_dirty_remove(s->state, id, errstr, sizeof errstr);
        st = &s->cache->st[i];
        if (err) {
            ENS_WARN("study=%s msg=\"front not published, will retry\" error=\"%s\"", id,
                     errstr);
            st->last_ms = mono_ms() + 5000; /* quiet for 5 s more before the next try */
            st->first_ms = st->last_ms;
        } else
            st->dirty = 0;
    }
}

void ens_selector_close(ens_selector_t *s) {
    if (!s->cache)
        return;
    for (int i = 0; i < s->cache->n; i++)
        study_clear(&s->cache->st[i]);
    free(s->cache->st);
    free(s->cache);
    s->cache = NULL;
}
