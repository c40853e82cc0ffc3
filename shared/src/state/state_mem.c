/* state_mem.c - the state layer in memory, for unit tests of the services' handlers: the same
 * operations as Redis over one table of entries (state_mem_base.c), no TTLs, one thread. One
 * implementation of struct ens_state_i, operation for operation beside state_redis.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state.h"
#include "state_internal.h"

typedef ens_state_mem_ctx_t mem_state_t; /* state_internal.h: its parts share it */

/* An evaluation: the evaluator's fields and the selector's, written apart as in Redis. */
typedef struct {
    ens_state_eval_t e;
    int has_main; /* the evaluator's HSET happened (ms_per_sample, memory_bytes...) */
} mem_eval_t;

static void mem_free(void *ctx) {
    mem_state_t *m = ctx;
    ens_state_mem_clear(m);
    ens_state_mem_sched_free(m->sched);
    free(m);
}

/* id may be NULL (the current plan has none): never handed to %s. */
static ens_err_t not_found(char *errstr, size_t errstr_size, const char *what, const char *id) {
    return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no %s%s%s", what, id ? " " : "",
                       id ? id : "");
}

static ens_err_t mem_study_get(void *ctx, const char *study, ens_state_study_t *out,
                               char *errstr, size_t errstr_size) {
    const void *v = ens_state_mem_find(ctx, "study", study, NULL, NULL);
    if (!v)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "study %s is not stored",
                           study);
    memcpy(out, v, sizeof *out);
    return out->dataset[0] ? ENS_OK
                           : ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                                         "study %s names no dataset", study);
}

static ens_err_t mem_study_put(void *ctx, const char *study, const ens_state_study_t *s,
                               char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_put(ctx, "study", study, NULL, s, sizeof *s);
}

static ens_err_t mem_model_get(void *ctx, const char *study, const char *model, void **data,
                               size_t *len, char *errstr, size_t errstr_size) {
    ens_err_t err = ens_state_mem_get(ctx, "model", study, model, data, len);
    return err == ENS_ERR_NOTFOUND ? not_found(errstr, errstr_size, "model", model) : err;
}

static ens_err_t mem_model_put(void *ctx, const char *study, const char *model,
                               const void *data, size_t len, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_put(ctx, "model", study, model, data, len);
}

static ens_err_t mem_eval_put(void *ctx, const char *study, const char *model,
                              const ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    const mem_eval_t *old = ens_state_mem_find(ctx, "eval", study, model, NULL);
    mem_eval_t me = {.e = *e, .has_main = 1};
    if (old) { /* the selector's fields stay, as in a hash */
        const ens_state_eval_t *o = &old->e;
        me.e.sel_accuracy = o->sel_accuracy;
        me.e.holdout_accuracy = o->holdout_accuracy;
        me.e.sel_logloss = o->sel_logloss;
        me.e.holdout_logloss = o->holdout_logloss;
        me.e.has_halves = o->has_halves;
    } else
        me.e.sel_accuracy = me.e.holdout_accuracy = me.e.sel_logloss = me.e.holdout_logloss = 0;
    return ens_state_mem_put(ctx, "eval", study, model, &me, sizeof me);
}

static ens_err_t mem_eval_put_halves(void *ctx, const char *study, const char *model,
                                     const ens_state_eval_t *e, char *errstr,
                                     size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    const mem_eval_t *old = ens_state_mem_find(ctx, "eval", study, model, NULL);
    mem_eval_t me = {0};
    if (old)
        me = *old;
    me.e.sel_accuracy = e->sel_accuracy;
    me.e.holdout_accuracy = e->holdout_accuracy;
    me.e.sel_logloss = e->sel_logloss;
    me.e.holdout_logloss = e->holdout_logloss;
    me.e.has_halves = 1;
    return ens_state_mem_put(ctx, "eval", study, model, &me, sizeof me);
}

static ens_err_t mem_eval_get(void *ctx, const char *study, const char *model,
                              ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    const mem_eval_t *old = ens_state_mem_find(ctx, "eval", study, model, NULL);
    if (old)
        *e = old->e;
    return old && old->has_main
               ? ENS_OK
               : not_found(errstr, errstr_size, "evaluation of", model);
}

static ens_err_t mem_blob_put(void *ctx, const char *kind, const char *study, const char *id,
                              const void *data, size_t len) {
    return ens_state_mem_put(ctx, kind, study, id, data, len);
}

