/* state_redis_sched.h - what the files of the Redis implementation of state_sched.h share
 * (state_redis_sched.c with its table, state_redis_asha.c, state_redis_jobs.c, and
 * state_redis_base.c below them). Not public. */
#ifndef ENSFLOW_STATE_REDIS_SCHED_H
#define ENSFLOW_STATE_REDIS_SCHED_H

#include <stddef.h>
#include <stdlib.h>

#include "ensflow/state_sched.h"
#include "state_internal.h"

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                       \
    do {                                                                                           \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                         \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                               \
                               "study id \"%s\" makes no key", study);                             \
    } while (0)

#define R(ctx) ens_state_redis_conn(ctx)

/* Small readers of replies. */

static inline const char *str_of(const ens_redis_reply_t *e) {
    return e && e->type == ENS_REPLY_STRING ? e->str : NULL;
}

static inline double num_of(const ens_redis_reply_t *e) {
    const char *s = str_of(e);
    return s ? strtod(s, NULL) : 0;
}

static inline long long int_of(const ens_redis_reply_t *e) {
    if (e && e->type == ENS_REPLY_INTEGER)
        return e->integer;
    const char *s = str_of(e);
    return s ? strtoll(s, NULL, 10) : 0;
}

/* state_redis_base.c: commands of a given answer */

/** @brief A command whose answer must be an array (HGETALL, HMGET, SMEMBERS...): *out, which
 *         the caller frees; ENS_ERR_REDIS for any other answer. */
ens_err_t ens_state_redis_array_cmd(ens_redis_t *r, ens_redis_reply_t **out, char *errstr,
                                    size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** @brief An integer-answering command; any other answer reads 0 (missing counts as none). */
ens_err_t ens_state_redis_int_cmd(ens_redis_t *r, long long *out, char *errstr, size_t errstr_size,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* state_redis_asha.c: the ASHA steps */
ens_err_t ens_state_redis_sched_asha_view(void *ctx, const char *study, const ens_asha_params_t *p,
                                          ens_asha_view_t *v, int *round_trips, char *errstr,
                                          size_t errstr_size);
ens_err_t ens_state_redis_sched_asha_commit(void *ctx, const char *study,
                                            const ens_asha_params_t *p,
                                            const ens_asha_decision_t *d, int64_t base_version,
                                            const char *config_json, int *applied,
                                            ens_asha_view_t *next, char *errstr,
                                            size_t errstr_size);
ens_err_t ens_state_redis_sched_asha_result(void *ctx, const char *study,
                                            const ens_asha_params_t *p, const char *trial_id,
                                            int ok, double score, double epochs_done,
                                            const char *model_id, const char *error, int *applied,
                                            ens_asha_view_t *next, char *errstr,
                                            size_t errstr_size);

/* state_redis_jobs.c: jobs in flight, dispatched and in the outbox, and the trainer's side */
ens_err_t ens_state_redis_sched_inflight_list(void *ctx, const char *study,
                                              ens_state_sched_inflight_t **jobs, int *n,
                                              char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_inflight_get(void *ctx, const char *study, const char *trial,
                                             ens_state_sched_inflight_t *job, int *found,
                                             char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                               size_t errstr_size);
ens_err_t ens_state_redis_sched_dispatched_list(void *ctx, const char *study,
                                                ens_state_sched_dispatched_t **out, int *n,
                                                char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_dispatched_put(void *ctx, const char *study,
                                               const ens_state_sched_dispatched_t *d, char *errstr,
                                               size_t errstr_size);
ens_err_t ens_state_redis_sched_dispatched_remove(void *ctx, const char *study, const char *trial,
                                                  char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_outbox_list(void *ctx, const char *study,
                                            ens_state_sched_outbox_t **out, int *n, char *errstr,
                                            size_t errstr_size);
ens_err_t ens_state_redis_sched_outbox_put(void *ctx, const char *study, long long seq,
                                           const char *trial, char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_outbox_remove(void *ctx, const char *study, long long seq,
                                              char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_trial_config(void *ctx, const char *study, const char *trial,
                                             char **config, char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_lease_take(void *ctx, const char *study, const char *trial,
                                           const char *trainer, const char *model, int ttl_ms,
                                           char *holder, size_t holder_size, char *errstr,
                                           size_t errstr_size);
ens_err_t ens_state_redis_sched_lease_renew(void *ctx, const char *study, const char *trial,
                                            const char *trainer, const char *model, int ttl_ms,
                                            int *lost, char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_lease_drop(void *ctx, const char *study, const char *trial,
                                           char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_lease_held(void *ctx, const char *study, const char *trial,
                                           int *held, char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_attempt_add(void *ctx, const char *study, const char *model,
                                            int delta, long long *attempt, char *errstr,
                                            size_t errstr_size);
ens_err_t ens_state_redis_sched_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                                        char *errstr, size_t errstr_size);
ens_err_t ens_state_redis_sched_job_get(void *ctx, const char *study, const char *model,
                                        ens_trial_result_t *res, int *found, char *errstr,
                                        size_t errstr_size);
ens_err_t ens_state_redis_sched_job_progress(void *ctx, const char *study, const char *model,
                                             double epochs, char *errstr, size_t errstr_size);

#endif
