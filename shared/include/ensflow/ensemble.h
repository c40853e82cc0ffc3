/* ensemble.h - combining members' class probabilities and scoring them. */
#ifndef ENSFLOW_ENSEMBLE_H
#define ENSFLOW_ENSEMBLE_H

#include <stdint.h>

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

#endif
