/* state_redis_sched.c - the scheduler's and the jobs' state in Redis (state_sched.h): studies,
 * speeds, the watch on results and progress counts here, with the table of the implementation;
 * the ASHA steps in state_redis_asha.c, jobs and the trainer's side in state_redis_jobs.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_redis_sched.h"
#include "state_sched_keys.h"

/* ---- studies -------------------------------------------------------------------------- */

static ens_err_t redis_study_create(void *ctx, const ens_state_sched_study_t *s, int *created,
                                    char *errstr, size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256];
    long long exists = 0;
    KEY(key, s->study_id, K_STUDY);
    ens_err_t err =
        ens_state_redis_int_cmd(r, &exists, errstr, errstr_size, "HEXISTS %s " F_SCHEDULER, key);
    if (err || exists == 1)
        return err;
    char n_trials[16], epochs[40], seed[32], valf[40], topk[16], created_ms[32], eta[40], rmin[40],
        smax[16], maxep[40], deadline[32];
    snprintf(n_trials, sizeof n_trials, "%d", (int)s->n_trials);
    snprintf(epochs, sizeof epochs, "%.17g", s->epochs);
    snprintf(seed, sizeof seed, "%lld", (long long)s->seed);
    snprintf(valf, sizeof valf, "%.17g", s->val_fraction);
    snprintf(topk, sizeof topk, "%d", (int)s->top_k);
    snprintf(created_ms, sizeof created_ms, "%lld", (long long)s->created_ms);
    snprintf(eta, sizeof eta, "%.17g", s->eta);
    snprintf(rmin, sizeof rmin, "%.17g", s->min_epochs);
    snprintf(smax, sizeof smax, "%d", (int)s->s_max);
    snprintf(maxep, sizeof maxep, "%.17g", s->max_epochs_budget);
    snprintf(deadline, sizeof deadline, "%lld", (long long)s->deadline_ms);
    /* one HSET: the study appears whole or not at all */
    err = ens_redis_exec(
        r, errstr, errstr_size,
        "HSET %s " F_STUDY_ID " %s " F_DATASET " %s " F_SEARCH_SPACE " %s " F_N_TRIALS
        " %s " F_EPOCHS " %s " F_SEED " %s " F_VAL_FRACTION " %s " F_TOP_K " %s " F_CREATED_MS
        " %s " F_STATUS " running " F_SCHEDULER " %s " F_ETA " %s " F_MIN_EPOCHS " %s " F_S_MAX
        " %s " F_MAX_EPOCHS_BUDGET " %s " F_DEADLINE_MS " %s",
        key, s->study_id, s->dataset ? s->dataset : "",
        s->search_space && *s->search_space ? s->search_space : "{}", n_trials, epochs, seed, valf,
        topk, created_ms, s->scheduler, eta, rmin, smax, maxep, deadline);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "ZADD " K_STUDIES " NX %s %s", created_ms,
                             s->study_id);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_ACTIVE " %s", s->study_id);
    if (!err)
        *created = 1;
    return err;
}

/* The study hash's fields, in the order study_get asks for them. */
static const char *const study_fields[] = {
    F_STATUS, F_SCHEDULER,  F_DATASET,      F_SEARCH_SPACE, F_N_TRIALS,   F_TOP_K,
    F_S_MAX,  F_EPOCHS,     F_VAL_FRACTION, F_ETA,          F_MIN_EPOCHS, F_MAX_EPOCHS_BUDGET,
    F_SEED,   F_CREATED_MS, F_DEADLINE_MS};
enum {
    SF_STATUS,
    SF_SCHED,
    SF_DATASET,
    SF_SPACE,
    SF_NTRIALS,
    SF_TOPK,
    SF_SMAX,
    SF_EPOCHS,
    SF_VALF,
    SF_ETA,
    SF_RMIN,
    SF_MAXEP,
    SF_SEED,
    SF_CREATED,
    SF_DEADLINE,
    SF_COUNT
};

