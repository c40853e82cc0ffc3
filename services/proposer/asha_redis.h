/* asha_redis.h - the scheduler state of a study in Redis: view, atomic decisions, results.
 *
 * Keys (all under the study's hash tag, ens:{s}:...):
 *   asha            hash: decisions, configs, epochs_issued, entered:<b>:<k>, done:<b>:<k>
 *   rung:<b>:<k>    zset: trials that reported OK at rung k of bracket b, score = val accuracy
 *   cand:<b>:<k>    zset: the same, less those already promoted (rungs below the top only)
 *   inflight        hash: trial -> "<seq> <b> <k> <from> <to>" of its job now issued
 *   outbox          hash: seq -> trial, decisions committed but not yet produced to Kafka
 *   decisions       hash: seq -> "<action> <trial> <b> <k> <from> <to>" (the decision log)
 *   trial:<t>       hash: config, status, bracket, rung, epochs_done, val_accuracy, model_id,
 *                   and per rung r<k>_acc, r<k>_model (the trial's history)
 * A decision is one Lua script that checks the decision counter, so a decision replayed after
 * a crash (or a command sent twice by a reconnect) is applied once.
 */
#ifndef ENSFLOW_ASHA_REDIS_H
#define ENSFLOW_ASHA_REDIS_H

#include "asha.h"
#include "ensflow/store.h"

/**
 * @brief Read the study's scheduler state into v (two pipelined round trips).
 * @param round_trips out (may be NULL): round trips used
 */
ens_err_t ens_asha_redis_view(ens_redis_t *r, const char *study, const ens_asha_params_t *p,
                              ens_asha_view_t *v, int *round_trips, char *errstr,
                              size_t errstr_size);

/**
 * @brief Apply decision d atomically (one EVAL) if d->seq is still the next decision number.
 * @param config_json the configuration of a NEW trial (ignored for promotions)
 * @param applied out: 1 when applied, 0 when the counter had moved on (already applied)
 */
ens_err_t ens_asha_redis_commit(ens_redis_t *r, const char *study, const ens_asha_decision_t *d,
                                const char *config_json, int *applied, char *errstr,
                                size_t errstr_size);

/**
 * @brief Record a trial's result for the job in flight (one EVAL). A result for no job in
 *        flight (a redelivery) changes nothing and gives *applied = 0.
 * @param m_top p->m: a rung b + k >= m is the top of its bracket and never promotes
 */
ens_err_t ens_asha_redis_result(ens_redis_t *r, const char *study, int m_top,
                                const char *trial_id, int ok, double score,
                                double epochs_done, const char *model_id, const char *error,
                                int *applied, char *errstr, size_t errstr_size);

#endif
