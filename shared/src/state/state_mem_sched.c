/* state_mem_sched.c - the scheduler's and the jobs' state in memory (state_sched.h), for unit
 * tests of the proposer's and the trainer's handlers: studies and the ASHA steps done as the
 * Lua scripts of state_redis_asha.c do them, over the Redis keys of state_sched_keys.h in the
 * store of state_mem_kv.h; state_mem_jobs.c has the rest. No TTLs, one thread. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_sched.h"
#include "state_internal.h"
#include "state_mem_kv.h"
#include "state_sched_keys.h"

/* ---- studies -------------------------------------------------------------------------- */

static ens_err_t mem_study_create(void *ctx, const ens_state_sched_study_t *st, int *created,
                                  char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, st->study_id, K_STUDY);
    if (ens_memkv_hget(s, key, F_SCHEDULER))
        return ENS_OK;
    ens_err_t err = ens_memkv_hset(s, key, F_STUDY_ID, st->study_id);
    if (!err)
        err = ens_memkv_hset(s, key, F_DATASET, st->dataset ? st->dataset : "");
    if (!err)
        err = ens_memkv_hset(s, key, F_SEARCH_SPACE,
                             st->search_space && *st->search_space ? st->search_space : "{}");
    if (!err)
        err = ens_memkv_hsetf(s, key, F_N_TRIALS, "%d", (int)st->n_trials);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_EPOCHS, "%.17g", st->epochs);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_SEED, "%lld", (long long)st->seed);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_VAL_FRACTION, "%.17g", st->val_fraction);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_TOP_K, "%d", (int)st->top_k);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_CREATED_MS, "%lld", (long long)st->created_ms);
    if (!err)
        err = ens_memkv_hset(s, key, F_STATUS, "running");
    if (!err)
        err = ens_memkv_hset(s, key, F_SCHEDULER, st->scheduler);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_ETA, "%.17g", st->eta);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_MIN_EPOCHS, "%.17g", st->min_epochs);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_S_MAX, "%d", (int)st->s_max);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_MAX_EPOCHS_BUDGET, "%.17g", st->max_epochs_budget);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_DEADLINE_MS, "%lld", (long long)st->deadline_ms);
    if (!err && !ens_memkv_item(ens_memkv_obj(s, K_STUDIES, ENS_MEMKV_ZSET, 0), st->study_id))
        err = ens_memkv_zadd(s, K_STUDIES, st->study_id, (double)st->created_ms);
    if (!err)
        err = ens_memkv_sadd(s, K_STUDIES_ACTIVE, st->study_id);
    if (!err)
        *created = 1;
    return err;
}

static ens_err_t mem_study_get(void *ctx, const char *study, ens_state_sched_study_t *out,
                               char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
#define STR(f) (ens_memkv_hget(s, key, f) ? ens_memkv_hget(s, key, f) : "")
#define NUM(f) (ens_memkv_hget(s, key, f) ? strtod(ens_memkv_hget(s, key, f), NULL) : 0)
#define INT(f) (ens_memkv_hget(s, key, f) ? strtoll(ens_memkv_hget(s, key, f), NULL, 10) : 0)
    snprintf(out->status, sizeof out->status, "%s", STR(F_STATUS));
    snprintf(out->scheduler, sizeof out->scheduler, "%s", STR(F_SCHEDULER));
    if (ens_memkv_hget(s, key, F_DATASET) &&
        !(out->dataset = strdup(ens_memkv_hget(s, key, F_DATASET))))
        return ENS_ERR_NOMEM;
    if (ens_memkv_hget(s, key, F_SEARCH_SPACE) &&
        !(out->search_space = strdup(ens_memkv_hget(s, key, F_SEARCH_SPACE))))
        return ENS_ERR_NOMEM;
    out->n_trials = (int32_t)NUM(F_N_TRIALS);
    out->top_k = (int32_t)NUM(F_TOP_K);
    out->s_max = (int32_t)NUM(F_S_MAX);
    out->epochs = NUM(F_EPOCHS);
    out->val_fraction = NUM(F_VAL_FRACTION);
    out->eta = NUM(F_ETA);
    out->min_epochs = NUM(F_MIN_EPOCHS);
    out->max_epochs_budget = NUM(F_MAX_EPOCHS_BUDGET);
    out->seed = INT(F_SEED);
    out->created_ms = INT(F_CREATED_MS);
    out->deadline_ms = INT(F_DEADLINE_MS);
#undef STR
#undef NUM
#undef INT
    return ENS_OK;
}