static ens_err_t redis_study_get(void *ctx, const char *study, ens_state_sched_study_t *out,
                                 char *errstr, size_t errstr_size) {
    char key[256];
    const char *argv[2 + SF_COUNT] = {"HMGET", key};
    KEY(key, study, K_STUDY);
    for (int i = 0; i < SF_COUNT; i++)
        argv[2 + i] = study_fields[i];
    ens_redis_reply_t *rep =
        ens_redis_commandv(R(ctx), 2 + SF_COUNT, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type != ENS_REPLY_ARRAY || rep->elements != SF_COUNT) {
        ens_redis_reply_free(rep);
        return ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "HMGET study: unexpected reply");
    }
    ens_redis_reply_t **f = rep->element;
    ens_err_t err = ENS_OK;
    snprintf(out->status, sizeof out->status, "%s", str_of(f[SF_STATUS]) ? f[SF_STATUS]->str : "");
    snprintf(out->scheduler, sizeof out->scheduler, "%s",
             str_of(f[SF_SCHED]) ? f[SF_SCHED]->str : "");
    if (str_of(f[SF_DATASET]) && !(out->dataset = strdup(f[SF_DATASET]->str)))
        err = ENS_ERR_NOMEM;
    if (str_of(f[SF_SPACE]) && !(out->search_space = strdup(f[SF_SPACE]->str)))
        err = ENS_ERR_NOMEM;
    out->n_trials = (int32_t)num_of(f[SF_NTRIALS]);
    out->top_k = (int32_t)num_of(f[SF_TOPK]);
    out->s_max = (int32_t)num_of(f[SF_SMAX]);
    out->epochs = num_of(f[SF_EPOCHS]);
    out->val_fraction = num_of(f[SF_VALF]);
    out->eta = num_of(f[SF_ETA]);
    out->min_epochs = num_of(f[SF_RMIN]);
    out->max_epochs_budget = num_of(f[SF_MAXEP]);
    out->seed = int_of(f[SF_SEED]);
    out->created_ms = int_of(f[SF_CREATED]);
    out->deadline_ms = int_of(f[SF_DEADLINE]);
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_study_status_put(void *ctx, const char *study, const char *status,
                                        const char *error, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_STUDY);
    if (error)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s " F_STATUS " %s " F_ERROR " %s",
                              key, status, error);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s " F_STATUS " %s", key, status);
}

static ens_err_t redis_study_extend(void *ctx, const char *study, int32_t add_trials,
                                    double add_epochs, int64_t deadline_ms, char *errstr,
                                    size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256];
    ens_err_t err = ENS_OK;
    KEY(key, study, K_STUDY);
    if (add_trials)
        err = ens_redis_exec(r, errstr, errstr_size, "HINCRBY %s " F_N_TRIALS " %d", key,
                             (int)add_trials);
    if (!err && add_epochs > 0)
        err = ens_redis_exec(r, errstr, errstr_size,
                             "HINCRBYFLOAT %s " F_MAX_EPOCHS_BUDGET " %.17g", key, add_epochs);
    if (!err && deadline_ms > 0)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_DEADLINE_MS " %lld", key,
                             (long long)deadline_ms);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_STATUS " running", key);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_ACTIVE " %s", study);
    /* not compacted while it runs again; its models compacted already train on with a fresh
     * optimiser (retain.h) */
    if (!err) /* state_studies.h's compaction queue */
        err = ens_state_studies_redis.compact_remove(ctx, study, errstr, errstr_size);
    return err;
}

static ens_err_t redis_study_end(void *ctx, const char *study, const char *final_status,
                                 char *errstr, size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256], disp[256];
    ens_err_t err = ENS_OK;
    KEY(key, study, K_STUDY);
    KEY(disp, study, K_DISPATCHED);
    if (final_status)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_STATUS " %s", key, final_status);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_SETTLING " %s", study);
    if (!err) /* its model files: trainers drop what no longer serves (retain.h), through
               * state_studies.h's compaction queue */
        err = ens_state_studies_redis.compact_add(ctx, study, errstr, errstr_size);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SREM " K_STUDIES_ACTIVE " %s", study);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "DEL %s", disp);
    return err;
}

