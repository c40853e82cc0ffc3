/* state_sched.h - the scheduler's and the jobs' state: studies as the proposer keeps them, the
 * ASHA records and their atomic steps, jobs in flight, dispatched and waiting in the outbox,
 * leases, attempts, job records and speeds. Part of the state layer (state.h): the same
 * ens_state_t, implemented in Redis (state_redis_sched.c, _asha.c, _jobs.c) and in memory
 * (state_mem_sched.c, _jobs.c, over state_mem_kv.c). */
#ifndef ENSFLOW_STATE_SCHED_H
#define ENSFLOW_STATE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/asha.h"
#include "ensflow/err.h"
#include "ensflow/events.h"
#include "ensflow/state.h"

/*
 * Where each thing lives in Redis (state_sched_keys.h names every key and field below, and
 * only the state layer uses those names). {s} is the study id as a Redis Cluster hash tag,
 * <t> a trial id, <m> a model id (ens_model_id), <b>:<k> a bracket and a rung.
 *
 *   ens:studies                zset: study -> created_ms, every study the proposer accepted
 *   ens:studies:active         set: the running studies (the proposer's tick goes over them)
 *   ens:studies:settling       set: ended studies whose models may not all have reached the
 *                              library yet (results are announced again, recover.h)
 *   ens:studies:compact        set (state_studies.h's): the proposer adds a study that ended
 *                              and takes out one that is extended; trainers compact its files
 *   ens:{s}:study              hash: study_id dataset search_space n_trials epochs seed
 *                              val_fraction top_k created_ms status scheduler eta min_epochs
 *                              s_max max_epochs_budget deadline_ms; status and error only for a
 *                              rejected study. status: running stopping stopped complete
 *                              rejected. (state.h reads dataset ... deadline_ms of it too.)
 *   ens:{s}:seen:cmd:<event>   a StudyCommand applied (store.h's first-time mark, a week)
 *   ens:{s}:asha               hash: decisions configs epochs_issued version entered:<b>:<k>
 *                              done:<b>:<k>
 *   ens:{s}:rung:<b>:<k>       zset: trials that reported OK at the rung -> val accuracy
 *   ens:{s}:cand:<b>:<k>       zset: the same less the promoted ones (rungs below the top)
 *   ens:{s}:inflight           hash: trial -> "<seq> <b> <k> <from> <to>", its job issued now
 *   ens:{s}:outbox             hash: seq -> trial: decisions committed, jobs not yet produced
 *   ens:{s}:decisions          hash: seq -> "<action> <trial> <b> <k> <from> <to>" (the log)
 *   ens:{s}:dispatched         hash: trial -> "<seq> <partition> <sent_ms>" (an older proposer
 *                              wrote "<seq> <partition>"), the job's partition of trial.jobs
 *                              (-1: sent by key hash)
 *   ens:{s}:trial:<t>          hash: config bracket status rung target_epochs epochs_done
 *                              val_accuracy model_id error, r<k>_acc r<k>_model r<k>_error
 *   ens:{s}:trials:done        set of trials with an OK result; trials:failed the others
 *   ens:{s}:models             set: models whose OK result the proposer accepted
 *   ens:{s}:speed              zset: trial -> seconds per epoch of its last job
 *   ens:{s}:evalwatch          hash: count since_ms rounds (recover.h: results announced again)
 *   ens:{s}:lease:<t>          string "<trainer> <model>", expiring: a trainer holds the job
 *   ens:{s}:attempts:<m>       counter: how often the job that trains m has started
 *   ens:{s}:job:<m>            hash: trained_model val_accuracy val_loss train_seconds
 *                              epochs_done sps progress_epochs, the job's outcome
 *   ens:{s}:library            (state.h) counted here for a study's progress
 *
 * Every ASHA step (view, commit, result) is one Lua script in Redis (loaded once, run by
 * EVALSHA, loaded again on NOSCRIPT) that applies its change and answers with the state after
 * it, the view the next decision needs. A commit is a compare-and-set: applied only if the
 * decision counter is d->seq and the state version is the one of the view the decision came
 * from; otherwise nothing changes and the current view comes back. So a decision replayed
 * after a crash (or a command sent twice by a reconnect) is applied once.
 */

