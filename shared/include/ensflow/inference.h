/* inference.h - an inference group's ensemble: plan loading and batched combined prediction. */
#ifndef ENSFLOW_INFERENCE_H
#define ENSFLOW_INFERENCE_H

#include "ensflow/events.h"
#include "ensflow/nn.h"
#include "ensflow/models.h"
#include "ensflow/store.h"

typedef struct ens_inference_s ens_inference_t;

#define ENS_INFERENCE_MAX_MEMBERS 256

/** How the ranks of a multi-device group (MPI) take part in one batch; NULL members = alone. */
typedef struct {
    /** rank 0: hand the batch's inputs to the other ranks before computing */
    ens_err_t (*share_inputs)(void *ctx, const float *x, int32_t rows, int32_t dim);
    /** rank 0: add the other ranks' partial sums into probs (rows x k) */
    ens_err_t (*sum_outputs)(void *ctx, float *probs, int32_t rows, int32_t k);
    void *ctx;
} ens_inference_hooks_t;

ens_err_t ens_inference_new(ens_inference_t **out);
void ens_inference_free(ens_inference_t *inf);

/**
 * @brief Load every member of plan from the model store and make it the plan in force.
 *        On failure the previous plan stays in force.
 */
ens_err_t ens_inference_load_plan(ens_inference_t *inf, ens_redis_t *r,
                                  const ens_placement_plan_t *plan, char *errstr,
                                  size_t errstr_size);

/**
 * @brief This process is rank `rank` of a group of `size` devices; the hooks, on rank 0,
 *        gather the other ranks' shares. Which members a rank runs: when every row of a plan
 *        names one of the group's devices (<instance>-r<rank>, see ens_inference_set_instance)
 *        each rank runs the rows on its device, a model placed on several devices splitting
 *        each batch's rows in proportion to its instances there; otherwise the members m with
 *        m % size == rank (in plan order, each model once). Call before loading a plan.
 *        Default: rank 0 of 1, no hooks.
 */
void ens_inference_set_partition(ens_inference_t *inf, int rank, int size,
                                 const ens_inference_hooks_t *hooks);

/** @brief Largest request, in values, answered with a prediction (0 = no limit); a larger
 *         one gets an ERROR response. */
void ens_inference_set_max_values(ens_inference_t *inf, int64_t max_values);

/** @brief Run every member at batch size n (0, the default: the batch size the plan chose for
 *         the member on this device; a plan row without one: the whole batch). */
void ens_inference_set_member_batch(ens_inference_t *inf, int32_t n);

/** @brief The batch size set by ens_inference_set_member_batch. */
int32_t ens_inference_member_batch(const ens_inference_t *inf);

/**
 * @brief The model store members are loaded from (the caller keeps it open while inf lives).
 *        Without one, only models of the previous version (blobs in Redis) load.
 */
void ens_inference_set_store(ens_inference_t *inf, ens_models_t *store);
ens_models_t *ens_inference_store(const ens_inference_t *inf);

/** @brief The group's id, whose devices are <instance>-r<rank>; "" (default) = round robin. */
void ens_inference_set_instance(ens_inference_t *inf, const char *instance);

/**
 * @brief This rank's share of the combined probabilities of rows inputs: the sum over its
 *        members of weight/total_weight * probabilities. Summed over the ranks of a group it
 *        is the ensemble's prediction.
 */
ens_err_t ens_inference_partial(ens_inference_t *inf, const float *x, int32_t rows, float *out);

/**
 * @brief Make models (n of them, with these weights) the plan in force without the model
 *        store: for tests and fuzzing. Members are named "m0", "m1", ...
 * @remark takes ownership of the n models, also on failure (the previous plan then stays).
 */
ens_err_t ens_inference_set_models(ens_inference_t *inf, ens_model_t **models,
                                   const double *weights, int n, int64_t version,
                                   const char *ensemble_id, char *errstr, size_t errstr_size);

/**
 * @brief Make the plan in force in `from` (loaded with the same partition and instance) the
 *        plan in force in inf, and leave `from` without one: a plan checked on a scratch
 *        engine comes into force without loading it twice.
 */
void ens_inference_adopt(ens_inference_t *inf, ens_inference_t *from);

/** @brief Version of the plan in force, or -1 when none is loaded. */
int64_t ens_inference_plan_version(const ens_inference_t *inf);

/** @brief Classes of the plan in force (0 when none is loaded). */
int32_t ens_inference_n_classes(const ens_inference_t *inf);

/** @brief Feature count a request must carry (0 when no plan is loaded). */
int32_t ens_inference_input_dim(const ens_inference_t *inf);

/**
 * @brief Answer n requests: the weighted average of the members' class probabilities for the
 *        valid ones (one batched pass per member), an ERROR response for a request of the
 *        wrong size or with non-finite values, a TIMEOUT response past its deadline (now_ms).
 *        responses[i] is initialised here as an InferenceResponse; the caller frees them.
 */
ens_err_t ens_inference_run(ens_inference_t *inf, const ens_inference_request_t *const *reqs,
                            int n, int64_t now_ms, ens_event_t *responses);

#endif