static ens_err_t redis_command_first(void *ctx, const char *study, const char *event_id, int *first,
                                     char *errstr, size_t errstr_size) {
    int f = ens_store_first_time(R(ctx), study, K_SEEN_SCOPE_CMD, event_id, COMMAND_SEEN_TTL_S);
    if (f < 0)
        return ens_err_set(errstr, errstr_size, (ens_err_t)f, "study %s: command %s: %s", study,
                           event_id, ens_err_str((ens_err_t)f));
    *first = f;
    return ENS_OK;
}

static const char *const study_sets[2] = {K_STUDIES_ACTIVE, K_STUDIES_SETTLING};

static ens_err_t redis_studies_list(void *ctx, int which, char ***studies, int *n, char *errstr,
                                    size_t errstr_size) {
    ens_redis_reply_t *rep = NULL;
    ens_err_t err = ens_state_redis_array_cmd(R(ctx), &rep, errstr, errstr_size, "SMEMBERS %s",
                                              study_sets[which]);
    if (err)
        return err;
    char **v = calloc(rep->elements + 1, sizeof *v);
    int k = 0;
    if (!v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < rep->elements; i++)
        if (str_of(rep->element[i]) && !(v[k++] = strdup(rep->element[i]->str)))
            err = ENS_ERR_NOMEM;
    ens_redis_reply_free(rep);
    if (err) {
        ens_state_strings_free(v, k);
        return err;
    }
    *studies = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t redis_studies_has(void *ctx, int which, const char *study, int *has, char *errstr,
                                   size_t errstr_size) {
    long long v = 0;
    ens_err_t err = ens_state_redis_int_cmd(R(ctx), &v, errstr, errstr_size, "SISMEMBER %s %s",
                                            study_sets[which], study);
    *has = v == 1;
    return err;
}

static ens_err_t redis_studies_remove(void *ctx, int which, const char *study, char *errstr,
                                      size_t errstr_size) {
    return ens_redis_exec(R(ctx), errstr, errstr_size, "SREM %s %s", study_sets[which], study);
}

/* ---- speeds, results watched, progress ------------------------------------------------- */

static ens_err_t redis_speed_put(void *ctx, const char *study, const char *trial,
                                 double seconds_per_epoch, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_SPEED);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "ZADD %s %.6g %s", key, seconds_per_epoch,
                          trial);
}

static ens_err_t redis_speed_list(void *ctx, const char *study, double **spe, int *n, char *errstr,
                                  size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_SPEED);
    ens_err_t err = ens_state_redis_array_cmd(R(ctx), &rep, errstr, errstr_size,
                                              "ZRANGE %s 0 -1 WITHSCORES", key);
    if (err)
        return err;
    size_t k = rep->elements / 2;
    double *v = k ? malloc(k * sizeof *v) : NULL;
    if (k && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < k; i++)
        v[i] = num_of(rep->element[2 * i + 1]);
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *spe = v;
    *n = (int)k;
    return ENS_OK;
}

