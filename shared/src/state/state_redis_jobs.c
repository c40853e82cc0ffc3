/* state_redis_jobs.c - jobs in flight, dispatched and in the outbox, and the trainer's leases,
 * attempts and job records, in Redis (state_sched.h; state_redis_sched.c has the table). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_redis_sched.h"
#include "state_sched_keys.h"

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

ens_err_t ens_state_redis_sched_inflight_list(void *ctx, const char *study,
                                              ens_state_sched_inflight_t **jobs, int *n,
                                              char *errstr, size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_INFLIGHT);
    ens_err_t err = ens_state_redis_array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_inflight_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *trial = str_of(rep->element[2 * i]);
        if (trial && strlen(trial) < ENS_ID_MAX &&
            ens_state_sched_inflight_parse(str_of(rep->element[2 * i + 1]), &v[k]))
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", trial);
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *jobs = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_inflight_get(void *ctx, const char *study, const char *trial,
                                             ens_state_sched_inflight_t *job, int *found,
                                             char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_INFLIGHT);
    ens_redis_reply_t *rep =
        ens_redis_command(R(ctx), errstr, errstr_size, "HGET %s %s", key, trial);
    if (!rep)
        return ENS_ERR_REDIS;
    if (ens_state_sched_inflight_parse(str_of(rep), job)) {
        snprintf(job->trial_id, sizeof job->trial_id, "%s", trial);
        *found = 1;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                               size_t errstr_size) {
    char key[256];
    KEY(key, study, K_INFLIGHT);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size, "HLEN %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_INTEGER)
        *n = (long)rep->integer;
    else
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "HLEN %s: unexpected reply", key);
    ens_redis_reply_free(rep);
    return err;
}

ens_err_t ens_state_redis_sched_dispatched_list(void *ctx, const char *study,
                                                ens_state_sched_dispatched_t **out, int *n,
                                                char *errstr, size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_DISPATCHED);
    ens_err_t err = ens_state_redis_array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_dispatched_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *trial = str_of(rep->element[2 * i]), *rec = str_of(rep->element[2 * i + 1]);
        long long seq = -1, sent = -1;
        int part = -1;
        if (!trial || strlen(trial) >= ENS_ID_MAX || !rec ||
            sscanf(rec, "%lld %d %lld", &seq, &part, &sent) < 2)
            continue;
        snprintf(v[k].trial_id, ENS_ID_MAX, "%s", trial);
        v[k].seq = seq;
        v[k].partition = part;
        v[k++].sent_ms = sent;
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *out = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_dispatched_put(void *ctx, const char *study,
                                               const ens_state_sched_dispatched_t *d, char *errstr,
                                               size_t errstr_size) {
    char key[256], rec[96];
    KEY(key, study, K_DISPATCHED);
    snprintf(rec, sizeof rec, "%lld %d %lld", d->seq, (int)d->partition, (long long)d->sent_ms);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s %s %s", key, d->trial_id, rec);
}

ens_err_t ens_state_redis_sched_dispatched_remove(void *ctx, const char *study, const char *trial,
                                                  char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_DISPATCHED);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HDEL %s %s", key, trial);
}

ens_err_t ens_state_redis_sched_outbox_list(void *ctx, const char *study,
                                            ens_state_sched_outbox_t **out, int *n, char *errstr,
                                            size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_OUTBOX);
    ens_err_t err = ens_state_redis_array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_outbox_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *seq = str_of(rep->element[2 * i]), *trial = str_of(rep->element[2 * i + 1]);
        if (!seq || !trial || strlen(trial) >= ENS_ID_MAX)
            continue;
        v[k].seq = strtoll(seq, NULL, 10);
        snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", trial);
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *out = v;
    *n = k;
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_outbox_put(void *ctx, const char *study, long long seq,
                                           const char *trial, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_OUTBOX);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s %lld %s", key, seq, trial);
}

ens_err_t ens_state_redis_sched_outbox_remove(void *ctx, const char *study, long long seq,
                                              char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_OUTBOX);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HDEL %s %lld", key, seq);
}

ens_err_t ens_state_redis_sched_trial_config(void *ctx, const char *study, const char *trial,
                                             char **config, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_TRIAL, trial);
    ens_redis_reply_t *rep =
        ens_redis_command(R(ctx), errstr, errstr_size, "HGET %s " F_CONFIG, key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (str_of(rep))
        err = (*config = strdup(rep->str)) ? ENS_OK : ENS_ERR_NOMEM;
    ens_redis_reply_free(rep);
    return err;
}

/* ---- the trainer's side: leases, attempts, job records ------------------------------------ */

/* Take the job's lease: ens:{s}:lease:<trial> = "<trainer> <model id>", expiring ttl after its
 * last renewal. Refused (the holder named) only when another trainer holds this very job: a
 * lease of the trial's earlier job, or this trainer's own, is taken over.
 * KEYS: lease; ARGV: value ttl_ms model trainer */
