/* select_acc.h - (internal) an ensemble's summed probabilities on the selection half, and fast
 * accuracy of "this ensemble plus one more model". */
#ifndef ENSFLOW_SELECT_ACC_H
#define ENSFLOW_SELECT_ACC_H

#include "select.h"

/*
 * The ensemble is a multiset of members; its prediction is the argmax of the summed member
 * probabilities (equal to the weighted average with weights count/total). Adding one model
 * changes each class sum by at most 1, so a row whose top class leads the runner-up by more
 * than 1 keeps its prediction: only the other ("unsure") rows are re-scored per candidate.
 */
typedef struct {
    const ens_library_member_t *lib;
    const ens_selection_data_t *d;
    float *sum;        /* n_sel * k */
    int32_t *unsure;   /* positions j in 0..n_sel whose argmax one more member can change */
    int32_t n_unsure;
    int32_t sure_hits; /* hits among the other rows */
    int32_t total;     /* members counted with repetition */
} ens_acc_t;

ens_err_t ens_acc_init(ens_acc_t *a, const ens_library_member_t *lib,
                       const ens_selection_data_t *d);
void ens_acc_free(ens_acc_t *a);
/* empty the ensemble */
void ens_acc_reset(ens_acc_t *a);
/* add count copies of member m (call ens_acc_prepare before ens_acc_try) */
void ens_acc_add(ens_acc_t *a, int m, int count);
/* find the unsure rows; returns the ensemble's hits on the selection half */
int32_t ens_acc_prepare(ens_acc_t *a);
/* hits on the selection half of the ensemble plus one copy of m */
int32_t ens_acc_try(const ens_acc_t *a, int m);

/* Library indices sorted by model id (ties by index): the order every algorithm scans in. */
int *ens_acc_order_by_id(const ens_library_member_t *lib, int n_lib);

#endif