static ens_err_t mem_study_status_put(void *ctx, const char *study, const char *status,
                                      const char *error, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
    ens_err_t err = ens_memkv_hset(s, key, F_STATUS, status);
    return !err && error ? ens_memkv_hset(s, key, F_ERROR, error) : err;
}

static ens_err_t mem_study_extend(void *ctx, const char *study, int32_t add_trials,
                                  double add_epochs, int64_t deadline_ms, char *errstr,
                                  size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
    ens_err_t err = ENS_OK;
    if (add_trials)
        err = ens_memkv_hincr(s, key, F_N_TRIALS, add_trials, 1, NULL);
    if (!err && add_epochs > 0)
        err = ens_memkv_hincr(s, key, F_MAX_EPOCHS_BUDGET, add_epochs, 0, NULL);
    if (!err && deadline_ms > 0)
        err = ens_memkv_hsetf(s, key, F_DEADLINE_MS, "%lld", (long long)deadline_ms);
    if (!err)
        err = ens_memkv_hset(s, key, F_STATUS, "running");
    if (!err)
        err = ens_memkv_sadd(s, K_STUDIES_ACTIVE, study);
    if (!err)
        err = ens_state_studies_mem.compact_remove(ctx, study, errstr, errstr_size);
    return err;
}

static ens_err_t mem_study_end(void *ctx, const char *study, const char *final_status, char *errstr,
                               size_t errstr_size) {
    SCHED(s);
    char key[256], disp[256];
    KEY(key, study, K_STUDY);
    KEY(disp, study, K_DISPATCHED);
    ens_err_t err = final_status ? ens_memkv_hset(s, key, F_STATUS, final_status) : ENS_OK;
    if (!err)
        err = ens_memkv_sadd(s, K_STUDIES_SETTLING, study);
    if (!err)
        err = ens_state_studies_mem.compact_add(ctx, study, errstr, errstr_size);
    if (!err) {
        ens_memkv_remove(s, K_STUDIES_ACTIVE, ENS_MEMKV_SET, study);
        ens_memkv_del(s, disp);
    }
    return err;
}

static ens_err_t mem_command_first(void *ctx, const char *study, const char *event_id, int *first,
                                   char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, "seen:" K_SEEN_SCOPE_CMD ":%s", event_id);
    if (ens_memkv_obj(s, key, ENS_MEMKV_STR, 0))
        return ENS_OK;
    ens_err_t err = ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_STR, 1), "", "1", 0);
    *first = !err;
    return err;
}

