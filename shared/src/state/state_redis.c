/* state_redis.c - the state layer in Redis: every key and hash field the layer keeps (the
 * evaluator's, selector's and placer's, the trainers', plans) is spelled here, and only here.
 * One implementation of struct ens_state_i, its operations side by side with state_mem.c's;
 * the studies' and the scheduler's parts have files of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state.h"
#include "state_internal.h"

typedef ens_state_redis_ctx_t redis_state_t; /* state_internal.h: its parts share it */

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                    \
    do {                                                                                        \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                           \
                               "study id \"%s\" makes no key", study);                          \
    } while (0)

/* The fields of ens:{s}:eval:<m>, in the order eval_get reads them. */
enum {
    F_TRIAL_ID,
    F_VAL_ACCURACY,
    F_VAL_LOGLOSS,
    F_N_PARAMS,
    F_FLOPS,
    F_MS,
    F_BATCH,
    F_MEMORY,
    F_MS_B1, /* F_MS_B1 + i: ens_state_profile_batches[i] */
    F_N_VAL = F_MS_B1 + ENS_STATE_N_PROFILE,
    F_N_CLASSES,
    F_DTYPE,
    F_SEL_ACC,
    F_HOLD_ACC,
    F_SEL_LL,
    F_HOLD_LL,
    N_EVAL_FIELDS
};

static const char *const eval_fields[N_EVAL_FIELDS] = {
    "trial_id",          "val_accuracy",      "val_logloss",        "n_params",
    "flops_per_sample",  "ms_per_sample",     "batch_size",         "memory_bytes",
    "ms_per_sample_b1",  "ms_per_sample_b8",  "ms_per_sample_b32",  "ms_per_sample_b128",
    "n_val",             "n_classes",         "probs_dtype",        "sel_accuracy",
    "holdout_accuracy",  "sel_logloss",       "holdout_logloss"};

#define PROBS_DTYPE_F16 "float16"
#define PLAN_COMPUTE_TTL_S 604800 /* a week: a group reads it when it takes the plan up */

static void redis_free(void *ctx) {
    free(ctx);
}

/* GET key: its bytes (malloc'd) or ENS_ERR_NOTFOUND for anything but a string. */
static ens_err_t get_bytes(redis_state_t *s, const char *key, void **data, size_t *len,
                           char *errstr, size_t errstr_size) {
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size, "GET %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (rep->type == ENS_REPLY_STRING) {
        *data = malloc(rep->len + 1);
        if (*data) {
            memcpy(*data, rep->str, rep->len);
            *len = rep->len;
            err = ENS_OK;
        } else
            err = ENS_ERR_NOMEM;
    }
    ens_redis_reply_free(rep);
    return err;
}

/* SMEMBERS key as malloc'd strings; ENS_ERR_REDIS for any other reply or more than max. */
static ens_err_t members(redis_state_t *s, const char *key, size_t max, char ***out, int *n,
                         char *errstr, size_t errstr_size) {
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size, "SMEMBERS %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type != ENS_REPLY_ARRAY || rep->elements > max) {
        ens_redis_reply_free(rep);
        return ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "%s unreadable", key);
    }
    char **v = calloc(rep->elements + 1, sizeof *v);
    ens_err_t err = v ? ENS_OK : ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < rep->elements; i++) {
        const ens_redis_reply_t *e = rep->element[i];
        v[i] = strdup(e->type == ENS_REPLY_STRING ? e->str : "");
        if (!v[i])
            err = ENS_ERR_NOMEM;
    }
    if (err)
        ens_state_strings_free(v, (int)rep->elements);
    else {
        *out = v;
        *n = (int)rep->elements;
    }
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_study_get(void *ctx, const char *study, ens_state_study_t *out,
                                 char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "study");
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size,
                                        "HMGET %s dataset val_fraction seed top_k status created_ms deadline_ms", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type != ENS_REPLY_ARRAY || rep->elements != 7)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "study %s is not in Redis",
                          study);
    else {
        ens_redis_reply_t **f = rep->element;
        if (f[0]->type == ENS_REPLY_STRING)
            snprintf(out->dataset, sizeof out->dataset, "%s", f[0]->str);
        else
            err = ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                              "study %s is not in Redis", study);
        if (f[1]->type == ENS_REPLY_STRING)
            out->val_fraction = strtod(f[1]->str, NULL);
        if (f[2]->type == ENS_REPLY_STRING)
            out->seed = strtoll(f[2]->str, NULL, 10);
        if (f[3]->type == ENS_REPLY_STRING)
            out->top_k = atoi(f[3]->str);
        if (f[4]->type == ENS_REPLY_STRING)
            snprintf(out->status, sizeof out->status, "%s", f[4]->str);
        if (f[5]->type == ENS_REPLY_STRING)
            out->created_ms = strtoll(f[5]->str, NULL, 10);
        if (f[6]->type == ENS_REPLY_STRING)
            out->deadline_ms = strtoll(f[6]->str, NULL, 10);
    }
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_model_get(void *ctx, const char *study, const char *model, void **data,
                                 size_t *len, char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char name[ENS_ID_MAX + 16];
    snprintf(name, sizeof name, "model:%s", model);
    return ens_models_get(s->models, s->r, study, name, data, len, errstr, errstr_size);
}

