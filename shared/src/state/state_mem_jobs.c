/* state_mem_jobs.c - the in-memory jobs in flight, dispatched and in the outbox, speeds, the
 * watch on results, progress counts, and the trainer's leases, attempts and job records
 * (state_sched.h; state_mem_sched.c has the table). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_sched.h"
#include "state_internal.h"
#include "state_mem_kv.h"
#include "state_sched_keys.h"

/* The study's library, state_mem.c's entries of kind K_LIBRARY (state.h's library). */
static ens_err_t library_of(void *ctx, const char *study, char ***models, int *n) {
    return ens_state_mem_ids(ctx, K_LIBRARY, study, models, n);
}

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

ens_err_t ens_state_mem_sched_inflight_list(void *ctx, const char *study,
                                            ens_state_sched_inflight_t **jobs, int *n, char *errstr,
                                            size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, ENS_MEMKV_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_inflight_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++)
        if (strlen(o->it[i].field) < ENS_ID_MAX &&
            ens_state_sched_inflight_parse(o->it[i].val, &v[k]))
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", o->it[i].field);
    *jobs = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_inflight_get(void *ctx, const char *study, const char *trial,
                                           ens_state_sched_inflight_t *job, int *found,
                                           char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    if (ens_state_sched_inflight_parse(ens_memkv_hget(s, key, trial), job)) {
        snprintf(job->trial_id, sizeof job->trial_id, "%s", trial);
        *found = 1;
    }
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                             size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    *n = ens_memkv_count(s, key, ENS_MEMKV_HASH);
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_dispatched_list(void *ctx, const char *study,
                                              ens_state_sched_dispatched_t **out, int *n,
                                              char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, ENS_MEMKV_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_dispatched_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++) {
        long long seq = -1, sent = -1;
        int part = -1;
        if (strlen(o->it[i].field) >= ENS_ID_MAX ||
            sscanf(o->it[i].val, "%lld %d %lld", &seq, &part, &sent) < 2)
            continue;
        snprintf(v[k].trial_id, ENS_ID_MAX, "%s", o->it[i].field);
        v[k].seq = seq;
        v[k].partition = part;
        v[k++].sent_ms = sent;
    }
    *out = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_dispatched_put(void *ctx, const char *study,
                                             const ens_state_sched_dispatched_t *d, char *errstr,
                                             size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    return ens_memkv_hsetf(s, key, d->trial_id, "%lld %d %lld", d->seq, (int)d->partition,
                           (long long)d->sent_ms);
}

ens_err_t ens_state_mem_sched_dispatched_remove(void *ctx, const char *study, const char *trial,
                                                char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    ens_memkv_remove(s, key, ENS_MEMKV_HASH, trial);
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_outbox_list(void *ctx, const char *study,
                                          ens_state_sched_outbox_t **out, int *n, char *errstr,
                                          size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_OUTBOX);
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, ENS_MEMKV_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_outbox_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++) /* in the order they were put, as a small Redis hash */
        if (strlen(o->it[i].val) < ENS_ID_MAX) {
            v[k].seq = strtoll(o->it[i].field, NULL, 10);
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", o->it[i].val);
        }
    *out = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_outbox_put(void *ctx, const char *study, long long seq,
                                         const char *trial, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256], f[32];
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", seq);
    return ens_memkv_hset(s, key, f, trial);
}

ens_err_t ens_state_mem_sched_outbox_remove(void *ctx, const char *study, long long seq,
                                            char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256], f[32];
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", seq);
    ens_memkv_remove(s, key, ENS_MEMKV_HASH, f);
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_trial_config(void *ctx, const char *study, const char *trial,
                                           char **config, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_TRIAL, trial);
    const char *c = ens_memkv_hget(s, key, F_CONFIG);
    if (!c)
        return ENS_ERR_NOTFOUND;
    return (*config = strdup(c)) ? ENS_OK : ENS_ERR_NOMEM;
}

/* ---- speeds, results watched, progress ------------------------------------------------- */

ens_err_t ens_state_mem_sched_speed_put(void *ctx, const char *study, const char *trial,
                                        double seconds_per_epoch, char *errstr,
                                        size_t errstr_size) {
    SCHED(s);
    char key[256], v[40];
    KEY(key, study, K_SPEED);
    snprintf(v, sizeof v, "%.6g", seconds_per_epoch); /* as Redis is sent it */
    return ens_memkv_zadd(s, key, trial, strtod(v, NULL));
}

