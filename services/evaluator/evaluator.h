/* evaluator.h - scores each checkpoint on validation data and measures its inference cost. */
#ifndef ENSFLOW_EVALUATOR_H
#define ENSFLOW_EVALUATOR_H

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/nn.h"
#include "ensflow/state.h"
#include "ensflow/study_data.h"

typedef struct {
    ens_state_t *state;           /**< studies, checkpoints, evaluations (not owned) */
    ens_kafka_t *producer;
    int32_t serving_batch;        /**< batch size the cost is measured at */
    ens_study_data_t *data;       /**< cached split, owned */
} ens_evaluator_t;

/**
 * @brief Measured inference time per sample (ms) of m at batch size b: the best of `reps`
 *        timed passes over up to 1024 rows of x (n rows available).
 */
double ens_evaluator_ms_per_sample(ens_model_t *m, const float *x, int32_t n, int32_t b,
                                   int reps);

/** Batch sizes of the cost profile stored with every evaluation. */
#define ENS_EVALUATOR_N_PROFILE ENS_STATE_N_PROFILE
extern const int32_t ens_evaluator_profile_batches[ENS_EVALUATOR_N_PROFILE]; /* 1 8 32 128 */

/** @brief IEEE 754 half precision of f, rounded to nearest even (the stored probabilities;
 *         the codec is the state layer's, ens_state_f16_encode). */
uint16_t ens_evaluator_f16(float f);

/**
 * @brief For a successful TrialResult: load the checkpoint, compute its validation class
 *        probabilities (stored as float16 rows, ens_state_probs_put), accuracy,
 *        log-loss, parameters, FLOPs (2 per parameter: a multiply-add per weight), memory,
 *        and time per sample at batch sizes 1, 8, 32, 128 and the serving batch size; store
 *        them (ens_state_eval_put) and produce ModelEvaluated. Failed trials are skipped.
 */
ens_err_t ens_evaluator_handle(void *ctx, const ens_event_t *ev, char *errstr,
                               size_t errstr_size);

void ens_evaluator_close(ens_evaluator_t *e);

#endif