static ens_err_t redis_eval_put(void *ctx, const char *study, const char *model,
                                const ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "eval:%s", model);
    return ens_redis_exec(
        s->r, errstr, errstr_size,
        "HSET %s trial_id %s val_accuracy %.6f val_logloss %.6f n_params %lld "
        "flops_per_sample %lld ms_per_sample %.6f batch_size %d memory_bytes %lld "
        "ms_per_sample_b1 %.6f ms_per_sample_b8 %.6f ms_per_sample_b32 %.6f "
        "ms_per_sample_b128 %.6f n_val %d n_classes %d probs_dtype %s",
        key, e->trial_id, e->val_accuracy, e->val_logloss, (long long)e->n_params,
        (long long)e->flops_per_sample, e->ms_per_sample, (int)e->batch_size,
        (long long)e->memory_bytes, e->ms_per_sample_b[0], e->ms_per_sample_b[1],
        e->ms_per_sample_b[2], e->ms_per_sample_b[3], (int)e->n_val, (int)e->n_classes,
        e->probs_f16 ? PROBS_DTYPE_F16 : "float32");
}

static ens_err_t redis_eval_put_halves(void *ctx, const char *study, const char *model,
                                       const ens_state_eval_t *e, char *errstr,
                                       size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "eval:%s", model);
    return ens_redis_exec(s->r, errstr, errstr_size,
                          "HSET %s sel_accuracy %.6f holdout_accuracy %.6f sel_logloss %.6f "
                          "holdout_logloss %.6f",
                          key, e->sel_accuracy, e->holdout_accuracy, e->sel_logloss,
                          e->holdout_logloss);
}

static ens_err_t redis_eval_get(void *ctx, const char *study, const char *model,
                                ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "eval:%s", model);
    const char *argv[N_EVAL_FIELDS + 2] = {"HMGET", key};
    for (int i = 0; i < N_EVAL_FIELDS; i++)
        argv[i + 2] = eval_fields[i];
    ens_redis_reply_t *rep = ens_redis_commandv(s->r, N_EVAL_FIELDS + 2, argv, NULL, errstr,
                                         errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type != ENS_REPLY_ARRAY || rep->elements != N_EVAL_FIELDS) {
        ens_redis_reply_free(rep);
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no evaluation of %s", model);
    }
    const char *v[N_EVAL_FIELDS];
    for (int i = 0; i < N_EVAL_FIELDS; i++)
        v[i] = rep->element[i]->type == ENS_REPLY_STRING ? rep->element[i]->str : NULL;