static const char *const study_sets[2] = {K_STUDIES_ACTIVE, K_STUDIES_SETTLING};

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ens_err_t mem_studies_list(void *ctx, int which, char ***studies, int *n, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    ens_memkv_obj_t *o = ens_memkv_obj(s, study_sets[which], ENS_MEMKV_SET, 0);
    int k = o ? o->n : 0;
    char **v = calloc((size_t)k + 1, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    for (int i = 0; i < k; i++)
        if (!(v[i] = strdup(o->it[i].field))) {
            ens_state_strings_free(v, i);
            return ENS_ERR_NOMEM;
        }
    qsort(v, (size_t)k, sizeof *v, cmp_str);
    *studies = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_studies_has(void *ctx, int which, const char *study, int *has, char *errstr,
                                 size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    *has = ens_memkv_item(ens_memkv_obj(s, study_sets[which], ENS_MEMKV_SET, 0), study) != NULL;
    return ENS_OK;
}

static ens_err_t mem_studies_remove(void *ctx, int which, const char *study, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    ens_memkv_remove(s, study_sets[which], ENS_MEMKV_SET, study);
    return ENS_OK;
}

/* ---- the ASHA steps, as the scripts do them --------------------------------------------- */

/* The view after a step (the scripts' view()). */
static ens_err_t view(ens_memkv_t *s, const char *study, const ens_asha_params_t *p,
                      ens_asha_view_t *v) {
    char asha[256], key[256], f[48];
    memset(v, 0, sizeof *v);
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++)
            v->rung[b][k].cand_rank = -1;
    if (!ens_key(asha, sizeof asha, study, K_ASHA))
        return ENS_ERR_INVALID;
    const char *x;
    v->decisions = (x = ens_memkv_hget(s, asha, F_DECISIONS)) ? strtoll(x, NULL, 10) : 0;
    v->configs = (x = ens_memkv_hget(s, asha, F_CONFIGS)) ? (int32_t)strtol(x, NULL, 10) : 0;
    v->epochs_issued = (x = ens_memkv_hget(s, asha, F_EPOCHS_ISSUED)) ? strtod(x, NULL) : 0;
    v->version = (x = ens_memkv_hget(s, asha, F_VERSION)) ? strtoll(x, NULL, 10) : 0;
    for (int b = 0; b < ens_asha_n_brackets(p); b++)
        for (int k = 0; k < ens_asha_n_rungs(p, b); k++) {
            ens_asha_rung_t *o = &v->rung[b][k];
            snprintf(f, sizeof f, F_DONE, b, k);
            o->done = (x = ens_memkv_hget(s, asha, f)) ? (int32_t)strtol(x, NULL, 10) : 0;
            snprintf(f, sizeof f, F_ENTERED, b, k);
            o->entered = (x = ens_memkv_hget(s, asha, f)) ? (int32_t)strtol(x, NULL, 10) : 0;
            ens_memkv_item_t **cand = NULL, **rung = NULL;
            int n_cand = 0, n = 0;
            ens_key(key, sizeof key, study, K_CAND, b, k);
            ens_err_t err = ens_memkv_zrev(s, key, &cand, &n_cand);
            ens_key(key, sizeof key, study, K_RUNG, b, k);
            if (!err)
                err = ens_memkv_zrev(s, key, &rung, &n);
            o->n = n;
            for (int i = 0; !err && n_cand > 0 && i < n; i++)
                if (!strcmp(rung[i]->field, cand[0]->field)) {
                    o->cand_rank = i;
                    snprintf(o->cand, sizeof o->cand, "%s", cand[0]->field);
                }
            free(cand);
            free(rung);
            if (err)
                return err;
        }
    return ENS_OK;
}

static ens_err_t mem_asha_view(void *ctx, const char *study, const ens_asha_params_t *p,
                               ens_asha_view_t *v, int *round_trips, char *errstr,
                               size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    *round_trips = 1;
    return view(s, study, p, v);
}

static ens_err_t mem_asha_commit(void *ctx, const char *study, const ens_asha_params_t *p,
                                 const ens_asha_decision_t *d, int64_t base_version,
                                 const char *config_json, int *applied, ens_asha_view_t *next,
                                 char *errstr, size_t errstr_size) {
    SCHED(s);
    char asha[256], key[256], f[48], from[40], to[40], rec[256];
    KEY(asha, study, K_ASHA);
    const char *x;
    long long n = (x = ens_memkv_hget(s, asha, F_DECISIONS)) ? strtoll(x, NULL, 10) : 0;
    long long ver = (x = ens_memkv_hget(s, asha, F_VERSION)) ? strtoll(x, NULL, 10) : 0;
    if (n != d->seq || (base_version >= 0 && ver != base_version))
        return next ? view(s, study, p, next) : ENS_OK;
    const char *t = d->trial_id;
    int b = d->bracket, k = d->rung;
    ens_err_t err = ENS_OK;
    if (d->action == ENS_ASHA_PROMOTE) {
        KEY(key, study, K_CAND, b, k - 1);
        if (!ens_memkv_remove(s, key, ENS_MEMKV_ZSET, t))
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "promoted trial %s is not a candidate", t);
    } else {
        KEY(key, study, K_TRIAL, t);
        err = ens_memkv_hincr(s, asha, F_CONFIGS, 1, 1, NULL);
        if (!err)
            err = ens_memkv_hset(s, key, F_CONFIG, config_json);
        if (!err)
            err = ens_memkv_hsetf(s, key, "bracket", "%d", b);
    }
    snprintf(from, sizeof from, "%.17g", d->from_epochs);
    snprintf(to, sizeof to, "%.17g", d->to_epochs);
    if (!err)
        err = ens_memkv_hsetf(s, asha, F_DECISIONS, "%lld", n + 1);
    if (!err)
        err = ens_memkv_hincr(s, asha, F_VERSION, 1, 1, NULL);
    snprintf(f, sizeof f, F_ENTERED, b, k);
    if (!err)
        err = ens_memkv_hincr(s, asha, f, 1, 1, NULL);
    if (!err)
        err = ens_memkv_hincr(s, asha, F_EPOCHS_ISSUED, strtod(to, NULL) - strtod(from, NULL), 0,
                              NULL);
    KEY(key, study, K_INFLIGHT);
    snprintf(rec, sizeof rec, "%lld %d %d %s %s", (long long)d->seq, b, k, from, to);
    if (!err)
        err = ens_memkv_hset(s, key, t, rec);
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", (long long)d->seq);
    if (!err)
        err = ens_memkv_hset(s, key, f, t);
    KEY(key, study, K_DECISIONS);
    snprintf(rec, sizeof rec, "%s %s %d %d %s %s", d->action == ENS_ASHA_NEW ? "new" : "promote", t,
             b, k, from, to);
    if (!err)
        err = ens_memkv_hset(s, key, f, rec);
    KEY(key, study, K_TRIAL, t);
    if (!err)
        err = ens_memkv_hset(s, key, "status", "queued");
    if (!err)
        err = ens_memkv_hsetf(s, key, "rung", "%d", k);
    if (!err)
        err = ens_memkv_hset(s, key, "target_epochs", to);
    if (err)
        return err;
    *applied = 1;
    return next ? view(s, study, p, next) : ENS_OK;
}

