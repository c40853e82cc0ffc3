/* proposer.h - studies and trial proposal: ASHA, asynchronous Hyperband, SHA or random search. */
#ifndef ENSFLOW_PROPOSER_H
#define ENSFLOW_PROPOSER_H

#include "dispatch.h"
#include "ensflow/asha.h"
#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/state.h"
#include "ensflow/state_sched.h"

typedef struct {
    ens_state_t *state; /**< studies, scheduler records, trainers (not owned) */
    ens_kafka_t *producer;
    int jobs_per_trainer; /**< jobs kept in flight per live trainer (default 1) */
    int trainer_ttl_ms;   /**< a trainer silent this long is gone (default 15000) */
    int tick_ms;          /**< least time between two scheduling passes of the tick */
    int reissue_ms;       /**< a job in flight that no trainer holds goes out again this long
                               after it was sent (default 30000) */
    int64_t last_tick_ms;
} ens_proposer_t;

/* ---- proposer.c: the handler and the tick ---------------------------------------------- */

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

/* ---- schedule.c: one scheduling pass ----------------------------------------------------- */

/**
 * @brief One scheduling pass for a study: decide and issue jobs while fewer than `slots`
 *        are in flight, then mark the study complete when nothing is left.
 * @param issued out (may be NULL): jobs issued
 */
ens_err_t ens_proposer_schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                                char *errstr, size_t errstr_size);

/**
 * @brief ens_proposer_schedule from the study's scheduler state view when the caller has it
 *        (NULL: read it): one round trip less after a result, whose step answered with it.
 */
ens_err_t ens_proposer_schedule_from(ens_proposer_t *p, const char *study, int slots, int *issued,
                                     const ens_asha_view_t *view, char *errstr, size_t errstr_size);

/**
 * @brief The scheduler settings of a study's record.
 * @return ENS_OK, ENS_ERR_NOTFOUND (no scheduler: not a study the proposer accepted),
 *         ENS_ERR_INVALID (stored settings unusable).
 */
ens_err_t ens_proposer_params(const ens_state_sched_study_t *s, ens_asha_params_t *ap, char *errstr,
                              size_t errstr_size);

/* ---- dispatch_state.c: trainers and the jobs they have ---------------------------------- */

/** @brief Live trainers: those whose last heartbeat is newer than ttl_ms (0: 15000). */
ens_err_t ens_proposer_live_trainers(ens_state_t *st, int ttl_ms, int *n, char *errstr,
                                     size_t errstr_size);

/**
 * @brief The trainers' half of the dispatch state: the partitions each trainer heard of since
 *        now_ms - ttl_ms published (ttl_ms 0: 15000), no jobs counted yet (*out: caller frees
 *        with ens_dispatch_free). An unusable record is skipped with a warning.
 */
ens_err_t ens_proposer_dispatch_trainers(ens_state_t *st, int64_t now_ms, int ttl_ms,
                                         ens_dispatch_t **out, char *errstr, size_t errstr_size);

/**
 * @brief Where jobs can go now: the live trainers' published partitions of trial.jobs and the
 *        jobs in flight on each, over every running study and this one (*out: caller frees
 *        with ens_dispatch_free).
 */
ens_err_t ens_proposer_dispatch_state(ens_proposer_t *p, const char *study, ens_dispatch_t **out,
                                      char *errstr, size_t errstr_size);

#endif