#define D(i) (v[i] ? strtod(v[i], NULL) : 0.0)
#define I(i) (v[i] ? strtoll(v[i], NULL, 10) : 0)
    if (v[F_TRIAL_ID])
        snprintf(e->trial_id, sizeof e->trial_id, "%s", v[F_TRIAL_ID]);
    e->val_accuracy = D(F_VAL_ACCURACY);
    e->val_logloss = D(F_VAL_LOGLOSS);
    e->n_params = I(F_N_PARAMS);
    e->flops_per_sample = I(F_FLOPS);
    e->ms_per_sample = D(F_MS);
    e->batch_size = (int32_t)I(F_BATCH);
    e->memory_bytes = I(F_MEMORY);
    for (int b = 0; b < ENS_STATE_N_PROFILE; b++)
        e->ms_per_sample_b[b] = D(F_MS_B1 + b);
    e->n_val = (int32_t)I(F_N_VAL);
    e->n_classes = (int32_t)I(F_N_CLASSES);
    e->probs_f16 = v[F_DTYPE] && !strcmp(v[F_DTYPE], PROBS_DTYPE_F16);
    e->sel_accuracy = D(F_SEL_ACC);
    e->holdout_accuracy = D(F_HOLD_ACC);
    e->sel_logloss = D(F_SEL_LL);
    e->holdout_logloss = D(F_HOLD_LL);
    e->has_halves = v[F_SEL_ACC] && v[F_HOLD_ACC];
#undef D
#undef I
    ens_err_t err = v[F_MS] && v[F_MEMORY]
                        ? ENS_OK
                        : ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                                      "no evaluation of %s", model);
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_probs_put(void *ctx, const char *study, const char *model,
                                 const void *data, size_t len, char *errstr,
                                 size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "probs:%s", model);
    return ens_store_blob_put(s->r, key, data, len, 0, errstr, errstr_size);
}

static ens_err_t redis_probs_get(void *ctx, const char *study, const char *model, void **data,
                                 size_t *len, char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "probs:%s", model);
    return ens_store_blob_get(s->r, key, data, len, errstr, errstr_size);
}

static ens_err_t redis_labels_put(void *ctx, const char *study, const void *data, size_t len,
                                  char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "val_labels");
    return ens_store_blob_put(s->r, key, data, len, 0, errstr, errstr_size);
}

static ens_err_t redis_labels_get(void *ctx, const char *study, void **data, size_t *len,
                                  char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "val_labels");
    return ens_store_blob_get(s->r, key, data, len, errstr, errstr_size);
}

static ens_err_t redis_library_add(void *ctx, const char *study, const char *model,
                                   char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "library");
    return ens_redis_exec(s->r, errstr, errstr_size, "SADD %s %s", key, model);
}

static ens_err_t redis_library_list(void *ctx, const char *study, char ***models, int *n,
                                    char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "library");
    return members(s, key, ENS_STATE_LIBRARY_MAX, models, n, errstr, errstr_size);
}

static ens_err_t redis_dirty_add(void *ctx, const char *study, char *errstr,
                                 size_t errstr_size) {
    redis_state_t *s = ctx;
    return ens_redis_exec(s->r, errstr, errstr_size, "SADD %s %s",
                          ENS_STATE_KEY_SELECTOR_DIRTY, study);
}

static ens_err_t redis_dirty_remove(void *ctx, const char *study, char *errstr,
                                    size_t errstr_size) {
    redis_state_t *s = ctx;
    return ens_redis_exec(s->r, errstr, errstr_size, "SREM %s %s",
                          ENS_STATE_KEY_SELECTOR_DIRTY, study);
}

static ens_err_t redis_dirty_list(void *ctx, char ***studies, int *n, char *errstr,
                                  size_t errstr_size) {
    return members(ctx, ENS_STATE_KEY_SELECTOR_DIRTY, (size_t)-1, studies, n, errstr,
                   errstr_size);
}

static ens_err_t redis_front_put(void *ctx, const char *study, const void *data, size_t len,
                                 char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "front");
    return ens_redis_exec(s->r, errstr, errstr_size, "SET %s %b", key, data, len);
}

static ens_err_t redis_front_get(void *ctx, const char *study, void **data, size_t *len,
                                 char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, "front");
    return get_bytes(ctx, key, data, len, errstr, errstr_size);
}

static ens_err_t redis_deploy_put(void *ctx, const char *study, const char *event_id,
                                  const void *data, size_t len, char *errstr,
                                  size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "deploy:%s", event_id);
    return ens_redis_exec(s->r, errstr, errstr_size, "SET %s %b", key, data, len);
}

static ens_err_t redis_deploy_get(void *ctx, const char *study, const char *event_id,
                                  void **data, size_t *len, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, "deploy:%s", event_id);
    return get_bytes(ctx, key, data, len, errstr, errstr_size);
}