ens_err_t ens_state_mem_sched_speed_list(void *ctx, const char *study, double **spe, int *n,
                                         char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_SPEED);
    ens_memkv_item_t **v = NULL;
    int k = 0;
    ens_err_t err = ens_memkv_zrev(s, key, &v, &k);
    double *out = k ? malloc((size_t)k * sizeof *out) : NULL;
    if (!err && k && !out)
        err = ENS_ERR_NOMEM;
    for (int i = 0; !err && i < k; i++) /* ascending: the reverse of zrev */
        out[i] = v[k - 1 - i]->score;
    free(v);
    if (err) {
        free(out);
        return err;
    }
    *spe = out;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_results_get(void *ctx, const char *study,
                                          ens_state_sched_results_t *out, char *errstr,
                                          size_t errstr_size) {
    SCHED(s);
    char models[256], lib[256], watch[256];
    KEY(models, study, K_MODELS);
    KEY(lib, study, K_LIBRARY);
    KEY(watch, study, K_EVALWATCH);
    /* the library is state_mem.c's entry table, not these records: a model counts as in the
     * library when ens_state_library_add put it there */
    char **have = NULL;
    int n_have = 0;
    ens_err_t err = ENS_OK;
    ens_memkv_obj_t *m = ens_memkv_obj(s, models, ENS_MEMKV_SET, 0);
    out->models = m ? m->n : 0;
    out->missing = calloc((size_t)out->models + 1, sizeof *out->missing);
    if (!out->missing)
        return ENS_ERR_NOMEM;
    err = library_of(ctx, study, &have, &n_have);
    out->library = n_have;
    for (int i = 0; !err && m && i < m->n; i++) {
        int in = 0;
        for (int j = 0; j < n_have && !in; j++)
            in = !strcmp(have[j], m->it[i].field);
        if (!in && !(out->missing[out->n_missing++] = strdup(m->it[i].field)))
            err = ENS_ERR_NOMEM;
    }
    ens_state_strings_free(have, n_have);
    const char *c = ens_memkv_hget(s, watch, F_COUNT),
               *since = ens_memkv_hget(s, watch, F_SINCE_MS),
               *rounds = ens_memkv_hget(s, watch, F_ROUNDS);
    out->watched = c != NULL;
    out->count = c ? strtoll(c, NULL, 10) : -1;
    out->since_ms = since ? strtoll(since, NULL, 10) : -1;
    out->rounds = rounds ? strtoll(rounds, NULL, 10) : 0;
    return err;
}

ens_err_t ens_state_mem_sched_evalwatch_put(void *ctx, const char *study, long long cnt,
                                            int64_t since_ms, long long rounds, char *errstr,
                                            size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_EVALWATCH);
    if (cnt < 0 && rounds < 0 && since_ms < 0) {
        ens_memkv_del(s, key);
        return ENS_OK;
    }
    ens_err_t err = cnt >= 0 ? ens_memkv_hsetf(s, key, F_COUNT, "%lld", cnt) : ENS_OK;
    if (!err)
        err = ens_memkv_hsetf(s, key, F_SINCE_MS, "%lld", (long long)since_ms);
    if (!err && rounds >= 0)
        err = ens_memkv_hsetf(s, key, F_ROUNDS, "%lld", rounds);
    return err;
}

ens_err_t ens_state_mem_sched_counts(void *ctx, const char *study, ens_state_sched_counts_t *out,
                                     char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_TRIALS_DONE);
    out->trials_done = ens_memkv_count(s, key, ENS_MEMKV_SET);
    KEY(key, study, K_TRIALS_FAILED);
    out->trials_failed = ens_memkv_count(s, key, ENS_MEMKV_SET);
    KEY(key, study, K_MODELS);
    out->models = ens_memkv_count(s, key, ENS_MEMKV_SET);
    KEY(key, study, K_INFLIGHT);
    out->inflight = ens_memkv_count(s, key, ENS_MEMKV_HASH);
    char **have = NULL;
    int n_have = 0;
    ens_err_t err = library_of(ctx, study, &have, &n_have);
    ens_state_strings_free(have, n_have);
    out->library = n_have;
    KEY(key, study, K_ASHA);
    const char *x;
    out->configs = (x = ens_memkv_hget(s, key, F_CONFIGS)) ? strtol(x, NULL, 10) : 0;
    out->epochs_issued = (x = ens_memkv_hget(s, key, F_EPOCHS_ISSUED)) ? strtod(x, NULL) : 0;
    return err;
}

ens_err_t ens_state_mem_sched_rung_get(void *ctx, const char *study, int bracket, int rung,
                                       ens_state_sched_rung_t *out, char *errstr,
                                       size_t errstr_size) {
    SCHED(s);
    char asha[256], key[256], f[48];
    KEY(asha, study, K_ASHA);
    KEY(key, study, K_RUNG, bracket, rung);
    const char *x;
    snprintf(f, sizeof f, F_ENTERED, bracket, rung);
    out->entered = (x = ens_memkv_hget(s, asha, f)) ? strtol(x, NULL, 10) : 0;
    snprintf(f, sizeof f, F_DONE, bracket, rung);
    out->done = (x = ens_memkv_hget(s, asha, f)) ? strtol(x, NULL, 10) : 0;
    ens_memkv_item_t **v = NULL;
    int n = 0;
    ens_err_t err = ens_memkv_zrev(s, key, &v, &n);
    out->n = n;
    if (!err && n > 0) {
        out->best = v[0]->score;
        out->median = v[n / 2]->score;
    }
    free(v);
    return err;
}

