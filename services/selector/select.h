/* select.h - ensemble selection algorithms over a library of evaluated models. */
#ifndef ENSFLOW_SELECT_H
#define ENSFLOW_SELECT_H

#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/events.h"

/** One library member: its validation probabilities (n x k rows) and its measured cost. */
typedef struct {
    const char *model_id;
    const float *probs;
    double ms_per_sample;
    int64_t memory_bytes;
} ens_library_member_t;

/** The validation labels and the two halves: selection and holdout (row indices). */
typedef struct {
    int32_t n, k;
    const int32_t *labels;
    const int32_t *sel_idx;
    int32_t n_sel;
    const int32_t *hold_idx;
    int32_t n_hold;
} ens_selection_data_t;

/**
 * @brief Split n validation rows into selection (even rows) and holdout (odd rows) halves.
 * @remark *sel and *hold are malloc'd; the caller frees them.
 */
ens_err_t ens_select_halves(int32_t n, int32_t **sel, int32_t *n_sel, int32_t **hold,
                            int32_t *n_hold);

/**
 * @brief Score the ensemble of members idx[0..m) with weights (NULL = equal) into out:
 *        members, weights, both accuracies, summed cost and memory; method copied in.
 * @remark out's heap members are owned by the caller (freed with the EnsembleFront event).
 */
ens_err_t ens_select_score(const ens_library_member_t *lib, const int *idx, const double *weights,
                           int m, const ens_selection_data_t *d, const char *method,
                           ens_ensemble_t *out);

/** @brief The best single model by selection accuracy (ties: cheaper, then smaller id). */
ens_err_t ens_select_single(const ens_library_member_t *lib, int n_lib,
                            const ens_selection_data_t *d, ens_ensemble_t *out);

/** @brief The equal-weight average of the top_k models by selection accuracy. */
ens_err_t ens_select_topk(const ens_library_member_t *lib, int n_lib,
                          const ens_selection_data_t *d, int top_k, ens_ensemble_t *out);

#endif
