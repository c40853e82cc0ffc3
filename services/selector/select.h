/* select.h - ensemble selection algorithms over a library of evaluated models. */
#ifndef ENSFLOW_SELECT_H
#define ENSFLOW_SELECT_H

#include <stddef.h>
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

/** What mogreedy's front is Pareto-optimal in (with cost). */
typedef enum {
    ENS_SELECT_CRITERION_DEFAULT = 0, /**< ENS_SELECT_LOGLOSS */
    ENS_SELECT_ACCURACY = 1,          /**< selection-half accuracy */
    ENS_SELECT_LOGLOSS = 2            /**< selection-half log-loss (lower is better) */
} ens_select_criterion_t;

/** Settings of the algorithms; zero members take the defaults in brackets. */
typedef struct {
    int top_k;          /**< topk: members [5] */
    int max_iter;       /**< caruana (and mogreedy's Caruana seeds): rounds of forward
                             *   selection with replacement [50] */
    int max_members;    /**< mogreedy: largest ensemble, members counted with repetition [32] */
    int max_expansions; /**< mogreedy: most ensembles grown by one member [4000] */
    int no_seeds;       /**< mogreedy: grow from single models only, without the top-K and
                         *   Caruana seeds (the algorithm before them; for comparisons) [0] */
    int criterion;      /**< mogreedy: an ens_select_criterion_t [ENS_SELECT_LOGLOSS] */
} ens_select_opts_t;

/** @brief The criterion o asks for, the default resolved (o may be NULL). */
ens_select_criterion_t ens_select_criterion(const ens_select_opts_t *o);

/**
 * One selection algorithm: builds ensembles from lib[0..n_lib) on d's selection half.
 * Fills *out (malloc'd, n_out of them; free with ens_select_ensembles_free). Results do not
 * depend on the order of lib: ties are broken by cost, then model id.
 */
typedef ens_err_t (*ens_select_fn)(const ens_library_member_t *lib, int n_lib,
                                   const ens_selection_data_t *d, const ens_select_opts_t *o,
                                   ens_ensemble_t **out, int *n_out);

/** An algorithm and the name it goes by ("single", "topk", "caruana", "mogreedy"). */
typedef struct {
    const char *name;
    ens_select_fn run;
} ens_select_algo_t;

/** @brief The algorithm called name, or NULL. ens_select_algos() lists them all. */
const ens_select_algo_t *ens_select_algo(const char *name);
/** @brief Every algorithm, n of them; mogreedy, the default, first. */
const ens_select_algo_t *ens_select_algos(int *n);

/**
 * @brief Run the algorithm called method (see ens_select_fn) and name each ensemble
 *        (ens_select_assign_id).
 * @return ENS_ERR_INVALID for an unknown method or an empty library.
 */
ens_err_t ens_select_run(const char *method, const ens_library_member_t *lib, int n_lib,
                         const ens_selection_data_t *d, const ens_select_opts_t *o,
                         ens_ensemble_t **out, int *n_out);

/** @brief Free n ensembles made by an algorithm and the array itself. NULL is a no-op. */
void ens_select_ensembles_free(ens_ensemble_t *e, int n);

/**
 * @brief A stable id for e: "single1-n<N>" / "topk<K>-n<N>" (N = library size) for the
 *        baselines, "<method><members>-<8 hex digits>" (a hash of members and weights) for
 *        caruana and mogreedy, so the same ensemble keeps its id as the library grows.
 */
void ens_select_assign_id(ens_ensemble_t *e, int n_lib);

/**
 * @brief Split n validation rows into selection (even rows) and holdout (odd rows) halves.
 * @remark *sel and *hold are malloc'd; the caller frees them.
 */
ens_err_t ens_select_halves(int32_t n, int32_t **sel, int32_t *n_sel, int32_t **hold,
                            int32_t *n_hold);

/**
 * @brief Score the ensemble of members idx[0..m) with weights (NULL = equal) into out:
 *        members, weights, accuracy and log-loss on both halves, summed cost and memory;
 *        method copied in.
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

/**
 * @brief Caruana et al. (2004) forward selection with replacement: start empty, add the model
 *        that most raises selection accuracy (ties: smaller added cost, then smaller id), for
 *        o->max_iter rounds; the best ensemble seen (the first on ties) is returned, not the
 *        last. Weights are the counts over the total.
 */
ens_err_t ens_select_caruana(const ens_library_member_t *lib, int n_lib,
                             const ens_selection_data_t *d, const ens_select_opts_t *o,
                             ens_ensemble_t *out);

/**
 * @brief Multi-objective greedy: the Pareto front of (the criterion on the selection half,
 *        cost down). The criterion (o->criterion) is the log-loss of the averaged probabilities
 *        by default, or accuracy: on a selection half of a few thousand rows, accuracy lets
 *        small greedy ensembles that fit its noise dominate larger, better calibrated averages
 *        that generalise better; log-loss is smoother and keeps them. Every ensemble still
 *        reports both accuracies and both log-losses (selection half, holdout).
 *        Starts from the non-dominated single models and the baselines' ensembles (top-K for
 *        K = 2..max_members and every prefix of a max_iter-round Caruana path, each kept only
 *        where not dominated); repeatedly takes the cheapest ensemble of the front not yet
 *        grown and tries it with each model added once more (a model already in only gains
 *        weight and costs nothing), keeping every child that no front member dominates. Cost
 *        counts each distinct member once. Returns the front sorted by cost, cheapest first,
 *        every member scored on both halves. Candidates are scored on worker threads
 *        (ENSFLOW_SELECT_THREADS, default the online CPUs); the result does not depend on it.
 */
ens_err_t ens_select_mogreedy(const ens_library_member_t *lib, int n_lib,
                              const ens_selection_data_t *d, const ens_select_opts_t *o,
                              ens_ensemble_t **out, int *n_out);

/** @brief Decode n IEEE 754 half-precision values (the stored probabilities) to float. */
void ens_select_f16_decode(const uint16_t *in, size_t n, float *out);

#endif