static ens_err_t redis_results_get(void *ctx, const char *study, ens_state_sched_results_t *out,
                                   char *errstr, size_t errstr_size) {
    char models[256], lib[256], watch[256];
    KEY(models, study, K_MODELS);
    KEY(lib, study, K_LIBRARY);
    KEY(watch, study, K_EVALWATCH);
    const char *c0[] = {"SDIFF", models, lib}, *c1[] = {"SCARD", lib}, *c2[] = {"SCARD", models},
               *c3[] = {"HMGET", watch, F_COUNT, F_SINCE_MS, F_ROUNDS};
    const char **cmds[] = {c0, c1, c2, c3};
    const int argc[] = {3, 2, 2, 5};
    ens_redis_reply_t *r[4] = {NULL, NULL, NULL, NULL};
    ens_err_t err = ens_redis_pipeline(R(ctx), 4, argc, cmds, r, errstr, errstr_size);
    if (!err &&
        (r[0]->type != ENS_REPLY_ARRAY || r[1]->type != ENS_REPLY_INTEGER ||
         r[2]->type != ENS_REPLY_INTEGER || r[3]->type != ENS_REPLY_ARRAY || r[3]->elements != 3))
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "recover results: unexpected reply");
    if (!err) {
        out->library = r[1]->integer;
        out->models = r[2]->integer;
        const char *count = str_of(r[3]->element[0]), *since = str_of(r[3]->element[1]),
                   *rounds = str_of(r[3]->element[2]);
        out->watched = count != NULL;
        out->count = count ? strtoll(count, NULL, 10) : -1;
        out->since_ms = since ? strtoll(since, NULL, 10) : -1;
        out->rounds = rounds ? strtoll(rounds, NULL, 10) : 0;
        out->missing = calloc(r[0]->elements + 1, sizeof *out->missing);
        if (!out->missing)
            err = ENS_ERR_NOMEM;
        for (size_t i = 0; !err && i < r[0]->elements; i++)
            if (str_of(r[0]->element[i]) &&
                !(out->missing[out->n_missing++] = strdup(r[0]->element[i]->str)))
                err = ENS_ERR_NOMEM;
    }
    for (int i = 0; i < 4; i++)
        ens_redis_reply_free(r[i]);
    return err;
}