static ens_err_t mem_blob_get(void *ctx, const char *kind, const char *study, const char *id,
                              void **data, size_t *len, char *errstr, size_t errstr_size) {
    ens_err_t err = ens_state_mem_get(ctx, kind, study, id, data, len);
    return err == ENS_ERR_NOTFOUND ? not_found(errstr, errstr_size, kind, study) : err;
}

static ens_err_t mem_probs_put(void *ctx, const char *study, const char *model,
                               const void *data, size_t len, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "probs", study, model, data, len);
}

static ens_err_t mem_probs_get(void *ctx, const char *study, const char *model, void **data,
                               size_t *len, char *errstr, size_t errstr_size) {
    return mem_blob_get(ctx, "probs", study, model, data, len, errstr, errstr_size);
}

static ens_err_t mem_labels_put(void *ctx, const char *study, const void *data, size_t len,
                                char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "val_labels", study, NULL, data, len);
}

static ens_err_t mem_labels_get(void *ctx, const char *study, void **data, size_t *len,
                                char *errstr, size_t errstr_size) {
    return mem_blob_get(ctx, "val_labels", study, NULL, data, len, errstr, errstr_size);
}

static ens_err_t mem_library_add(void *ctx, const char *study, const char *model, char *errstr,
                                 size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "library", study, model, "", 0);
}

static ens_err_t mem_library_list(void *ctx, const char *study, char ***models, int *n,
                                  char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_ids(ctx, "library", study, models, n);
}

static ens_err_t mem_dirty_add(void *ctx, const char *study, char *errstr,
                               size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "dirty", study, NULL, "", 0);
}

static ens_err_t mem_dirty_remove(void *ctx, const char *study, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ens_state_mem_del(ctx, "dirty", study, NULL);
    return ENS_OK;
}

static ens_err_t mem_dirty_list(void *ctx, char ***studies, int *n, char *errstr,
                                size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_ids(ctx, "dirty", NULL, studies, n);
}

static ens_err_t mem_front_put(void *ctx, const char *study, const void *data, size_t len,
                               char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "front", study, NULL, data, len);
}

static ens_err_t mem_front_get(void *ctx, const char *study, void **data, size_t *len,
                               char *errstr, size_t errstr_size) {
    return mem_blob_get(ctx, "front", study, NULL, data, len, errstr, errstr_size);
}

static ens_err_t mem_deploy_put(void *ctx, const char *study, const char *event_id,
                                const void *data, size_t len, char *errstr,
                                size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "deploy", study, event_id, data, len);
}

static ens_err_t mem_deploy_get(void *ctx, const char *study, const char *event_id,
                                void **data, size_t *len, char *errstr, size_t errstr_size) {
    return mem_blob_get(ctx, "deploy", study, event_id, data, len, errstr, errstr_size);
}

static ens_err_t mem_plan_put(void *ctx, const char *study, const void *data, size_t len,
                              char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ens_err_t err = mem_blob_put(ctx, "plan", study, NULL, data, len);
    return err ? err : mem_blob_put(ctx, "plan:current", NULL, NULL, data, len);
}

static ens_err_t mem_plan_get(void *ctx, const char *study, void **data, size_t *len,
                              char *errstr, size_t errstr_size) {
    return study ? mem_blob_get(ctx, "plan", study, NULL, data, len, errstr, errstr_size)
                 : mem_blob_get(ctx, "plan:current", NULL, NULL, data, len, errstr,
                                errstr_size);
}

static ens_err_t mem_plan_version_next(void *ctx, int64_t *version, char *errstr,
                                       size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    *version = ++((mem_state_t *)ctx)->plan_version;
    return ENS_OK;
}

static ens_err_t mem_plan_version_get(void *ctx, int64_t *version, char *errstr,
                                      size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    const mem_state_t *m = ctx;
    if (!m->plan_version)
        return ENS_ERR_NOTFOUND;
    *version = m->plan_version;
    return ENS_OK;
}

static ens_err_t mem_plan_compute_put(void *ctx, int64_t version, const char *const *devices,
                                      const double *ms, int n, char *errstr,
                                      size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)version);
    ens_err_t err = ENS_OK;
    for (int d = 0; !err && d < n; d++)
        if (ms[d] > 0)
            err = mem_blob_put(ctx, "compute", v, devices[d], &ms[d], sizeof ms[d]);
    return err;
}