static ens_err_t redis_plan_put(void *ctx, const char *study, const void *data, size_t len,
                                char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[256];
    KEY(key, study, "plan");
    ens_err_t err = ens_redis_exec(s->r, errstr, errstr_size, "SET %s %b", key, data, len);
    if (!err)
        err = ens_redis_exec(s->r, errstr, errstr_size, "SET %s %b", ENS_STATE_KEY_PLAN_CURRENT,
                             data, len);
    return err;
}

static ens_err_t redis_plan_get(void *ctx, const char *study, void **data, size_t *len,
                                char *errstr, size_t errstr_size) {
    char key[256];
    if (study)
        KEY(key, study, "plan");
    else
        snprintf(key, sizeof key, "%s", ENS_STATE_KEY_PLAN_CURRENT);
    return get_bytes(ctx, key, data, len, errstr, errstr_size);
}

static ens_err_t redis_plan_version_next(void *ctx, int64_t *version, char *errstr,
                                         size_t errstr_size) {
    redis_state_t *s = ctx;
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size, "INCR %s",
                                        ENS_STATE_KEY_PLAN_VERSION);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_INTEGER)
        *version = rep->integer;
    else
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "INCR %s: %s",
                          ENS_STATE_KEY_PLAN_VERSION,
                          rep->type == ENS_REPLY_ERROR ? rep->str : "unexpected reply");
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_plan_version_get(void *ctx, int64_t *version, char *errstr,
                                        size_t errstr_size) {
    redis_state_t *s = ctx;
    ens_redis_reply_t *rep =
        ens_redis_command(s->r, errstr, errstr_size, "GET %s", ENS_STATE_KEY_PLAN_VERSION);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (rep->type == ENS_REPLY_STRING) {
        *version = strtoll(rep->str, NULL, 10);
        err = ENS_OK;
    }
    ens_redis_reply_free(rep);
    return err;
}

static void compute_key(char *key, size_t size, int64_t version) {
    snprintf(key, size, "ens:plan:%lld:compute", (long long)version);
}

static ens_err_t redis_plan_compute_put(void *ctx, int64_t version, const char *const *devices,
                                        const double *ms, int n, char *errstr,
                                        size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[64];
    compute_key(key, sizeof key, version);
    ens_err_t err = ENS_OK;
    for (int d = 0; !err && d < n; d++)
        if (ms[d] > 0)
            err = ens_redis_exec(s->r, errstr, errstr_size, "HSET %s %s %.9g", key, devices[d],
                                 ms[d]);
    if (!err)
        err = ens_redis_exec(s->r, errstr, errstr_size, "EXPIRE %s %d", key,
                             PLAN_COMPUTE_TTL_S);
    return err;
}

static ens_err_t redis_plan_compute_get(void *ctx, int64_t version, const char *device,
                                        double *ms, char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    char key[64];
    compute_key(key, sizeof key, version);
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size, "HGET %s %s", key, device);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (rep->type == ENS_REPLY_STRING) {
        *ms = strtod(rep->str, NULL);
        err = ENS_OK;
    }
    ens_redis_reply_free(rep);
    return err;
}

/* The device registry's keys are registry.c's (in this directory). */
static ens_err_t redis_device_put(void *ctx, const ens_device_t *d, int ttl_seconds,
                                  char *errstr, size_t errstr_size) {
    return ens_registry_heartbeat(((redis_state_t *)ctx)->r, d, ttl_seconds, errstr,
                                  errstr_size);
}

static ens_err_t redis_device_remove(void *ctx, const char *device_id, char *errstr,
                                     size_t errstr_size) {
    return ens_registry_remove(((redis_state_t *)ctx)->r, device_id, errstr, errstr_size);
}

static ens_err_t redis_device_list(void *ctx, ens_device_t **devices, int *n, char *errstr,
                                   size_t errstr_size) {
    return ens_registry_list(((redis_state_t *)ctx)->r, devices, n, errstr, errstr_size);
}

/* ---- trainers: the zset of heartbeats and three hashes by trainer id ---------------------- */

