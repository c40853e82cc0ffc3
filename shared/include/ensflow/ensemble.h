/* ensemble.h - combining members' class probabilities, scoring them, choosing one. */
#ifndef ENSFLOW_ENSEMBLE_H
#define ENSFLOW_ENSEMBLE_H

#include <stdint.h>

#include "ensflow/events.h"

/**
 * @brief out[i*k+c] = sum_m weights[m] * probs[m][i*k+c] / sum_m weights[m]: the weighted
 *        average of class probabilities, the combination rule of every ensflow ensemble.
 */
void ens_ensemble_combine(const float *const *probs, const double *weights, int n_members,
                          int32_t n, int32_t k, float *out);

/** @brief Index of the largest of k values (the first on ties). */
int32_t ens_argmax(const float *p, int32_t k);

/**
 * @brief Share of rows whose argmax equals the label, over rows idx[0..n) (idx NULL: 0..n).
 */
double ens_accuracy(const float *probs, const int32_t *labels, const int32_t *idx, int32_t n,
                    int32_t k);

/** @brief Mean -log p(label) over the rows (p clamped at 1e-7). */
double ens_logloss(const float *probs, const int32_t *labels, const int32_t *idx, int32_t n,
                   int32_t k);

/** How ens_ensemble_choose ranks the ensembles that meet the limits. */
typedef enum {
    ENS_CHOOSE_ACCURACY = 0, /**< highest holdout accuracy (the default) */
    ENS_CHOOSE_LOGLOSS = 1,  /**< lowest holdout log-loss (the default until members were
                              *   trained with label smoothing, whose log-loss understates
                              *   their accuracy) */
} ens_choose_rule_t;

/** What to choose: limits (0 = none) and the rule. */
typedef struct {
    double max_cost_ms;       /**< cost_ms_per_sample at most this */
    int64_t max_memory_bytes; /**< memory_bytes at most this */
    double min_accuracy;      /**< holdout_accuracy at least this */
    int rule;                 /**< an ens_choose_rule_t */
} ens_choose_t;

/**
 * @brief Index of the best of e[0..n) within c's limits (c NULL: none, the default rule), or
 *        -1 when none meets them. Deterministic: independent of the order of e.
 *        ENS_CHOOSE_ACCURACY: highest holdout accuracy, then lower holdout log-loss, higher
 *        selection accuracy, lower cost, smaller id. Accuracy is what is served; log-loss
 *        only breaks its ties, since members trained with label smoothing are under-confident
 *        and an ensemble of them has a worse log-loss than its accuracy earns.
 *        ENS_CHOOSE_LOGLOSS: lowest holdout log-loss, then higher holdout accuracy, lower
 *        selection log-loss, lower cost, smaller id.
 *        When any ensemble of e lacks its holdout log-loss (0: a front written before
 *        EnsembleFront v2), log-loss plays no part: highest holdout accuracy, then selection
 *        accuracy, lower cost, smaller id.
 */
int ens_ensemble_choose(const ens_ensemble_t *e, int n, const ens_choose_t *c);

/**
 * @brief Index of the ensemble of the front that a deploy command asks for (the placer's
 *        choice, and the CLI's before it sends the command): the named one, else the best
 *        within max cost, max memory and min (holdout) accuracy by ens_ensemble_choose's
 *        default rule: highest holdout accuracy (ties: holdout log-loss, selection accuracy,
 *        cost, id).
 *        None fits: ENS_ERR_NOTFOUND with errstr naming the cheapest ensemble.
 */
ens_err_t ens_ensemble_choose_front(const ens_ensemble_front_t *front,
                                    const ens_deploy_command_t *cmd, int *index, char *errstr,
                                    size_t errstr_size);

#endif