/** A study as the proposer keeps it; absent fields read "" or 0. */
typedef struct {
    char study_id[ENS_ID_MAX];
    char status[32];    /**< "running", "stopping", "stopped", "complete", "rejected" */
    char scheduler[16]; /**< "random", "sha", "asha", "hyperband"; "" when the study was
                             never accepted (absent or only rejected) */
    char *dataset;      /**< malloc'd by ens_state_sched_study_get (NULL when absent;
                             ens_state_sched_study_clear frees it); create: not owned */
    char *search_space; /**< JSON; malloc'd by ens_state_sched_study_get (NULL when absent,
                             ens_state_sched_study_clear frees it); create: not owned, NULL
                             writes "{}" */
    int32_t n_trials, top_k, s_max;
    double epochs; /**< the top rung */
    double val_fraction, eta, min_epochs, max_epochs_budget;
    int64_t seed, created_ms;
    int64_t deadline_ms; /**< 0: no wall-clock budget */
} ens_state_sched_study_t;

/** A job in flight, as the inflight hash holds it: "<seq> <b> <k> <from> <to>". */
typedef struct {
    char trial_id[ENS_ID_MAX];
    long long seq; /**< the decision that issued it */
    int bracket, rung;
    double from, to; /**< epochs */
} ens_state_sched_inflight_t;

/** Where a job in flight was sent. */
typedef struct {
    char trial_id[ENS_ID_MAX];
    long long seq;
    int32_t partition; /**< of trial.jobs; -1 (ENS_DISPATCH_BY_KEY): by key hash */
    int64_t sent_ms;   /**< -1: not recorded (sent by a proposer before this one) */
} ens_state_sched_dispatched_t;

/** A committed decision whose job is not yet produced. */
typedef struct {
    long long seq;
    char trial_id[ENS_ID_MAX];
} ens_state_sched_outbox_t;

/** What ens_state_sched_results_get reads: accepted models and the library, and the watch. */
typedef struct {
    char **missing; /**< accepted models not in the library (ens_state_sched_results_clear) */
    int n_missing;
    long long library, models; /**< how many models are in the library, and accepted */
    int watched;               /**< 1 when the watch holds a count */
    long long count;           /**< the counts last seen (-1 when not watched) */
    int64_t since_ms;          /**< when they last changed (-1 when absent) */
    long long rounds;          /**< announcement rounds so far (0 when absent) */
} ens_state_sched_results_t;

/** A study's progress in counts (ens_state_sched_counts). */
typedef struct {
    long trials_done, trials_failed, library, models, inflight, configs;
    double epochs_issued;
} ens_state_sched_counts_t;

/** One rung's figures (ens_state_sched_rung_get). */
typedef struct {
    long n;              /**< OK results */
    long entered, done;  /**< jobs issued to it, and reported */
    double best, median; /**< val accuracy; NAN when n is 0 */
} ens_state_sched_rung_t;

/**
 * The operations of an implementation (struct ens_state_i's member sched), each taking the
 * implementation's ctx. All are required. Arguments are checked by the public functions;
 * lists are malloc'd arrays the caller frees.
 */
