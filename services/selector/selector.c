/* selector.c - library bookkeeping in Redis and front publication around select.c. */
#include "selector.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "select.h"

/* Validation probabilities loaded from Redis, kept for the next recomputation. */
struct ens_selector_cache_s {
    int n, cap;
    struct {
        char study[ENS_ID_MAX], model[ENS_ID_MAX];
        float *probs;
        size_t len;
    } *e;
};

static const float *cached_probs(ens_selector_t *s, const char *study, const char *model,
                                 size_t want, char *errstr, size_t size, ens_err_t *err) {
    if (!s->cache && !(s->cache = calloc(1, sizeof *s->cache))) {
        *err = ENS_ERR_NOMEM;
        return NULL;
    }
    ens_selector_cache_t *c = s->cache;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].study, study) && !strcmp(c->e[i].model, model))
            return c->e[i].probs;
    char key[256];
    void *blob = NULL;
    size_t len = 0;
    ens_key(key, sizeof key, study, "probs:%s", model);
    if ((*err = ens_store_blob_get(s->redis, key, &blob, &len, errstr, size)))
        return NULL;
    if (len != want) {
        free(blob);
        *err = ens_err_set(errstr, size, ENS_ERR_CORRUPT,
                           "probabilities of %s have %zu bytes, expected %zu", model, len, want);
        return NULL;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        void *e = realloc(c->e, (size_t)cap * sizeof *c->e);
        if (!e) {
            free(blob);
            *err = ENS_ERR_NOMEM;
            return NULL;
        }
        c->e = e;
        c->cap = cap;
    }
    snprintf(c->e[c->n].study, ENS_ID_MAX, "%s", study);
    snprintf(c->e[c->n].model, ENS_ID_MAX, "%s", model);
    c->e[c->n].probs = blob;
    c->e[c->n].len = len;
    return c->e[c->n++].probs;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The library (sorted ids) with each member's cost; models are freed by the caller. */
static ens_err_t load_library(ens_selector_t *s, const ens_model_evaluated_t *me,
                              ens_library_member_t **lib_out, redisReply **ids_out, int *n_out,
                              char *errstr, size_t size) {
    char key[256];
    ens_key(key, sizeof key, me->study_id, "library");
    redisReply *ids = ens_redis_command(s->redis, errstr, size, "SMEMBERS %s", key);
    if (!ids)
        return ENS_ERR_REDIS;
    if (ids->type != REDIS_REPLY_ARRAY || ids->elements == 0 || ids->elements > 100000) {
        ens_redis_reply_free(ids);
        return ens_err_set(errstr, size, ENS_ERR_REDIS, "library of %s unreadable", me->study_id);
    }
    int n = (int)ids->elements;
    const char **names = malloc((size_t)n * sizeof *names);
    ens_library_member_t *lib = calloc((size_t)n, sizeof *lib);
    ens_err_t err = names && lib ? ENS_OK : ENS_ERR_NOMEM;
    for (int i = 0; !err && i < n; i++)
        names[i] = ids->element[i]->str;
    if (!err)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    size_t want = (size_t)me->n_val * (size_t)me->n_classes * sizeof(float);
    for (int i = 0; !err && i < n; i++) {
        lib[i].model_id = names[i];
        ens_key(key, sizeof key, me->study_id, "eval:%s", names[i]);
        redisReply *rep = ens_redis_command(s->redis, errstr, size,
                                            "HMGET %s ms_per_sample memory_bytes", key);
        if (!rep)
            err = ENS_ERR_REDIS;
        else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                 rep->element[0]->type == REDIS_REPLY_STRING &&
                 rep->element[1]->type == REDIS_REPLY_STRING) {
            lib[i].ms_per_sample = strtod(rep->element[0]->str, NULL);
            lib[i].memory_bytes = strtoll(rep->element[1]->str, NULL, 10);
        } else
            err = ens_err_set(errstr, size, ENS_ERR_NOTFOUND, "no evaluation of %s", names[i]);
        ens_redis_reply_free(rep);
        if (!err)
            lib[i].probs = cached_probs(s, me->study_id, names[i], want, errstr, size, &err);
    }
    free(names);
    if (err) {
        free(lib);
        ens_redis_reply_free(ids);
        return err;
    }
    *lib_out = lib;
    *ids_out = ids;
    *n_out = n;
    return ENS_OK;
}

