/* asha_redis.h - the scheduler state of a study in Redis: view, atomic decisions, results.
 *
 * Keys (all under the study's hash tag, ens:{s}:...):
 *   asha            hash: decisions, configs, epochs_issued, version, entered:<b>:<k>,
 *                   done:<b>:<k>
 *   rung:<b>:<k>    zset: trials that reported OK at rung k of bracket b, score = val accuracy
 *   cand:<b>:<k>    zset: the same, less those already promoted (rungs below the top only)
 *   inflight        hash: trial -> "<seq> <b> <k> <from> <to>" of its job now issued
 *   outbox          hash: seq -> trial, decisions committed but not yet produced to Kafka
 *   decisions       hash: seq -> "<action> <trial> <b> <k> <from> <to>" (the decision log)
 *   trial:<t>       hash: config, status, bracket, rung, epochs_done, val_accuracy, model_id,
 *                   and per rung r<k>_acc, r<k>_model (the trial's history)
 *
 * One round trip per decision. Every step is one Lua script (loaded once with SCRIPT LOAD, run
 * by EVALSHA, loaded again on NOSCRIPT) that applies its change and answers with the state
 * after it (the view the next decision needs). A commit is a compare-and-set: it applies the
 * decision only if the decision counter is d->seq and the state version is still the one of
 * the view the decision was made from; otherwise it applies nothing and answers with the
 * current view, from which the caller decides again. So a decision replayed after a crash
 * (or a command sent twice by a reconnect) is applied once, and every applied decision is the
 * one the pure core makes from the state it is applied to.
 */
#ifndef ENSFLOW_ASHA_REDIS_H
#define ENSFLOW_ASHA_REDIS_H

#include "ensflow/asha.h"
#include "ensflow/store.h"

/** A job in flight, as the inflight hash holds it: "<seq> <b> <k> <from> <to>". */
typedef struct {
    long long seq;
    int bracket, rung;
    double from, to; /**< epochs */
} ens_asha_inflight_t;

/** @brief Parse an inflight record; 1 when rec is one (into *out), else 0. */
int ens_asha_inflight_parse(const char *rec, ens_asha_inflight_t *out);

/**
 * @brief The inflight record of trial in an HGETALL reply of the inflight hash (name, value,
 *        name, value...); 1 when it is there and parses, else 0.
 */
int ens_asha_inflight_find(const ens_redis_reply_t *all, const char *trial,
                           ens_asha_inflight_t *out);

/**
 * @brief Read the study's scheduler state into v (one EVALSHA).
 * @param round_trips out (may be NULL): round trips used (1; 2 when the script had to be
 *        loaded again)
 */
ens_err_t ens_asha_redis_view(ens_redis_t *r, const char *study, const ens_asha_params_t *p,
                              ens_asha_view_t *v, int *round_trips, char *errstr,
                              size_t errstr_size);

/**
 * @brief Apply decision d atomically (one EVALSHA) if d->seq is still the next decision number
 *        and the state version is still base_version.
 * @param base_version the version of the view d was decided from; < 0: not checked
 * @param config_json the configuration of a NEW trial (ignored for promotions)
 * @param applied out: 1 when applied, 0 when the state had moved on (already applied, or a
 *        result came in since the view): then decide again from *next
 * @param next out (may be NULL): the state after the script, ready for the next decision
 */
ens_err_t ens_asha_redis_commit(ens_redis_t *r, const char *study, const ens_asha_params_t *p,
                                const ens_asha_decision_t *d, int64_t base_version,
                                const char *config_json, int *applied, ens_asha_view_t *next,
                                char *errstr, size_t errstr_size);

/**
 * @brief Record a trial's result for the job in flight (one EVALSHA). A result for no job in
 *        flight (a redelivery) changes nothing and gives *applied = 0.
 * @param p the study's settings: a rung b + k >= p->m is the top of its bracket and never
 *        promotes
 * @param next out (may be NULL): the state after the result, ready for the next decision
 */
ens_err_t ens_asha_redis_result(ens_redis_t *r, const char *study, const ens_asha_params_t *p,
                                const char *trial_id, int ok, double score,
                                double epochs_done, const char *model_id, const char *error,
                                int *applied, ens_asha_view_t *next, char *errstr,
                                size_t errstr_size);

#endif