static ens_err_t mem_asha_result(void *ctx, const char *study, const ens_asha_params_t *p,
                                 const char *trial_id, int ok, double score, double epochs_done,
                                 const char *model_id, const char *error, int *applied,
                                 ens_asha_view_t *next, char *errstr, size_t errstr_size) {
    SCHED(s);
    char infl[256], asha[256], key[256], f[48], sc[40], ep[40];
    KEY(infl, study, K_INFLIGHT);
    KEY(asha, study, K_ASHA);
    const char *job = ens_memkv_hget(s, infl, trial_id);
    long long seq;
    int b, k;
    if (!job || sscanf(job, "%lld %d %d ", &seq, &b, &k) != 3)
        return next ? view(s, study, p, next) : ENS_OK;
    ens_memkv_remove(s, infl, ENS_MEMKV_HASH, trial_id);
    snprintf(f, sizeof f, F_DONE, b, k);
    ens_err_t err = ens_memkv_hincr(s, asha, f, 1, 1, NULL);
    if (!err)
        err = ens_memkv_hincr(s, asha, F_VERSION, 1, 1, NULL);
    snprintf(sc, sizeof sc, "%.17g", score);
    snprintf(ep, sizeof ep, "%.17g", epochs_done);
    char th[256];
    KEY(th, study, K_TRIAL, trial_id);
    if (ok) {
        KEY(key, study, K_RUNG, b, k);
        if (!err)
            err = ens_memkv_zadd(s, key, trial_id, strtod(sc, NULL));
        KEY(key, study, K_CAND, b, k);
        if (!err && b + k < p->m)
            err = ens_memkv_zadd(s, key, trial_id, strtod(sc, NULL));
        if (!err)
            err = ens_memkv_hset(s, th, "status", "done");
        if (!err)
            err = ens_memkv_hset(s, th, "val_accuracy", sc);
        if (!err)
            err = ens_memkv_hset(s, th, "epochs_done", ep);
        if (!err)
            err = ens_memkv_hset(s, th, "model_id", model_id);
        snprintf(f, sizeof f, "r%d_acc", k);
        if (!err)
            err = ens_memkv_hset(s, th, f, sc);
        snprintf(f, sizeof f, "r%d_model", k);
        if (!err)
            err = ens_memkv_hset(s, th, f, model_id);
        KEY(key, study, K_TRIALS_DONE);
        if (!err)
            err = ens_memkv_sadd(s, key, trial_id);
        KEY(key, study, K_MODELS);
        if (!err)
            err = ens_memkv_sadd(s, key, model_id);
    } else {
        if (!err)
            err = ens_memkv_hset(s, th, "status", "failed");
        if (!err)
            err = ens_memkv_hset(s, th, "error", error);
        snprintf(f, sizeof f, "r%d_error", k);
        if (!err)
            err = ens_memkv_hset(s, th, f, error);
        KEY(key, study, K_TRIALS_FAILED);
        if (!err)
            err = ens_memkv_sadd(s, key, trial_id);
    }
    if (err)
        return err;
    *applied = 1;
    return next ? view(s, study, p, next) : ENS_OK;
}