struct ens_state_sched_i {
    ens_err_t (*study_create)(void *ctx, const ens_state_sched_study_t *s, int *created,
                              char *errstr, size_t errstr_size);
    ens_err_t (*study_get)(void *ctx, const char *study, ens_state_sched_study_t *out, char *errstr,
                           size_t errstr_size);
    ens_err_t (*study_status_put)(void *ctx, const char *study, const char *status,
                                  const char *error, char *errstr, size_t errstr_size);
    ens_err_t (*study_extend)(void *ctx, const char *study, int32_t add_trials, double add_epochs,
                              int64_t deadline_ms, char *errstr, size_t errstr_size);
    ens_err_t (*study_end)(void *ctx, const char *study, const char *final_status, char *errstr,
                           size_t errstr_size);
    ens_err_t (*command_first)(void *ctx, const char *study, const char *event_id, int *first,
                               char *errstr, size_t errstr_size);
    /** which: 0 the active studies, 1 the settling ones */
    ens_err_t (*studies_list)(void *ctx, int which, char ***studies, int *n, char *errstr,
                              size_t errstr_size);
    ens_err_t (*studies_has)(void *ctx, int which, const char *study, int *has, char *errstr,
                             size_t errstr_size);
    ens_err_t (*studies_remove)(void *ctx, int which, const char *study, char *errstr,
                                size_t errstr_size);

    ens_err_t (*asha_view)(void *ctx, const char *study, const ens_asha_params_t *p,
                           ens_asha_view_t *v, int *round_trips, char *errstr, size_t errstr_size);
    ens_err_t (*asha_commit)(void *ctx, const char *study, const ens_asha_params_t *p,
                             const ens_asha_decision_t *d, int64_t base_version,
                             const char *config_json, int *applied, ens_asha_view_t *next,
                             char *errstr, size_t errstr_size);
    ens_err_t (*asha_result)(void *ctx, const char *study, const ens_asha_params_t *p,
                             const char *trial_id, int ok, double score, double epochs_done,
                             const char *model_id, const char *error, int *applied,
                             ens_asha_view_t *next, char *errstr, size_t errstr_size);

    ens_err_t (*inflight_list)(void *ctx, const char *study, ens_state_sched_inflight_t **jobs,
                               int *n, char *errstr, size_t errstr_size);
    ens_err_t (*inflight_get)(void *ctx, const char *study, const char *trial,
                              ens_state_sched_inflight_t *job, int *found, char *errstr,
                              size_t errstr_size);
    ens_err_t (*inflight_count)(void *ctx, const char *study, long *n, char *errstr,
                                size_t errstr_size);
    ens_err_t (*dispatched_list)(void *ctx, const char *study, ens_state_sched_dispatched_t **out,
                                 int *n, char *errstr, size_t errstr_size);
    ens_err_t (*dispatched_put)(void *ctx, const char *study, const ens_state_sched_dispatched_t *d,
                                char *errstr, size_t errstr_size);
    ens_err_t (*dispatched_remove)(void *ctx, const char *study, const char *trial, char *errstr,
                                   size_t errstr_size);
    ens_err_t (*outbox_list)(void *ctx, const char *study, ens_state_sched_outbox_t **out, int *n,
                             char *errstr, size_t errstr_size);
    ens_err_t (*outbox_put)(void *ctx, const char *study, long long seq, const char *trial,
                            char *errstr, size_t errstr_size);
    ens_err_t (*outbox_remove)(void *ctx, const char *study, long long seq, char *errstr,
                               size_t errstr_size);
    ens_err_t (*trial_config)(void *ctx, const char *study, const char *trial, char **config,
                              char *errstr, size_t errstr_size);
    ens_err_t (*speed_put)(void *ctx, const char *study, const char *trial,
                           double seconds_per_epoch, char *errstr, size_t errstr_size);
    ens_err_t (*speed_list)(void *ctx, const char *study, double **spe, int *n, char *errstr,
                            size_t errstr_size);
    ens_err_t (*results_get)(void *ctx, const char *study, ens_state_sched_results_t *out,
                             char *errstr, size_t errstr_size);
    /** count < 0: leave count; rounds < 0: leave rounds; count and rounds both < 0 and
     *  since_ms < 0: remove the watch */
    ens_err_t (*evalwatch_put)(void *ctx, const char *study, long long count, int64_t since_ms,
                               long long rounds, char *errstr, size_t errstr_size);
    ens_err_t (*counts)(void *ctx, const char *study, ens_state_sched_counts_t *out, char *errstr,
                        size_t errstr_size);
    ens_err_t (*rung_get)(void *ctx, const char *study, int bracket, int rung,
                          ens_state_sched_rung_t *out, char *errstr, size_t errstr_size);