static ens_err_t compute_front(ens_selector_t *s, const ens_model_evaluated_t *me,
                               ens_library_member_t *lib, int n, int top_k, ens_event_t *out,
                               char *errstr, size_t size) {
    char key[256];
    void *labels = NULL;
    size_t len = 0;
    ens_key(key, sizeof key, me->study_id, "val_labels");
    ens_err_t err = ens_store_blob_get(s->redis, key, &labels, &len, errstr, size);
    if (err)
        return err;
    if (len != (size_t)me->n_val * sizeof(int32_t)) {
        free(labels);
        return ens_err_set(errstr, size, ENS_ERR_CORRUPT, "validation labels have %zu bytes",
                           len);
    }
    ens_selection_data_t d = {.n = me->n_val, .k = me->n_classes, .labels = labels};
    int32_t *sel = NULL, *hold = NULL;
    err = ens_select_halves(d.n, &sel, &d.n_sel, &hold, &d.n_hold);
    d.sel_idx = sel;
    d.hold_idx = hold;
    ens_ensemble_front_t *f = &out->u.ensemble_front;
    f->ensembles = calloc(2, sizeof *f->ensembles);
    if (!err && !f->ensembles)
        err = ENS_ERR_NOMEM;
    if (!err)
        err = ens_select_single(lib, n, &d, &f->ensembles[f->n_ensembles++]);
    if (!err && top_k > 1 && n > 1) {
        err = ens_select_topk(lib, n, &d, top_k, &f->ensembles[f->n_ensembles]);
        f->n_ensembles++; /* counted even on failure so that the event frees it */
    }
    for (int i = 0; !err && i < f->n_ensembles; i++)
        snprintf(f->ensembles[i].ensemble_id, ENS_ID_MAX, "%s%d-n%d", f->ensembles[i].method,
                 (int)f->ensembles[i].n_members, n);
    free(sel);
    free(hold);
    free(labels);
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
    char key[256];
    ens_key(key, sizeof key, me->study_id, "library");
    ens_err_t err = ens_redis_exec(s->redis, errstr, size, "SADD %s %s", key, me->model_id);
    if (err)
        return err;
    ens_key(key, sizeof key, me->study_id, "study");
    redisReply *rep = ens_redis_command(s->redis, errstr, size, "HGET %s top_k", key);
    if (!rep)
        return ENS_ERR_REDIS;
    int top_k = rep->type == REDIS_REPLY_STRING ? atoi(rep->str) : 5;
    ens_redis_reply_free(rep);

    ens_library_member_t *lib = NULL;
    redisReply *ids = NULL;
    int n = 0;
    if ((err = load_library(s, me, &lib, &ids, &n, errstr, size)))
        return err;
    ens_event_t out;
    ens_event_init(&out, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *f = &out.u.ensemble_front;
    snprintf(f->study_id, sizeof f->study_id, "%s", me->study_id);
    snprintf(f->front_id, sizeof f->front_id, "front-n%d", n);
    f->n_models = n;
    err = compute_front(s, me, lib, n, top_k, &out, errstr, size);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!err)
        err = ens_event_encode(&out, &buf, &len, errstr, size);
    ens_key(key, sizeof key, me->study_id, "front");
    if (!err)
        err = ens_redis_exec(s->redis, errstr, size, "SET %s %b", key, buf, len);
    if (!err) {
        for (int i = 0; i < f->n_ensembles; i++)
            ENS_INFO("study=%s msg=\"front member\" ensemble=%s members=%d val_acc=%.4f "
                     "holdout_acc=%.4f cost_ms=%.4f",
                     f->study_id, f->ensembles[i].ensemble_id, (int)f->ensembles[i].n_members,
                     f->ensembles[i].val_accuracy, f->ensembles[i].holdout_accuracy,
                     f->ensembles[i].cost_ms_per_sample);
        err = ens_kafka_produce(s->producer, ENS_TOPIC_ENSEMBLE_FRONTS, f->study_id, buf, len,
                                ens_event_type_name(out.type), ev->event_id, errstr, size);
    }
    free(buf);
    ens_event_free(&out);
    free(lib);
    ens_redis_reply_free(ids);
    return err;
}

void ens_selector_close(ens_selector_t *s) {
    if (!s->cache)
        return;
    for (int i = 0; i < s->cache->n; i++)
        free(s->cache->e[i].probs);
    free(s->cache->e);
    free(s->cache);
    s->cache = NULL;
}