#define TRAINERS_KEY "ens:trainers"
#define TRAINERS_STATE_KEY "ens:trainers:state"
#define TRAINERS_BUSY_KEY "ens:trainers:busy_s"
#define TRAINERS_PARTS_KEY "ens:trainers:parts"

static ens_err_t redis_trainer_beat(void *ctx, const char *trainer, int64_t beat_ms,
                                    char *errstr, size_t errstr_size) {
    return ens_redis_exec(((redis_state_t *)ctx)->r, errstr, errstr_size,
                          "ZADD " TRAINERS_KEY " %lld %s", (long long)beat_ms, trainer);
}

static ens_err_t redis_trainer_state_put(void *ctx, const char *trainer, const char *state,
                                         char *errstr, size_t errstr_size) {
    return ens_redis_exec(((redis_state_t *)ctx)->r, errstr, errstr_size,
                          "HSET " TRAINERS_STATE_KEY " %s %s", trainer, state);
}

static ens_err_t redis_trainer_busy_add(void *ctx, const char *trainer, double seconds,
                                        char *errstr, size_t errstr_size) {
    return ens_redis_exec(((redis_state_t *)ctx)->r, errstr, errstr_size,
                          "HINCRBYFLOAT " TRAINERS_BUSY_KEY " %s %.3f", trainer, seconds);
}

static ens_err_t redis_trainer_parts_put(void *ctx, const char *trainer, const char *record,
                                         char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    if (!record)
        return ens_redis_exec(s->r, errstr, errstr_size, "HDEL " TRAINERS_PARTS_KEY " %s",
                              trainer);
    return ens_redis_exec(s->r, errstr, errstr_size, "HSET " TRAINERS_PARTS_KEY " %s %s",
                          trainer, record);
}

static ens_err_t redis_trainer_remove(void *ctx, const char *trainer, char *errstr,
                                     size_t errstr_size) {
    redis_state_t *s = ctx;
    ens_err_t err = ens_redis_exec(s->r, errstr, errstr_size, "ZREM " TRAINERS_KEY " %s",
                                   trainer);
    ens_err_t e2 = ens_redis_exec(s->r, errstr, errstr_size, "HDEL " TRAINERS_STATE_KEY " %s",
                                  trainer);
    ens_err_t e3 = ens_redis_exec(s->r, errstr, errstr_size, "HDEL " TRAINERS_PARTS_KEY " %s",
                                  trainer);
    return err ? err : e2 ? e2 : e3;
}

static ens_err_t redis_trainer_live(void *ctx, int64_t since_ms, int *n, char *errstr,
                                    size_t errstr_size) {
    ens_redis_reply_t *rep = ens_redis_command(((redis_state_t *)ctx)->r, errstr, errstr_size,
                                        "ZCOUNT " TRAINERS_KEY " %lld +inf",
                                        (long long)since_ms);
    if (!rep)
        return ENS_ERR_REDIS;
    *n = rep->type == ENS_REPLY_INTEGER ? (int)rep->integer : 0;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

/* HGETALL key as two string lists side by side (a value that is not a string reads ""). */
static ens_err_t hash_pairs(redis_state_t *s, const char *key, char ***fields, char ***values,
                            int *n, char *errstr, size_t errstr_size) {
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size, "HGETALL %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    size_t k = rep->type == ENS_REPLY_ARRAY ? rep->elements / 2 : 0;
    char **ids = calloc(k + 1, sizeof *ids), **recs = calloc(k + 1, sizeof *recs);
    ens_err_t err = ids && recs ? ENS_OK : ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < k; i++) {
        const ens_redis_reply_t *id = rep->element[2 * i], *rec = rep->element[2 * i + 1];
        ids[i] = strdup(id->type == ENS_REPLY_STRING ? id->str : "");
        recs[i] = strdup(rec->type == ENS_REPLY_STRING ? rec->str : "");
        if (!ids[i] || !recs[i])
            err = ENS_ERR_NOMEM;
    }
    ens_redis_reply_free(rep);
    if (err) {
        ens_state_strings_free(ids, (int)k);
        ens_state_strings_free(recs, (int)k);
        return err;
    }
    *fields = ids;
    *values = recs;
    *n = (int)k;
    return ENS_OK;
}