const struct ens_state_sched_i ens_state_sched_mem = {
    .study_create = mem_study_create,
    .study_get = mem_study_get,
    .study_status_put = mem_study_status_put,
    .study_extend = mem_study_extend,
    .study_end = mem_study_end,
    .command_first = mem_command_first,
    .studies_list = mem_studies_list,
    .studies_has = mem_studies_has,
    .studies_remove = mem_studies_remove,
    .asha_view = mem_asha_view,
    .asha_commit = mem_asha_commit,
    .asha_result = mem_asha_result,
    .inflight_list = ens_state_mem_sched_inflight_list,
    .inflight_get = ens_state_mem_sched_inflight_get,
    .inflight_count = ens_state_mem_sched_inflight_count,
    .dispatched_list = ens_state_mem_sched_dispatched_list,
    .dispatched_put = ens_state_mem_sched_dispatched_put,
    .dispatched_remove = ens_state_mem_sched_dispatched_remove,
    .outbox_list = ens_state_mem_sched_outbox_list,
    .outbox_put = ens_state_mem_sched_outbox_put,
    .outbox_remove = ens_state_mem_sched_outbox_remove,
    .trial_config = ens_state_mem_sched_trial_config,
    .speed_put = ens_state_mem_sched_speed_put,
    .speed_list = ens_state_mem_sched_speed_list,
    .results_get = ens_state_mem_sched_results_get,
    .evalwatch_put = ens_state_mem_sched_evalwatch_put,
    .counts = ens_state_mem_sched_counts,
    .rung_get = ens_state_mem_sched_rung_get,
    .lease_take = ens_state_mem_sched_lease_take,
    .lease_renew = ens_state_mem_sched_lease_renew,
    .lease_drop = ens_state_mem_sched_lease_drop,
    .lease_held = ens_state_mem_sched_lease_held,
    .attempt_add = ens_state_mem_sched_attempt_add,
    .job_put = ens_state_mem_sched_job_put,
    .job_get = ens_state_mem_sched_job_get,
    .job_progress = ens_state_mem_sched_job_progress,
};
