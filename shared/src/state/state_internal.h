/* state_internal.h - what the files of the state layer share (shared/src/state/ only): the
 * state's table and context for public functions outside state.c, the Redis and in-memory
 * implementations' contexts, and the in-memory table of entries, so that the parts of an
 * implementation may live in files of their own (state_studies_*.c) and call back into none
 * of the files whose tables name theirs. */
#ifndef ENSFLOW_STATE_INTERNAL_H
#define ENSFLOW_STATE_INTERNAL_H

#include <stddef.h>

#include "ensflow/state.h"

/* state.c: the implementation a state dispatches to, and its context. */
const struct ens_state_i *ens_state_iface(const ens_state_t *st);
void *ens_state_ctx(const ens_state_t *st);

/* The Redis implementation's ctx (state_redis.c makes it). Its parts reach the connection
 * through the inline accessor, so that they need not link against the file whose table
 * names theirs. */
typedef struct {
    ens_redis_t *r;
    ens_models_t *models;
} ens_state_redis_ctx_t;

static inline ens_redis_t *ens_state_redis_conn(void *ctx) {
    return ((ens_state_redis_ctx_t *)ctx)->r;
}

/* The in-memory implementation's ctx (state_mem.c makes and frees it): its table of entries,
 * the last plan version and the scheduler's records. */
typedef struct {
    struct ens_state_mem_entry *e; /* state_mem_base.c's */
    int n, cap;
    int64_t plan_version; /* 0: none given yet */
    void *sched;          /* scheduler and jobs: state_mem_kv.c's records (may be NULL) */
} ens_state_mem_ctx_t;

/* state_mem_base.c: the entries of a memory ctx, each named by a kind and up to two ids (a, b;
 * NULL for none). */
/* Set the entry to a copy of len bytes (replacing any value). */
ens_err_t ens_state_mem_put(void *ctx, const char *kind, const char *a, const char *b,
                            const void *val, size_t len);
/* The entry's value (not a copy: valid until the entry changes) and its length; NULL when
 * there is no such entry. */
const void *ens_state_mem_find(void *ctx, const char *kind, const char *a, const char *b,
                               size_t *len);
/* A malloc'd copy of the entry's value and its length, or ENS_ERR_NOTFOUND. */
ens_err_t ens_state_mem_get(void *ctx, const char *kind, const char *a, const char *b,
                            void **val, size_t *len);
void ens_state_mem_del(void *ctx, const char *kind, const char *a, const char *b);
/* The ids of the entries of kind, sorted: their a when a is NULL, else the b of those under a
 * (free with ens_state_strings_free). */
ens_err_t ens_state_mem_ids(void *ctx, const char *kind, const char *a, char ***ids, int *n);
/* Free every entry (the ctx itself stays). */
void ens_state_mem_clear(void *ctx);

/* The two implementations of state_studies.h's operations. */
extern const struct ens_state_studies_i ens_state_studies_redis;
extern const struct ens_state_studies_i ens_state_studies_mem;

/* scheduler and jobs: state_mem_kv.c keeps its records in the ctx's slot (NULL until first
 * used); state_mem.c frees them with the ctx. */
static inline void **ens_state_mem_sched_slot(void *ctx) {
    return &((ens_state_mem_ctx_t *)ctx)->sched;
}
void ens_state_mem_sched_free(void *sched);

/* scheduler and jobs: the two implementations of state_sched.h's operations */
extern const struct ens_state_sched_i ens_state_sched_redis;
extern const struct ens_state_sched_i ens_state_sched_mem;

#endif
