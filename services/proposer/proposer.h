/* proposer.h - studies and trial proposal: ASHA, asynchronous Hyperband, SHA or random search. */
#ifndef ENSFLOW_PROPOSER_H
#define ENSFLOW_PROPOSER_H

#include "ensflow/asha.h"
#include "dispatch.h"
#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/state.h"
#include "ensflow/store.h"

typedef struct {
    ens_redis_t *redis;
    ens_state_t *state;    /**< the trainers and their partitions (over redis; not owned) */
    ens_kafka_t *producer;
    int jobs_per_trainer;  /**< jobs kept in flight per live trainer (default 1) */
    int trainer_ttl_ms;    /**< a trainer silent this long is gone (default 15000) */
    int tick_ms;           /**< least time between two scheduling passes of the tick */
    int reissue_ms;        /**< a job in flight that no trainer holds goes out again this long
                                after it was sent (default 30000) */
    int64_t last_tick_ms;
} ens_proposer_t;

/**
 * @brief Handle StudyCreated (store the study and its scheduler, issue its first jobs),
 *        TrialResult (record it in its rung, issue what the freed trainer should do next)
 *        and StudyCommand (stop, extend). Idempotent: a redelivered event changes nothing
 *        that shows. An invalid study is answered with StudyRejected.
 */
ens_err_t ens_proposer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

/** @brief Periodic pass over the running studies: issue jobs to trainers that freed up,
 *         re-send jobs decided before a crash, end studies with nothing left to do. */
void ens_proposer_tick(void *ctx);

/**
 * @brief One scheduling pass for a study: decide and issue jobs while fewer than `slots`
 *        are in flight, then mark the study complete when nothing is left.
 * @param issued out (may be NULL): jobs issued
 */
ens_err_t ens_proposer_schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                                char *errstr, size_t errstr_size);

/** @brief Live trainers: those whose last heartbeat is newer than ttl_ms (0: 15000). */
ens_err_t ens_proposer_live_trainers(ens_state_t *st, int ttl_ms, int *n, char *errstr,
                                     size_t errstr_size);

/** @brief The study's scheduler settings as stored in ens:{s}:study. */
ens_err_t ens_proposer_params(ens_redis_t *r, const char *study, ens_asha_params_t *p,
                              char *errstr, size_t errstr_size);

/**
 * @brief The trainers' half of the dispatch state: the partitions each trainer heard of since
 *        now_ms - ttl_ms published (ttl_ms 0: 15000), no jobs counted yet (*out: caller frees
 *        with ens_dispatch_free). An unusable record is skipped with a warning.
 */
ens_err_t ens_proposer_dispatch_trainers(ens_state_t *st, int64_t now_ms, int ttl_ms,
                                         ens_dispatch_t **out, char *errstr,
                                         size_t errstr_size);

/**
 * @brief Where jobs can go now: the live trainers' published partitions of trial.jobs and the
 *        jobs in flight on each, over every running study and this one (*out: caller frees
 *        with ens_dispatch_free).
 */
ens_err_t ens_proposer_dispatch_state(ens_proposer_t *p, const char *study, ens_dispatch_t **out,
                                      char *errstr, size_t errstr_size);

#endif
