/* state_mem_kv.h - the in-memory scheduler records' store (state_mem_kv.c): Redis-like
 * hashes, sorted sets, sets and strings under the keys of state_sched_keys.h, one store a
 * memory state, in its ctx's slot; and what state_mem_sched.c and state_mem_jobs.c, the
 * two halves of the in-memory implementation of state_sched.h, share. Not public. */
#ifndef ENSFLOW_STATE_MEM_KV_H
#define ENSFLOW_STATE_MEM_KV_H

#include <stddef.h>

#include "ensflow/state_sched.h"

/* One field of a hash, member of a set or sorted set (with its score), or a string's value. */
typedef struct {
    char *field;
    char *val;
    double score;
} ens_memkv_item_t;

typedef enum { ENS_MEMKV_HASH = 1, ENS_MEMKV_ZSET, ENS_MEMKV_SET, ENS_MEMKV_STR } ens_memkv_type_t;

typedef struct {
    char *key;
    ens_memkv_type_t type;
    ens_memkv_item_t *it;
    int n, cap;
} ens_memkv_obj_t;

/* The records of one in-memory state (its slot, ens_state_mem_sched_slot). */
typedef struct {
    ens_memkv_obj_t *o;
    int n, cap;
} ens_memkv_t;

/** @brief The store of a memory state's ctx, made on first use (NULL: out of memory). */
ens_memkv_t *ens_memkv_of(void *ctx);

/** @brief The object at key; made (empty, of type) when create and absent. NULL when absent,
 *         of another type, or out of memory. */
ens_memkv_obj_t *ens_memkv_obj(ens_memkv_t *s, const char *key, ens_memkv_type_t type, int create);
/** @brief Remove the object at key. Missing is not an error. */
void ens_memkv_del(ens_memkv_t *s, const char *key);
/** @brief The item of field in o (NULL: none, or o NULL). */
ens_memkv_item_t *ens_memkv_item(ens_memkv_obj_t *o, const char *field);
/** @brief Set field of o to val (NULL: no value) and score; ENS_ERR_NOMEM (also for o NULL). */
ens_err_t ens_memkv_put(ens_memkv_obj_t *o, const char *field, const char *val, double score);
/** @brief Remove field from the object at key (an empty object goes too); 1 when it was there. */
int ens_memkv_remove(ens_memkv_t *s, const char *key, ens_memkv_type_t type, const char *field);
/** @brief HGET, HSET, HSET of a formatted value, HINCRBYFLOAT (as_int 0) or HINCRBY (1). */
const char *ens_memkv_hget(ens_memkv_t *s, const char *key, const char *field);
ens_err_t ens_memkv_hset(ens_memkv_t *s, const char *key, const char *field, const char *val);
ens_err_t ens_memkv_hsetf(ens_memkv_t *s, const char *key, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
ens_err_t ens_memkv_hincr(ens_memkv_t *s, const char *key, const char *field, double by, int as_int,
                          double *after);
/** @brief ZADD, SADD; the size of the object at key (0 when absent). */
ens_err_t ens_memkv_zadd(ens_memkv_t *s, const char *key, const char *member, double score);
ens_err_t ens_memkv_sadd(ens_memkv_t *s, const char *key, const char *member);
int ens_memkv_count(ens_memkv_t *s, const char *key, ens_memkv_type_t type);
/** @brief The members of a sorted set, highest first as ZREVRANGE orders them (*out malloc'd
 *         pointers into it, NULL when empty; valid until it changes). */
ens_err_t ens_memkv_zrev(ens_memkv_t *s, const char *key, ens_memkv_item_t ***out, int *n);

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                       \
    do {                                                                                           \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                         \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                               \
                               "study id \"%s\" makes no key", study);                             \
    } while (0)

/* The scheduler records of ctx into s, or ENS_ERR_NOMEM from the calling function. */
#define SCHED(s)                                                                                   \
    ens_memkv_t *s = ens_memkv_of(ctx);                                                            \
    if (!s)                                                                                        \
    return ENS_ERR_NOMEM

/* state_mem_jobs.c: the operations on jobs, progress and the trainer's side, for
 * state_mem_sched.c's table (state_sched.h's struct ens_state_sched_i says what each does) */
ens_err_t ens_state_mem_sched_inflight_list(void *ctx, const char *study,
                                            ens_state_sched_inflight_t **jobs, int *n, char *errstr,
                                            size_t errstr_size);
ens_err_t ens_state_mem_sched_inflight_get(void *ctx, const char *study, const char *trial,
                                           ens_state_sched_inflight_t *job, int *found,
                                           char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                             size_t errstr_size);
ens_err_t ens_state_mem_sched_dispatched_list(void *ctx, const char *study,
                                              ens_state_sched_dispatched_t **out, int *n,
                                              char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_dispatched_put(void *ctx, const char *study,
                                             const ens_state_sched_dispatched_t *d, char *errstr,
                                             size_t errstr_size);
ens_err_t ens_state_mem_sched_dispatched_remove(void *ctx, const char *study, const char *trial,
                                                char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_outbox_list(void *ctx, const char *study,
                                          ens_state_sched_outbox_t **out, int *n, char *errstr,
                                          size_t errstr_size);
ens_err_t ens_state_mem_sched_outbox_put(void *ctx, const char *study, long long seq,
                                         const char *trial, char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_outbox_remove(void *ctx, const char *study, long long seq,
                                            char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_trial_config(void *ctx, const char *study, const char *trial,
                                           char **config, char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_speed_put(void *ctx, const char *study, const char *trial,
                                        double seconds_per_epoch, char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_speed_list(void *ctx, const char *study, double **spe, int *n,
                                         char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_results_get(void *ctx, const char *study,
                                          ens_state_sched_results_t *out, char *errstr,
                                          size_t errstr_size);
ens_err_t ens_state_mem_sched_evalwatch_put(void *ctx, const char *study, long long cnt,
                                            int64_t since_ms, long long rounds, char *errstr,
                                            size_t errstr_size);
ens_err_t ens_state_mem_sched_counts(void *ctx, const char *study, ens_state_sched_counts_t *out,
                                     char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_rung_get(void *ctx, const char *study, int bracket, int rung,
                                       ens_state_sched_rung_t *out, char *errstr,
                                       size_t errstr_size);
ens_err_t ens_state_mem_sched_lease_take(void *ctx, const char *study, const char *trial,
                                         const char *trainer, const char *model, int ttl_ms,
                                         char *holder, size_t holder_size, char *errstr,
                                         size_t errstr_size);
ens_err_t ens_state_mem_sched_lease_renew(void *ctx, const char *study, const char *trial,
                                          const char *trainer, const char *model, int ttl_ms,
                                          int *lost, char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_lease_drop(void *ctx, const char *study, const char *trial,
                                         char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_lease_held(void *ctx, const char *study, const char *trial, int *held,
                                         char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_attempt_add(void *ctx, const char *study, const char *model,
                                          int delta, long long *attempt, char *errstr,
                                          size_t errstr_size);
ens_err_t ens_state_mem_sched_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                                      char *errstr, size_t errstr_size);
ens_err_t ens_state_mem_sched_job_get(void *ctx, const char *study, const char *model,
                                      ens_trial_result_t *res, int *found, char *errstr,
                                      size_t errstr_size);
ens_err_t ens_state_mem_sched_job_progress(void *ctx, const char *study, const char *model,
                                           double epochs, char *errstr, size_t errstr_size);

#endif