static ens_err_t mem_plan_compute_get(void *ctx, int64_t version, const char *device,
                                      double *ms, char *errstr, size_t errstr_size) {
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)version);
    const void *e = ens_state_mem_find(ctx, "compute", v, device, NULL);
    if (!e)
        return not_found(errstr, errstr_size, "compute of", device);
    memcpy(ms, e, sizeof *ms);
    return ENS_OK;
}

static ens_err_t mem_device_put(void *ctx, const ens_device_t *d, int ttl_seconds,
                                char *errstr, size_t errstr_size) {
    (void)ttl_seconds, (void)errstr, (void)errstr_size;
    ens_device_t copy = *d; /* as the registry stores them: no negative measurements */
    copy.overhead_ms = d->overhead_ms > 0 ? d->overhead_ms : 0;
    copy.speed = d->speed > 0 ? d->speed : 0;
    return mem_blob_put(ctx, "device", d->device_id, NULL, &copy, sizeof copy);
}

static ens_err_t mem_device_remove(void *ctx, const char *device_id, char *errstr,
                                   size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ens_state_mem_del(ctx, "device", device_id, NULL);
    return ENS_OK;
}

static ens_err_t mem_device_list(void *ctx, ens_device_t **devices, int *n, char *errstr,
                                 size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char **ids = NULL;
    int k = 0;
    ens_err_t err = ens_state_mem_ids(ctx, "device", NULL, &ids, &k);
    if (err)
        return err;
    ens_device_t *d = k ? calloc((size_t)k, sizeof *d) : NULL;
    if (k && !d)
        err = ENS_ERR_NOMEM;
    for (int i = 0; !err && i < k; i++) /* ids come sorted */
        memcpy(&d[i], ens_state_mem_find(ctx, "device", ids[i], NULL, NULL), sizeof d[i]);
    ens_state_strings_free(ids, k);
    if (err) {
        free(d);
        return err;
    }
    *devices = d;
    *n = k;
    return ENS_OK;
}

/* ---- trainers: one entry a trainer for each of its heartbeat, state, busy seconds, record */

static ens_err_t mem_trainer_beat(void *ctx, const char *trainer, int64_t beat_ms,
                                  char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "trainer_beat", trainer, NULL, &beat_ms, sizeof beat_ms);
}

static ens_err_t mem_trainer_state_put(void *ctx, const char *trainer, const char *state,
                                       char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return mem_blob_put(ctx, "trainer_state", trainer, NULL, state, strlen(state) + 1);
}

static ens_err_t mem_trainer_busy_add(void *ctx, const char *trainer, double seconds,
                                      char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    const void *e = ens_state_mem_find(ctx, "trainer_busy", trainer, NULL, NULL);
    double busy = 0;
    if (e)
        memcpy(&busy, e, sizeof busy);
    busy += round(seconds * 1000) / 1000; /* as Redis is sent it: "%.3f" */
    return ens_state_mem_put(ctx, "trainer_busy", trainer, NULL, &busy, sizeof busy);
}

static ens_err_t mem_trainer_parts_put(void *ctx, const char *trainer, const char *record,
                                       char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    if (!record) {
        ens_state_mem_del(ctx, "trainer_parts", trainer, NULL);
        return ENS_OK;
    }
    return ens_state_mem_put(ctx, "trainer_parts", trainer, NULL, record, strlen(record) + 1);
}