    /** *holder "" when taken, else the holder's "<trainer> <model>" */
    ens_err_t (*lease_take)(void *ctx, const char *study, const char *trial, const char *trainer,
                            const char *model, int ttl_ms, char *holder, size_t holder_size,
                            char *errstr, size_t errstr_size);
    ens_err_t (*lease_renew)(void *ctx, const char *study, const char *trial, const char *trainer,
                             const char *model, int ttl_ms, int *lost, char *errstr,
                             size_t errstr_size);
    ens_err_t (*lease_drop)(void *ctx, const char *study, const char *trial, char *errstr,
                            size_t errstr_size);
    ens_err_t (*lease_held)(void *ctx, const char *study, const char *trial, int *held,
                            char *errstr, size_t errstr_size);
    /** delta +1: one more start (the count after it in *attempt); -1: one fewer; 0: remove */
    ens_err_t (*attempt_add)(void *ctx, const char *study, const char *model, int delta,
                             long long *attempt, char *errstr, size_t errstr_size);
    ens_err_t (*job_put)(void *ctx, const char *study, const ens_trial_result_t *res, char *errstr,
                         size_t errstr_size);
    ens_err_t (*job_get)(void *ctx, const char *study, const char *model, ens_trial_result_t *res,
                         int *found, char *errstr, size_t errstr_size);
    ens_err_t (*job_progress)(void *ctx, const char *study, const char *model, double epochs,
                              char *errstr, size_t errstr_size);
};

/* ---- studies ------------------------------------------------------------------------- */

/** @brief 1 when study can name a study here (non-empty, shorter than ENS_ID_MAX, no brace:
 *         a brace would move the key's hash tag), else 0. */
int ens_state_sched_study_id_ok(const char *study);

/**
 * @brief Accept a study: its record whole (s->created_ms its time, status running), in the
 *        list of studies and among the active ones. A study already accepted (a redelivered
 *        StudyCreated) is left as it is, with *created 0.
 */
ens_err_t ens_state_sched_study_create(ens_state_t *st, const ens_state_sched_study_t *s,
                                       int *created, char *errstr, size_t errstr_size);

/**
 * @brief A study's record into *out (absent fields "" or 0: a study never stored reads with
 *        an empty status and scheduler).
 * @remark out->dataset and out->search_space are malloc'd: free them with
 *         ens_state_sched_study_clear.
 */
ens_err_t ens_state_sched_study_get(ens_state_t *st, const char *study,
                                    ens_state_sched_study_t *out, char *errstr, size_t errstr_size);

/** @brief Free what ens_state_sched_study_get allocated in s (NULL is a no-op). */
void ens_state_sched_study_clear(ens_state_sched_study_t *s);

/** @brief Set a study's status ("stopping", "rejected"...); error (may be NULL) says why. */
ens_err_t ens_state_sched_study_status_put(ens_state_t *st, const char *study, const char *status,
                                           const char *error, char *errstr, size_t errstr_size);

/**
 * @brief Extend a study: add_trials configurations and add_epochs epochs of budget (0: none),
 *        its deadline moved to deadline_ms (0: unchanged); it runs again (status running,
 *        active) and its model files are no longer compacted.
 */
ens_err_t ens_state_sched_study_extend(ens_state_t *st, const char *study, int32_t add_trials,
                                       double add_epochs, int64_t deadline_ms, char *errstr,
                                       size_t errstr_size);

/**
 * @brief A study ended: its status becomes final_status (NULL: kept, it was set before), it
 *        settles (its results are watched until the library has them), its model files are
 *        compacted, it leaves the active studies and its dispatch records go. Each step can be
 *        done again: one that failed half way is finished by a later call.
 */
