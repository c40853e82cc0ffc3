/* proposer.c - turns StudyCreated into trial jobs and keeps the trial table in Redis. */
#include "proposer.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "ensflow/space.h"

#define REDIS_DO(r, errstr, size, ...)                                                          \
    do {                                                                                        \
        ens_err_t rerr_ = ens_redis_exec((r), (errstr), (size), __VA_ARGS__);                   \
        if (rerr_)                                                                              \
            return rerr_;                                                                       \
    } while (0)

static ens_err_t on_study_created(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                  size_t size) {
    const ens_study_created_t *s = &ev->u.study_created;
    char key[256], tkey[256];
    ens_err_t err = ens_space_validate(s->search_space_json, errstr, size);
    if (err)
        return err; /* dead-lettered with the reason; the CLI validates before sending */
    if (s->n_trials < 1 || s->n_trials > 100000 || !(s->epochs > 0) || s->epochs > 1000 ||
        !(s->val_fraction > 0 && s->val_fraction < 1))
        return ens_err_set(errstr, size, ENS_ERR_INVALID,
                           "study %s: n_trials, epochs or val_fraction out of range", s->study_id);
    ens_key(key, sizeof key, s->study_id, "study");
    redisReply *rep = ens_redis_command(p->redis, errstr, size, "HGET %s jobs_issued", key);
    if (!rep)
        return ENS_ERR_REDIS;
    int issued = rep->type == REDIS_REPLY_STRING;
    ens_redis_reply_free(rep);
    if (issued) {
        ENS_INFO("study=%s msg=\"study already set up, nothing to do\"", s->study_id);
        return ENS_OK;
    }
    char n_trials[16], epochs[32], seed[32], valf[32], topk[16], created[32];
    snprintf(n_trials, sizeof n_trials, "%d", (int)s->n_trials);
    snprintf(epochs, sizeof epochs, "%.17g", s->epochs);
    snprintf(seed, sizeof seed, "%lld", (long long)s->seed);
    snprintf(valf, sizeof valf, "%.17g", s->val_fraction);
    snprintf(topk, sizeof topk, "%d", (int)s->top_k);
    snprintf(created, sizeof created, "%lld", (long long)ev->occurred_at);
    REDIS_DO(p->redis, errstr, size,
             "HSET %s study_id %s dataset %s search_space %s n_trials %s epochs %s seed %s "
             "val_fraction %s top_k %s created_ms %s status running",
             key, s->study_id, s->dataset, s->search_space_json ? s->search_space_json : "{}",
             n_trials, epochs, seed, valf, topk, created);
    REDIS_DO(p->redis, errstr, size, "ZADD ens:studies NX %s %s", created, s->study_id);
    for (int32_t i = 0; i < s->n_trials; i++) {
        ens_event_t job;
        ens_event_init(&job, ENS_EV_TRIAL_JOB);
        ens_trial_job_t *j = &job.u.trial_job;
        snprintf(j->study_id, sizeof j->study_id, "%s", s->study_id);
        snprintf(j->trial_id, sizeof j->trial_id, "t-%04d", (int)i);
        err = ens_space_sample(s->search_space_json, (uint64_t)s->seed, i, &j->config_json,
                               errstr, size);
        j->dataset = strdup(s->dataset);
        j->val_fraction = s->val_fraction;
        j->seed = s->seed;
        j->epochs = s->epochs;
        j->attempt = 1;
        if (!err && !j->dataset)
            err = ENS_ERR_NOMEM;
        if (!err) {
            ens_key(tkey, sizeof tkey, s->study_id, "trial:%s", j->trial_id);
            err = ens_redis_exec(p->redis, errstr, size,
                                 "HSET %s config %s status queued epochs %s", tkey,
                                 j->config_json, epochs);
        }
        /* keyed by trial: jobs spread over the partitions, so every trainer gets work */
        if (!err)
            err = ens_kafka_produce_event(p->producer, ENS_TOPIC_TRIAL_JOBS, j->trial_id, &job,
                                          ev->event_id, errstr, size);
        ens_event_free(&job);
        if (err)
            return err;
    }
    /* Only once the jobs are delivered is the study marked as set up: a crash before this
     * point re-issues the same jobs (same seed, same ids), which trainers deduplicate. */
    if ((err = ens_kafka_flush(p->producer, 30000, errstr, size)) != ENS_OK)
        return err;
    REDIS_DO(p->redis, errstr, size, "HSET %s jobs_issued 1", key);
    ENS_INFO("study=%s msg=\"study created\" trials=%d epochs=%g dataset=%s", s->study_id,
             (int)s->n_trials, s->epochs, s->dataset);
    return ENS_OK;
}

static ens_err_t on_trial_result(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                 size_t size) {
    const ens_trial_result_t *t = &ev->u.trial_result;
    char key[256], tkey[256], done[256], failed[256], acc[32], ep[32];
    ens_key(key, sizeof key, t->study_id, "study");
    ens_key(tkey, sizeof tkey, t->study_id, "trial:%s", t->trial_id);
    ens_key(done, sizeof done, t->study_id, "trials:done");
    ens_key(failed, sizeof failed, t->study_id, "trials:failed");
    snprintf(acc, sizeof acc, "%.6f", t->val_accuracy);
    snprintf(ep, sizeof ep, "%g", t->epochs_done);
    if (t->status == ENS_TRIAL_OK) {
        REDIS_DO(p->redis, errstr, size,
                 "HSET %s status done val_accuracy %s epochs_done %s model_id %s", tkey, acc, ep,
                 t->model_id);
        REDIS_DO(p->redis, errstr, size, "SADD %s %s", done, t->trial_id);
    } else {
        REDIS_DO(p->redis, errstr, size, "HSET %s status failed error %s", tkey,
                 t->error ? t->error : "unknown");
        REDIS_DO(p->redis, errstr, size, "SADD %s %s", failed, t->trial_id);
    }
    /* complete when every trial has an outcome (sets make redelivery harmless) */
    redisReply *rep = ens_redis_command(p->redis, errstr, size, "HGET %s n_trials", key);
    if (!rep)
        return ENS_ERR_REDIS;
    long n_trials = rep->type == REDIS_REPLY_STRING ? strtol(rep->str, NULL, 10) : 0;
    ens_redis_reply_free(rep);
    long n_done = 0;
    const char *sets[2] = {done, failed};
    for (int i = 0; i < 2; i++) {
        if (!(rep = ens_redis_command(p->redis, errstr, size, "SCARD %s", sets[i])))
            return ENS_ERR_REDIS;
        n_done += rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : 0;
        ens_redis_reply_free(rep);
    }
    ENS_INFO("study=%s trial=%s msg=\"trial finished\" status=%s val_acc=%.4f done=%ld/%ld",
             t->study_id, t->trial_id, t->status == ENS_TRIAL_OK ? "ok" : "failed",
             t->val_accuracy, n_done, n_trials);
    if (n_trials > 0 && n_done >= n_trials)
        REDIS_DO(p->redis, errstr, size, "HSET %s status complete", key);
    return ENS_OK;
}

ens_err_t ens_proposer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size) {
    ens_proposer_t *p = ctx;
    switch (ev->type) {
    case ENS_EV_STUDY_CREATED: return on_study_created(p, ev, errstr, errstr_size);
    case ENS_EV_TRIAL_RESULT: return on_trial_result(p, ev, errstr, errstr_size);
    default:
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "proposer does not take %s",
                           ens_event_type_name(ev->type));
    }
}
