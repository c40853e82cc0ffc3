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
    double *ll_rest;   /* n_sel + 1: ll_rest[j] = a lower bound on the log-loss of rows j.. of
                        * any one-model extension (ens_acc_ll_prepare) */
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
/* the same, or -1 as soon as the hits cannot reach need any more (need <= 0: never) */
int32_t ens_acc_try_need(const ens_acc_t *a, int m, int32_t need);
/*
 * out[i] = ens_acc_try_need(a, models[i], need ? need[i] : 0) for i in 0..n, the candidates
 * spread over worker threads (ens_acc_threads()) when the work is large enough. The result
 * does not depend on the number of threads.
 */
void ens_acc_try_many(const ens_acc_t *a, const int *models, int n, const int32_t *need,
                      int32_t *out);
/*
 * Log-loss on the selection half: the sum over its rows of -log(max(p_label, ENS_ACC_LL_EPS)),
 * p the ensemble's averaged probability. ens_acc_ll: of the current ensemble (members > 0).
 * ens_acc_ll_try_bound: of the ensemble plus one copy of m, or INFINITY as soon as the partial
 * sum plus ll_rest of the rows left reaches bound (no model can have a label probability above
 * 1, so the total could not get below it; bound = INFINITY: never). The sum runs over the rows
 * in order, so a result does not depend on the bound.
 */
#define ENS_ACC_LL_EPS 1e-7
double ens_acc_ll(const ens_acc_t *a);
/* fill ll_rest for the current ensemble (before ens_acc_ll_try_bound with a finite bound) */
void ens_acc_ll_prepare(ens_acc_t *a);
double ens_acc_ll_try_bound(const ens_acc_t *a, int m, double bound);
/* out[i] = ens_acc_ll_try_bound(a, models[i], bound ? bound[i] : INFINITY), on worker threads */
void ens_acc_ll_try_many(const ens_acc_t *a, const int *models, int n, const double *bound,
                         double *out);
/* worker threads for ens_acc_try_many: ENSFLOW_SELECT_THREADS, else the online CPUs (max 16) */
int ens_acc_threads(void);

/*
 * Caruana forward selection with replacement from a's current (usually empty) ensemble:
 * rounds rounds, each adding the model (scanned in order[0..n_lib)) that most raises hits
 * (ties: smaller added cost, then earlier in order). picks[r] is the library index taken in
 * round r and hits[r] the hits after it. count[] (n_lib, zeroed by the caller) ends with the
 * multiplicities. a is left holding the last ensemble, prepared.
 */
ens_err_t ens_acc_caruana_path(ens_acc_t *a, int n_lib, const int *order, int rounds, int *count,
                               int *picks, int32_t *hits);

/* Library indices sorted by model id (ties by index): the order every algorithm scans in. */
int *ens_acc_order_by_id(const ens_library_member_t *lib, int n_lib);

#endif