ens_err_t ens_state_sched_study_end(ens_state_t *st, const char *study, const char *final_status,
                                    char *errstr, size_t errstr_size);

/**
 * @brief 1 in *first the first time StudyCommand event_id is seen for the study (marked for a
 *        week), 0 after.
 */
ens_err_t ens_state_sched_command_first(ens_state_t *st, const char *study, const char *event_id,
                                        int *first, char *errstr, size_t errstr_size);

/** @brief The running studies (free with ens_state_strings_free). */
ens_err_t ens_state_sched_active_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                      size_t errstr_size);

/** @brief 1 in *active when the study is among the running ones. */
ens_err_t ens_state_sched_active_has(ens_state_t *st, const char *study, int *active, char *errstr,
                                     size_t errstr_size);

/** @brief The ended studies whose results are still watched (ens_state_strings_free). */
ens_err_t ens_state_sched_settling_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                        size_t errstr_size);

/** @brief A study settled: its results are no longer watched. */
ens_err_t ens_state_sched_settling_remove(ens_state_t *st, const char *study, char *errstr,
                                          size_t errstr_size);

/* ---- ASHA steps ----------------------------------------------------------------------- */

/**
 * @brief Read the study's scheduler state into v (one round trip).
 * @param round_trips out (may be NULL): round trips used (1; 2 when the Redis script had to
 *        be loaded, 3 when the server had lost it)
 */