static const char LEASE_LUA[] = "local v = redis.call('GET', KEYS[1])\n"
                                "if v and v ~= ARGV[1] then\n"
                                "  local holder, mid = string.match(v, '^(%S+) (%S+)$')\n"
                                "  if mid == ARGV[3] and holder ~= ARGV[4] then return v end\n"
                                "end\n"
                                "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                "return false\n";

/* Renew the lease only while it is still this trainer's; take it again if it ran out and
 * nobody took it (Redis was away). 0 when another trainer holds it now.
 * KEYS: lease; ARGV: value ttl_ms */
static const char RENEW_LUA[] = "local v = redis.call('GET', KEYS[1])\n"
                                "if v and v ~= ARGV[1] then return 0 end\n"
                                "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                "return 1\n";

ens_err_t ens_state_redis_sched_lease_take(void *ctx, const char *study, const char *trial,
                                           const char *trainer, const char *model, int ttl_ms,
                                           char *holder, size_t holder_size, char *errstr,
                                           size_t errstr_size) {
    char key[256], val[160], ms[16];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    snprintf(ms, sizeof ms, "%d", ttl_ms);
    const char *argv[] = {"EVAL", LEASE_LUA, "1", key, val, ms, model, trainer};
    ens_redis_reply_t *rep = ens_redis_commandv(R(ctx), 8, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_STRING)
        snprintf(holder, holder_size, "%s", rep->str[0] ? rep->str : "?");
    ens_redis_reply_free(rep);
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_lease_renew(void *ctx, const char *study, const char *trial,
                                            const char *trainer, const char *model, int ttl_ms,
                                            int *lost, char *errstr, size_t errstr_size) {
    char key[256], val[160], ms[16];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    snprintf(ms, sizeof ms, "%d", ttl_ms);
    const char *argv[] = {"EVAL", RENEW_LUA, "1", key, val, ms};
    ens_redis_reply_t *rep = ens_redis_commandv(R(ctx), 6, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    *lost = rep->type == ENS_REPLY_INTEGER && rep->integer == 0;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_lease_drop(void *ctx, const char *study, const char *trial,
                                           char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_LEASE, trial);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
}

ens_err_t ens_state_redis_sched_lease_held(void *ctx, const char *study, const char *trial,
                                           int *held, char *errstr, size_t errstr_size) {
    char key[256];
    long long n = 0;
    KEY(key, study, K_LEASE, trial);
    ens_err_t err = ens_state_redis_int_cmd(R(ctx), &n, errstr, errstr_size, "EXISTS %s", key);
    *held = n > 0;
    return err;
}

ens_err_t ens_state_redis_sched_attempt_add(void *ctx, const char *study, const char *model,
                                            int delta, long long *attempt, char *errstr,
                                            size_t errstr_size) {
    char key[256];
    KEY(key, study, K_ATTEMPTS, model);
    if (delta == 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
    if (delta < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DECR %s", key);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size, "INCR %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    *attempt = rep->type == ENS_REPLY_INTEGER ? rep->integer : 1;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                                        char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, res->model_id);
    return ens_redis_exec(R(ctx), errstr, errstr_size,
                          "HSET %s " F_TRAINED_MODEL " %s " F_VAL_ACCURACY " %.6f " F_VAL_LOSS
                          " %.6f " F_TRAIN_SECONDS " %.3f " F_EPOCHS_DONE " %.17g " F_SPS " %.1f",
                          key, res->model_id, res->val_accuracy, res->val_loss, res->train_seconds,
                          res->epochs_done, res->train_samples_per_second);
}

ens_err_t ens_state_redis_sched_job_get(void *ctx, const char *study, const char *model,
                                        ens_trial_result_t *res, int *found, char *errstr,
                                        size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, model);
    ens_redis_reply_t *rep =
        ens_redis_command(R(ctx), errstr, errstr_size,
                          "HMGET %s " F_TRAINED_MODEL " " F_VAL_ACCURACY " " F_VAL_LOSS
                          " " F_TRAIN_SECONDS " " F_EPOCHS_DONE " " F_SPS,
                          key);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements == 6 && str_of(rep->element[0])) {
        *found = 1;
        snprintf(res->model_id, sizeof res->model_id, "%s", rep->element[0]->str);
        double *fields[] = {&res->val_accuracy, &res->val_loss, &res->train_seconds,
                            &res->epochs_done, &res->train_samples_per_second};
        for (int i = 0; i < 5; i++)
            *fields[i] = num_of(rep->element[i + 1]);
        res->status = ENS_TRIAL_OK;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

ens_err_t ens_state_redis_sched_job_progress(void *ctx, const char *study, const char *model,
                                             double epochs, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, model);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s " F_PROGRESS_EPOCHS " %.4g", key,
                          epochs);
}