static ens_err_t redis_trainer_parts_list(void *ctx, char ***trainers, char ***records, int *n,
                                          char *errstr, size_t errstr_size) {
    return hash_pairs(ctx, TRAINERS_PARTS_KEY, trainers, records, n, errstr, errstr_size);
}

static ens_err_t redis_trainer_state_list(void *ctx, char ***trainers, char ***states, int *n,
                                          char *errstr, size_t errstr_size) {
    return hash_pairs(ctx, TRAINERS_STATE_KEY, trainers, states, n, errstr, errstr_size);
}

static ens_err_t redis_trainer_get(void *ctx, const char *trainer, ens_state_trainer_t *out,
                                   char *errstr, size_t errstr_size) {
    redis_state_t *s = ctx;
    ens_redis_reply_t *rep = ens_redis_command(s->r, errstr, errstr_size,
                                        "ZSCORE " TRAINERS_KEY " %s", trainer);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_STRING)
        out->beat_ms = strtoll(rep->str, NULL, 10);
    ens_redis_reply_free(rep);
    static const char *const keys[3] = {TRAINERS_STATE_KEY, TRAINERS_BUSY_KEY,
                                        TRAINERS_PARTS_KEY};
    for (int i = 0; i < 3; i++) {
        if (!(rep = ens_redis_command(s->r, errstr, errstr_size, "HGET %s %s", keys[i],
                                      trainer)))
            return ENS_ERR_REDIS;
        if (rep->type == ENS_REPLY_STRING) {
            if (i == 0)
                snprintf(out->state, sizeof out->state, "%s", rep->str);
            else if (i == 1)
                out->busy_s = strtod(rep->str, NULL);
            else
                snprintf(out->parts, sizeof out->parts, "%s", rep->str);
        }
        ens_redis_reply_free(rep);
    }
    return ENS_OK;
}

static const struct ens_state_i redis_iface = {
    .name = "redis",
    .free = redis_free,
    .study_get = redis_study_get,
    .study_put = NULL, /* the proposer writes the study */
    .model_get = redis_model_get,
    .model_put = NULL, /* the trainer writes model files (models.h) */
    .eval_put = redis_eval_put,
    .eval_put_halves = redis_eval_put_halves,
    .eval_get = redis_eval_get,
    .probs_put = redis_probs_put,
    .probs_get = redis_probs_get,
    .labels_put = redis_labels_put,
    .labels_get = redis_labels_get,
    .library_add = redis_library_add,
    .library_list = redis_library_list,
    .dirty_add = redis_dirty_add,
    .dirty_remove = redis_dirty_remove,
    .dirty_list = redis_dirty_list,
    .front_put = redis_front_put,
    .front_get = redis_front_get,
    .deploy_put = redis_deploy_put,
    .deploy_get = redis_deploy_get,
    .plan_put = redis_plan_put,
    .plan_get = redis_plan_get,
    .plan_version_next = redis_plan_version_next,
    .plan_version_get = redis_plan_version_get,
    .plan_compute_put = redis_plan_compute_put,
    .plan_compute_get = redis_plan_compute_get,
    .device_put = redis_device_put,
    .device_remove = redis_device_remove,
    .device_list = redis_device_list,
    .trainer_beat = redis_trainer_beat,
    .trainer_state_put = redis_trainer_state_put,
    .trainer_busy_add = redis_trainer_busy_add,
    .trainer_parts_put = redis_trainer_parts_put,
    .trainer_remove = redis_trainer_remove,
    .trainer_live = redis_trainer_live,
    .trainer_parts_list = redis_trainer_parts_list,
    .trainer_state_list = redis_trainer_state_list,
    .trainer_get = redis_trainer_get,

    /* studies, compaction and serving */
    .studies = &ens_state_studies_redis,

    /* scheduler and jobs */
    .sched = &ens_state_sched_redis,
};

ens_err_t ens_state_redis_new(ens_redis_t *r, ens_models_t *models, ens_state_t **out) {
    if (!r || !out)
        return ENS_ERR_INVALID;
    redis_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return ENS_ERR_NOMEM;
    s->r = r;
    s->models = models;
    ens_err_t err = ens_state_new(&redis_iface, s, out);
    if (err)
        free(s);
    return err;
}
