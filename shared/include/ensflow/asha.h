/* asha.h - the trial scheduler's pure core: ASHA, asynchronous Hyperband, SHA and random search.
 *
 * The core never touches Redis or Kafka. It decides from a snapshot of the scheduler state
 * (ens_asha_view_t) and returns one decision; a state backend (in memory here, or the state
 * layer's: state_sched.h) fills the view and applies the decision as one atomic step keyed by
 * the decision counter. The same state always gives the same decision, so a proposer that crashes
 * between deciding and committing decides the same thing again after its restart.
 *
 * Rungs. With r_min, R (max epochs) and eta, let m = floor(log_eta(R / r_min)). Bracket s
 * (early-stopping rate, 0 <= s <= s_max <= m) has rungs k = 0 .. m - s with resource
 * r_min * eta^(k + s) epochs; the top rung of every bracket is exactly R.
 *   - asha: one bracket, s = 0.
 *   - hyperband: brackets s = 0 .. s_max side by side (asynchronous Hyperband). A new
 *     configuration number i goes to bracket i mod (s_max + 1) (round robin: every bracket
 *     gets the same number of configurations, the budget split is left to the brackets' shape).
 *   - sha: bracket 0, synchronous: rung k promotes only once every job of rung k has reported
 *     and every configuration has been started; then its top 1/eta go up.
 *   - random: one rung at R (m = 0).
 *
 * Decision rule (ASHA, Li et al. 2020): when a trainer frees up, for each bracket in order
 * s = 0 .. s_max, look at its rungs from the highest below the top down to 0; in the first
 * rung whose best not-yet-promoted trial ranks in the top floor(n / eta) of the rung's n
 * results, promote that trial to the next rung. If no bracket has one, start a new
 * configuration at the bottom rung of its bracket, when the configuration and epoch budgets
 * allow. Otherwise nothing (the study ends when nothing is in flight either).
 *
 * Ranking: higher validation accuracy first; equal scores by trial id, larger first (Redis's
 * ZREVRANGE order), so the in-memory and Redis backends rank identically.
 */
#ifndef ENSFLOW_ASHA_H
#define ENSFLOW_ASHA_H

#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/events.h"

#define ENS_ASHA_MAX_RUNGS 12
#define ENS_ASHA_MAX_BRACKETS 12

typedef enum {
    ENS_SCHED_RANDOM = 0,
    ENS_SCHED_SHA,
    ENS_SCHED_ASHA,
    ENS_SCHED_HYPERBAND
} ens_sched_kind_t;

/** Scheduler settings of a study (plain values; see ens_asha_params_init). */
typedef struct {
    ens_sched_kind_t kind;
    double eta;           /**< >= 2 */
    double r_min, r_max;  /**< epochs of the lowest and the top rung */
    int s_max;            /**< brackets 0..s_max (hyperband), 0 otherwise */
    int max_configs;      /**< configurations the study may start */
    double max_epochs;    /**< total epochs the study may issue, 0 = no limit */
    double max_job_epochs; /**< epochs one job may still train: the time left before the
                                study's deadline at its measured speed (set for each
                                scheduling pass, not stored), 0 = no limit. A new
                                configuration whose first rung is longer trains this much
                                instead when it is at least a third of the rung. */
    /* derived by ens_asha_params_init */
    int m;                /**< rungs of bracket 0 minus one */
} ens_asha_params_t;

/** One rung as the backend sees it. */
typedef struct {
    int32_t n;            /**< OK results in the rung */
    int32_t done;         /**< jobs of this rung that reported (OK or failed) */
    int32_t entered;      /**< jobs issued to this rung */
    int32_t cand_rank;    /**< 0-based rank of cand among the n results, -1 = no candidate */
    char cand[ENS_ID_MAX]; /**< best trial of the rung not yet promoted */
} ens_asha_rung_t;

/** Snapshot of a study's scheduler state. */
typedef struct {
    int64_t decisions;     /**< decisions committed so far (the next one's number) */
    int32_t configs;       /**< configurations started */
    double epochs_issued;  /**< epochs of every job issued */
    int64_t version;       /**< state version: bumped by every commit and result (Redis
                                backend; 0 in memory). A commit made from a view checks it. */
    ens_asha_rung_t rung[ENS_ASHA_MAX_BRACKETS][ENS_ASHA_MAX_RUNGS];
} ens_asha_view_t;

typedef enum { ENS_ASHA_NONE = 0, ENS_ASHA_NEW, ENS_ASHA_PROMOTE } ens_asha_action_t;

/** A decision: which trial trains from which epoch to which, in which bracket and rung. */
typedef struct {
    ens_asha_action_t action;
    int64_t seq;               /**< decision number (equals view.decisions) */
    int bracket, rung;         /**< the rung the job trains the trial up to */
    int32_t config_index;      /**< configuration number of the trial */
    char trial_id[ENS_ID_MAX]; /**< "t-00042" */
    double from_epochs, to_epochs;
} ens_asha_decision_t;

/** @brief Parse "random", "sha", "asha", "hyperband" ("" = random). */
ens_err_t ens_asha_kind_parse(const char *name, ens_sched_kind_t *kind);
const char *ens_asha_kind_name(ens_sched_kind_t kind);

/**
 * @brief Fill the derived members and check the settings (r_min <= r_max, eta >= 2, rungs fit
 *        ENS_ASHA_MAX_RUNGS, s_max <= m). r_min 0 means r_max / eta^2 (three rungs);
 *        s_max < 0 means m for hyperband. Random search gets one rung at r_max.
 */
ens_err_t ens_asha_params_init(ens_asha_params_t *p, char *errstr, size_t errstr_size);

/** @brief Brackets of the study (s_max + 1) and rungs of bracket s (m - s + 1). */
int ens_asha_n_brackets(const ens_asha_params_t *p);
int ens_asha_n_rungs(const ens_asha_params_t *p, int bracket);

/** @brief Resource (epochs) of rung k of bracket s. */
double ens_asha_rung_epochs(const ens_asha_params_t *p, int bracket, int rung);

/** @brief The trial id of configuration i ("t-%05d"), and back (-1 when not one). */
void ens_asha_trial_id(int32_t index, char out[ENS_ID_MAX]);
int32_t ens_asha_trial_index(const char *trial_id);

/** @brief The next decision for this state (pure: same view, same decision). */
void ens_asha_decide(const ens_asha_params_t *p, const ens_asha_view_t *v,
                     ens_asha_decision_t *d);

/* --- the in-memory backend (unit tests and the simulated benchmark) --------------------- */

typedef struct ens_asha_mem_s ens_asha_mem_t;

ens_err_t ens_asha_mem_new(const ens_asha_params_t *p, ens_asha_mem_t **out);
void ens_asha_mem_free(ens_asha_mem_t *m);
/** @brief Snapshot into v (O(brackets * rungs * log n)). */
void ens_asha_mem_view(const ens_asha_mem_t *m, ens_asha_view_t *v);
/** @brief Apply a decision; ENS_ERR_INVALID if d->seq is not the next decision number. */
ens_err_t ens_asha_mem_commit(ens_asha_mem_t *m, const ens_asha_decision_t *d);
/** @brief Record the result of a committed job (ok = 0: failed, not ranked). */
ens_err_t ens_asha_mem_result(ens_asha_mem_t *m, int bracket, int rung, const char *trial_id,
                              int ok, double score);
/** @brief Make a deep copy (to simulate a crash: keep the copy, throw the original away). */
ens_err_t ens_asha_mem_clone(const ens_asha_mem_t *m, ens_asha_mem_t **out);

#endif