ens_err_t ens_state_sched_asha_view(ens_state_t *st, const char *study, const ens_asha_params_t *p,
                                    ens_asha_view_t *v, int *round_trips, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Apply decision d atomically if d->seq is still the next decision number and the state
 *        version is still base_version: the trial's job goes in flight and into the outbox,
 *        the decision into the log.
 * @param base_version the version of the view d was decided from; < 0: not checked
 * @param config_json the configuration of a NEW trial (ignored for promotions; NULL: "{}")
 * @param applied out: 1 when applied, 0 when the state had moved on (already applied, or a
 *        result came in since the view): then decide again from *next
 * @param next out (may be NULL): the state after the step, ready for the next decision
 */
ens_err_t ens_state_sched_asha_commit(ens_state_t *st, const char *study,
                                      const ens_asha_params_t *p, const ens_asha_decision_t *d,
                                      int64_t base_version, const char *config_json, int *applied,
                                      ens_asha_view_t *next, char *errstr, size_t errstr_size);

/**
 * @brief Record a trial's result for its job in flight, atomically: the job leaves the
 *        inflight records, an OK result enters its rung (and the candidates below the top,
 *        p->m) and the accepted models, a failed one the failed trials. A result for no job in
 *        flight (a redelivery) changes nothing and gives *applied = 0.
 * @param model_id, error may be NULL ("")
 * @param next out (may be NULL): the state after the result, ready for the next decision
 */
ens_err_t ens_state_sched_asha_result(ens_state_t *st, const char *study,
                                      const ens_asha_params_t *p, const char *trial_id, int ok,
                                      double score, double epochs_done, const char *model_id,
                                      const char *error, int *applied, ens_asha_view_t *next,
                                      char *errstr, size_t errstr_size);

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

/** @brief Parse an inflight record "<seq> <b> <k> <from> <to>" (trial_id left as it is);
 *         1 when rec is one (into *out), else 0 (*out untouched). */
int ens_state_sched_inflight_parse(const char *rec, ens_state_sched_inflight_t *out);

/** @brief The job of trial among n jobs (from ens_state_sched_inflight_list), or NULL. */
const ens_state_sched_inflight_t *
ens_state_sched_inflight_find(const ens_state_sched_inflight_t *jobs, int n, const char *trial);

/**
 * @brief The study's jobs in flight (*jobs malloc'd, NULL when none; the caller frees it). A
 *        record that does not parse is left out.
 */
ens_err_t ens_state_sched_inflight_list(ens_state_t *st, const char *study,
                                        ens_state_sched_inflight_t **jobs, int *n, char *errstr,
                                        size_t errstr_size);

/** @brief The trial's job in flight: *found 1 and *job filled, or *found 0. */
ens_err_t ens_state_sched_inflight_get(ens_state_t *st, const char *study, const char *trial,
                                       ens_state_sched_inflight_t *job, int *found, char *errstr,
                                       size_t errstr_size);

/** @brief How many jobs of the study are in flight. */
ens_err_t ens_state_sched_inflight_count(ens_state_t *st, const char *study, long *n, char *errstr,
                                         size_t errstr_size);

/**
 * @brief Where the study's jobs in flight were sent (*out malloc'd, NULL when none). A record
 *        without a decision and a partition is left out.
 */
ens_err_t ens_state_sched_dispatched_list(ens_state_t *st, const char *study,
                                          ens_state_sched_dispatched_t **out, int *n, char *errstr,
                                          size_t errstr_size);

/** @brief Record where d->trial_id's job went (d->sent_ms < 0 is refused). */
ens_err_t ens_state_sched_dispatched_put(ens_state_t *st, const char *study,
                                         const ens_state_sched_dispatched_t *d, char *errstr,
                                         size_t errstr_size);

/** @brief Forget where the trial's job went (its result came). Missing is not an error. */
ens_err_t ens_state_sched_dispatched_remove(ens_state_t *st, const char *study, const char *trial,
                                            char *errstr, size_t errstr_size);

/**
 * @brief The decisions whose jobs wait to be produced, in the order they were put (*out
 *        malloc'd, NULL when none).
 */
ens_err_t ens_state_sched_outbox_list(ens_state_t *st, const char *study,
                                      ens_state_sched_outbox_t **out, int *n, char *errstr,
                                      size_t errstr_size);

/** @brief Put decision seq's job (of trial) back into the outbox: it goes out again. */
ens_err_t ens_state_sched_outbox_put(ens_state_t *st, const char *study, long long seq,
                                     const char *trial, char *errstr, size_t errstr_size);

/** @brief Take decision seq out of the outbox (its job was delivered). */
ens_err_t ens_state_sched_outbox_remove(ens_state_t *st, const char *study, long long seq,
                                        char *errstr, size_t errstr_size);

/** @brief A trial's configuration (JSON, malloc'd); ENS_ERR_NOTFOUND when it has none. */
ens_err_t ens_state_sched_trial_config(ens_state_t *st, const char *study, const char *trial,
                                       char **config, char *errstr, size_t errstr_size);

/* ---- speeds, results watched, progress ------------------------------------------------- */

/** @brief The trial's last job trained at seconds_per_epoch (> 0). */
ens_err_t ens_state_sched_speed_put(ens_state_t *st, const char *study, const char *trial,
                                    double seconds_per_epoch, char *errstr, size_t errstr_size);

/** @brief Every trial's seconds per epoch, ascending (*spe malloc'd, NULL when none). */
ens_err_t ens_state_sched_speed_list(ens_state_t *st, const char *study, double **spe, int *n,
                                     char *errstr, size_t errstr_size);

/**
 * @brief The accepted models that are not in the library, the sizes of both, and the watch
 *        on them (one round trip). Free with ens_state_sched_results_clear.
 */
ens_err_t ens_state_sched_results_get(ens_state_t *st, const char *study,
                                      ens_state_sched_results_t *out, char *errstr,
                                      size_t errstr_size);

/** @brief Free what ens_state_sched_results_get allocated (NULL is a no-op). */
void ens_state_sched_results_clear(ens_state_sched_results_t *r);

/**
 * @brief Update the watch on a study's results: count (< 0: kept) and since_ms; rounds
 *        (< 0: kept).
 */
ens_err_t ens_state_sched_evalwatch_put(ens_state_t *st, const char *study, long long count,
                                        int64_t since_ms, long long rounds, char *errstr,
                                        size_t errstr_size);

/** @brief Remove the watch on a study's results. Missing is not an error. */
ens_err_t ens_state_sched_evalwatch_del(ens_state_t *st, const char *study, char *errstr,
                                        size_t errstr_size);

/** @brief A study's counts: trials ok and failed, models, library, jobs in flight, configs. */
ens_err_t ens_state_sched_counts(ens_state_t *st, const char *study, ens_state_sched_counts_t *out,
                                 char *errstr, size_t errstr_size);

/** @brief Rung k of bracket b: results, jobs entered and done, best and median accuracy. */
ens_err_t ens_state_sched_rung_get(ens_state_t *st, const char *study, int bracket, int rung,
                                   ens_state_sched_rung_t *out, char *errstr, size_t errstr_size);

/* ---- the trainer's side: leases, attempts, job records ---------------------------------- */

/**
 * @brief Take the lease of the trial's job for trainer, training model, for ttl_ms. Refused
 *        only when another trainer holds this very model's job (a lease of the trial's
 *        earlier job, or this trainer's own, is taken over).
 * @param refused out: 1 when refused, with the holder's "<trainer> <model>" in holder
 */
ens_err_t ens_state_sched_lease_take(ens_state_t *st, const char *study, const char *trial,
                                     const char *trainer, const char *model, int ttl_ms,
                                     int *refused, char *holder, size_t holder_size, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Renew the lease for ttl_ms while it is still trainer's (take it again if it ran out
 *        and nobody took it). *lost 1 when another trainer holds it now.
 */
ens_err_t ens_state_sched_lease_renew(ens_state_t *st, const char *study, const char *trial,
                                      const char *trainer, const char *model, int ttl_ms, int *lost,
                                      char *errstr, size_t errstr_size);

/** @brief Drop the trial's lease (its job given up unfinished: issue it again at once). */
ens_err_t ens_state_sched_lease_drop(ens_state_t *st, const char *study, const char *trial,
                                     char *errstr, size_t errstr_size);

/** @brief 1 in *held while some trainer holds the trial's lease. */
ens_err_t ens_state_sched_lease_held(ens_state_t *st, const char *study, const char *trial,
                                     int *held, char *errstr, size_t errstr_size);

/** @brief One more start of the job that trains model: the count after it in *attempt. */
ens_err_t ens_state_sched_attempt_begin(ens_state_t *st, const char *study, const char *model,
                                        long long *attempt, char *errstr, size_t errstr_size);

/** @brief Take back one start (a clean stop is not a failed attempt). */
ens_err_t ens_state_sched_attempt_undo(ens_state_t *st, const char *study, const char *model,
                                       char *errstr, size_t errstr_size);

/** @brief Forget the starts of the job that trains model. */
ens_err_t ens_state_sched_attempt_clear(ens_state_t *st, const char *study, const char *model,
                                        char *errstr, size_t errstr_size);

/**
 * @brief Record res (an OK TrialResult: model id, accuracies, seconds, epochs, speed) as the
 *        outcome of the job that trains study's model res->model_id.
 */
ens_err_t ens_state_sched_job_put(ens_state_t *st, const char *study, const ens_trial_result_t *res,
                                  char *errstr, size_t errstr_size);

/**
 * @brief The recorded outcome of the job that trains model: *found 1 and res filled (an OK
 *        result of that model; study and trial ids left to the caller), or *found 0.
 */
ens_err_t ens_state_sched_job_get(ens_state_t *st, const char *study, const char *model,
                                  ens_trial_result_t *res, int *found, char *errstr,
                                  size_t errstr_size);

/** @brief How far the job that trains model has come (epochs), for whoever watches. */
ens_err_t ens_state_sched_job_progress(ens_state_t *st, const char *study, const char *model,
                                       double epochs, char *errstr, size_t errstr_size);

#endif