/* ---- the trainer's side: leases, attempts, job records ------------------------------------ */

ens_err_t ens_state_mem_sched_lease_take(void *ctx, const char *study, const char *trial,
                                         const char *trainer, const char *model, int ttl_ms,
                                         char *holder, size_t holder_size, char *errstr,
                                         size_t errstr_size) {
    (void)ttl_ms;
    SCHED(s);
    char key[256], val[160], h[160], mid[160];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    ens_memkv_item_t *it = ens_memkv_item(ens_memkv_obj(s, key, ENS_MEMKV_STR, 0), "");
    if (it && strcmp(it->val, val) && sscanf(it->val, "%159s %159s", h, mid) == 2 &&
        !strcmp(mid, model) && strcmp(h, trainer)) {
        snprintf(holder, holder_size, "%s", it->val);
        return ENS_OK;
    }
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_STR, 1), "", val, 0);
}

ens_err_t ens_state_mem_sched_lease_renew(void *ctx, const char *study, const char *trial,
                                          const char *trainer, const char *model, int ttl_ms,
                                          int *lost, char *errstr, size_t errstr_size) {
    (void)ttl_ms;
    SCHED(s);
    char key[256], val[160];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    ens_memkv_item_t *it = ens_memkv_item(ens_memkv_obj(s, key, ENS_MEMKV_STR, 0), "");
    if (it && strcmp(it->val, val)) {
        *lost = 1;
        return ENS_OK;
    }
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_STR, 1), "", val, 0);
}

ens_err_t ens_state_mem_sched_lease_drop(void *ctx, const char *study, const char *trial,
                                         char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_LEASE, trial);
    ens_memkv_del(s, key);
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_lease_held(void *ctx, const char *study, const char *trial, int *held,
                                         char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_LEASE, trial);
    *held = ens_memkv_obj(s, key, ENS_MEMKV_STR, 0) != NULL;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_attempt_add(void *ctx, const char *study, const char *model,
                                          int delta, long long *attempt, char *errstr,
                                          size_t errstr_size) {
    SCHED(s);
    char key[256], v[32];
    KEY(key, study, K_ATTEMPTS, model);
    if (delta == 0) {
        ens_memkv_del(s, key);
        return ENS_OK;
    }
    ens_memkv_item_t *it = ens_memkv_item(ens_memkv_obj(s, key, ENS_MEMKV_STR, 0), "");
    long long a = (it ? strtoll(it->val, NULL, 10) : 0) + delta;
    snprintf(v, sizeof v, "%lld", a);
    *attempt = a;
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_STR, 1), "", v, 0);
}

ens_err_t ens_state_mem_sched_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                                      char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, res->model_id);
    ens_err_t err = ens_memkv_hset(s, key, F_TRAINED_MODEL, res->model_id);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_VAL_ACCURACY, "%.6f", res->val_accuracy);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_VAL_LOSS, "%.6f", res->val_loss);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_TRAIN_SECONDS, "%.3f", res->train_seconds);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_EPOCHS_DONE, "%.17g", res->epochs_done);
    if (!err)
        err = ens_memkv_hsetf(s, key, F_SPS, "%.1f", res->train_samples_per_second);
    return err;
}

ens_err_t ens_state_mem_sched_job_get(void *ctx, const char *study, const char *model,
                                      ens_trial_result_t *res, int *found, char *errstr,
                                      size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, model);
    const char *m = ens_memkv_hget(s, key, F_TRAINED_MODEL);
    if (!m)
        return ENS_OK;
    *found = 1;
    snprintf(res->model_id, sizeof res->model_id, "%s", m);
    static const char *const fields[] = {F_VAL_ACCURACY, F_VAL_LOSS, F_TRAIN_SECONDS, F_EPOCHS_DONE,
                                         F_SPS};
    double *out[] = {&res->val_accuracy, &res->val_loss, &res->train_seconds, &res->epochs_done,
                     &res->train_samples_per_second};
    for (int i = 0; i < 5; i++) {
        const char *x = ens_memkv_hget(s, key, fields[i]);
        *out[i] = x ? strtod(x, NULL) : 0;
    }
    res->status = ENS_TRIAL_OK;
    return ENS_OK;
}

ens_err_t ens_state_mem_sched_job_progress(void *ctx, const char *study, const char *model,
                                           double epochs, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, model);
    return ens_memkv_hsetf(s, key, F_PROGRESS_EPOCHS, "%.4g", epochs);
}