static ens_err_t mem_trainer_remove(void *ctx, const char *trainer, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    static const char *const kinds[] = {"trainer_beat", "trainer_state", "trainer_parts"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        ens_state_mem_del(ctx, kinds[i], trainer, NULL);
    return ENS_OK;
}

static ens_err_t mem_trainer_live(void *ctx, int64_t since_ms, int *n, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char **ids = NULL;
    int k = 0, live = 0;
    ens_err_t err = ens_state_mem_ids(ctx, "trainer_beat", NULL, &ids, &k);
    for (int i = 0; !err && i < k; i++) {
        int64_t beat = 0;
        memcpy(&beat, ens_state_mem_find(ctx, "trainer_beat", ids[i], NULL, NULL), sizeof beat);
        live += beat >= since_ms;
    }
    ens_state_strings_free(ids, k);
    if (!err)
        *n = live;
    return err;
}

/* The trainers with a string of kind, and those strings, side by side. */
static ens_err_t string_pairs(void *ctx, const char *kind, char ***trainers, char ***values,
                              int *n) {
    char **ids = NULL;
    int k = 0;
    ens_err_t err = ens_state_mem_ids(ctx, kind, NULL, &ids, &k);
    if (err)
        return err;
    char **recs = calloc((size_t)k + 1, sizeof *recs);
    if (!recs)
        err = ENS_ERR_NOMEM;
    for (int i = 0; !err && i < k; i++)
        if (!(recs[i] = strdup(ens_state_mem_find(ctx, kind, ids[i], NULL, NULL))))
            err = ENS_ERR_NOMEM;
    if (err) {
        ens_state_strings_free(ids, k);
        ens_state_strings_free(recs, k);
        return err;
    }
    *trainers = ids;
    *values = recs;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_trainer_parts_list(void *ctx, char ***trainers, char ***records, int *n,
                                        char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return string_pairs(ctx, "trainer_parts", trainers, records, n);
}

static ens_err_t mem_trainer_state_list(void *ctx, char ***trainers, char ***states, int *n,
                                        char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return string_pairs(ctx, "trainer_state", trainers, states, n);
}

static ens_err_t mem_trainer_get(void *ctx, const char *trainer, ens_state_trainer_t *out,
                                 char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    const void *e;
    if ((e = ens_state_mem_find(ctx, "trainer_beat", trainer, NULL, NULL)))
        memcpy(&out->beat_ms, e, sizeof out->beat_ms);
    if ((e = ens_state_mem_find(ctx, "trainer_state", trainer, NULL, NULL)))
        snprintf(out->state, sizeof out->state, "%s", (const char *)e);
    if ((e = ens_state_mem_find(ctx, "trainer_busy", trainer, NULL, NULL)))
        memcpy(&out->busy_s, e, sizeof out->busy_s);
    if ((e = ens_state_mem_find(ctx, "trainer_parts", trainer, NULL, NULL)))
        snprintf(out->parts, sizeof out->parts, "%s", (const char *)e);
    return ENS_OK;
}

static const struct ens_state_i mem_iface = {
    .name = "mem",
    .free = mem_free,
    .study_get = mem_study_get,
    .study_put = mem_study_put,
    .model_get = mem_model_get,
    .model_put = mem_model_put,
    .eval_put = mem_eval_put,
    .eval_put_halves = mem_eval_put_halves,
    .eval_get = mem_eval_get,
    .probs_put = mem_probs_put,
    .probs_get = mem_probs_get,
    .labels_put = mem_labels_put,
    .labels_get = mem_labels_get,
    .library_add = mem_library_add,
    .library_list = mem_library_list,
    .dirty_add = mem_dirty_add,
    .dirty_remove = mem_dirty_remove,
    .dirty_list = mem_dirty_list,
    .front_put = mem_front_put,
    .front_get = mem_front_get,
    .deploy_put = mem_deploy_put,
    .deploy_get = mem_deploy_get,
    .plan_put = mem_plan_put,
    .plan_get = mem_plan_get,
    .plan_version_next = mem_plan_version_next,
    .plan_version_get = mem_plan_version_get,
    .plan_compute_put = mem_plan_compute_put,
    .plan_compute_get = mem_plan_compute_get,
    .device_put = mem_device_put,
    .device_remove = mem_device_remove,
    .device_list = mem_device_list,
    .trainer_beat = mem_trainer_beat,
    .trainer_state_put = mem_trainer_state_put,
    .trainer_busy_add = mem_trainer_busy_add,
    .trainer_parts_put = mem_trainer_parts_put,
    .trainer_remove = mem_trainer_remove,
    .trainer_live = mem_trainer_live,
    .trainer_parts_list = mem_trainer_parts_list,
    .trainer_state_list = mem_trainer_state_list,
    .trainer_get = mem_trainer_get,

    /* studies, compaction and serving */
    .studies = &ens_state_studies_mem,

    /* scheduler and jobs */
    .sched = &ens_state_sched_mem,
};

ens_err_t ens_state_mem_new(ens_state_t **out) {
    if (!out)
        return ENS_ERR_INVALID;
    mem_state_t *m = calloc(1, sizeof *m);
    if (!m)
        return ENS_ERR_NOMEM;
    ens_err_t err = ens_state_new(&mem_iface, m, out);
    if (err)
        free(m);
    return err;
}