static ens_err_t redis_evalwatch_put(void *ctx, const char *study, long long count,
                                     int64_t since_ms, long long rounds, char *errstr,
                                     size_t errstr_size) {
    char key[256];
    KEY(key, study, K_EVALWATCH);
    if (count < 0 && rounds < 0 && since_ms < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
    if (rounds < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size,
                              "HSET %s " F_COUNT " %lld " F_SINCE_MS " %lld", key, count,
                              (long long)since_ms);
    if (count < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size,
                              "HSET %s " F_SINCE_MS " %lld " F_ROUNDS " %lld", key,
                              (long long)since_ms, rounds);
    return ens_redis_exec(R(ctx), errstr, errstr_size,
                          "HSET %s " F_COUNT " %lld " F_SINCE_MS " %lld " F_ROUNDS " %lld", key,
                          count, (long long)since_ms, rounds);
}

static ens_err_t redis_counts(void *ctx, const char *study, ens_state_sched_counts_t *out,
                              char *errstr, size_t errstr_size) {
    char done[256], failed[256], lib[256], models[256], infl[256], asha[256];
    KEY(done, study, K_TRIALS_DONE);
    KEY(failed, study, K_TRIALS_FAILED);
    KEY(lib, study, K_LIBRARY);
    KEY(models, study, K_MODELS);
    KEY(infl, study, K_INFLIGHT);
    KEY(asha, study, K_ASHA);
    const char *c0[] = {"SCARD", done}, *c1[] = {"SCARD", failed}, *c2[] = {"SCARD", lib},
               *c3[] = {"SCARD", models}, *c4[] = {"HLEN", infl},
               *c5[] = {"HMGET", asha, F_CONFIGS, F_EPOCHS_ISSUED};
    const char **cmds[] = {c0, c1, c2, c3, c4, c5};
    const int argc[] = {2, 2, 2, 2, 2, 4};
    ens_redis_reply_t *r[6] = {NULL};
    ens_err_t err = ens_redis_pipeline(R(ctx), 6, argc, cmds, r, errstr, errstr_size);
    if (!err) {
        long *n[] = {&out->trials_done, &out->trials_failed, &out->library, &out->models,
                     &out->inflight};
        for (int i = 0; i < 5; i++)
            *n[i] = r[i]->type == ENS_REPLY_INTEGER ? (long)r[i]->integer : 0;
        if (r[5]->type == ENS_REPLY_ARRAY && r[5]->elements == 2) {
            out->configs = (long)int_of(r[5]->element[0]);
            out->epochs_issued = num_of(r[5]->element[1]);
        }
    }
    for (int i = 0; i < 6; i++)
        ens_redis_reply_free(r[i]);
    return err;
}

/* The score at rank i of a zset, highest first; NAN when there is none. */
static ens_err_t rank_score(ens_redis_t *r, const char *key, long i, double *score, char *errstr,
                            size_t errstr_size) {
    ens_redis_reply_t *rep =
        ens_redis_command(r, errstr, errstr_size, "ZREVRANGE %s %ld %ld WITHSCORES", key, i, i);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements == 2 && str_of(rep->element[1]))
        *score = strtod(rep->element[1]->str, NULL);
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_rung_get(void *ctx, const char *study, int bracket, int rung,
                                ens_state_sched_rung_t *out, char *errstr, size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char asha[256], key[256], fe[32], fd[32];
    KEY(asha, study, K_ASHA);
    KEY(key, study, K_RUNG, bracket, rung);
    snprintf(fe, sizeof fe, F_ENTERED, bracket, rung);
    snprintf(fd, sizeof fd, F_DONE, bracket, rung);
    ens_redis_reply_t *rep = NULL;
    ens_err_t err =
        ens_state_redis_array_cmd(r, &rep, errstr, errstr_size, "HMGET %s %s %s", asha, fe, fd);
    if (err)
        return err;
    if (rep->elements == 2) {
        out->entered = (long)int_of(rep->element[0]);
        out->done = (long)int_of(rep->element[1]);
    }
    ens_redis_reply_free(rep);
    long long n = 0;
    if ((err = ens_state_redis_int_cmd(r, &n, errstr, errstr_size, "ZCARD %s", key)))
        return err;
    out->n = (long)n;
    if (!err && n > 0)
        err = rank_score(r, key, 0, &out->best, errstr, errstr_size);
    if (!err && n > 0)
        err = rank_score(r, key, (long)(n / 2), &out->median, errstr, errstr_size);
    return err;
}

const struct ens_state_sched_i ens_state_sched_redis = {
    .study_create = redis_study_create,
    .study_get = redis_study_get,
    .study_status_put = redis_study_status_put,
    .study_extend = redis_study_extend,
    .study_end = redis_study_end,
    .command_first = redis_command_first,
    .studies_list = redis_studies_list,
    .studies_has = redis_studies_has,
    .studies_remove = redis_studies_remove,
    .asha_view = ens_state_redis_sched_asha_view,
    .asha_commit = ens_state_redis_sched_asha_commit,
    .asha_result = ens_state_redis_sched_asha_result,
    .inflight_list = ens_state_redis_sched_inflight_list,
    .inflight_get = ens_state_redis_sched_inflight_get,
    .inflight_count = ens_state_redis_sched_inflight_count,
    .dispatched_list = ens_state_redis_sched_dispatched_list,
    .dispatched_put = ens_state_redis_sched_dispatched_put,
    .dispatched_remove = ens_state_redis_sched_dispatched_remove,
    .outbox_list = ens_state_redis_sched_outbox_list,
    .outbox_put = ens_state_redis_sched_outbox_put,
    .outbox_remove = ens_state_redis_sched_outbox_remove,
    .trial_config = ens_state_redis_sched_trial_config,
    .speed_put = redis_speed_put,
    .speed_list = redis_speed_list,
    .results_get = redis_results_get,
    .evalwatch_put = redis_evalwatch_put,
    .counts = redis_counts,
    .rung_get = redis_rung_get,
    .lease_take = ens_state_redis_sched_lease_take,
    .lease_renew = ens_state_redis_sched_lease_renew,
    .lease_drop = ens_state_redis_sched_lease_drop,
    .lease_held = ens_state_redis_sched_lease_held,
    .attempt_add = ens_state_redis_sched_attempt_add,
    .job_put = ens_state_redis_sched_job_put,
    .job_get = ens_state_redis_sched_job_get,
    .job_progress = ens_state_redis_sched_job_progress,
};
