/* inference.h - an inference group's ensemble: plan loading and batched combined prediction. */
#ifndef ENSFLOW_INFERENCE_H
#define ENSFLOW_INFERENCE_H

#include "ensflow/events.h"
#include "ensflow/store.h"

typedef struct ens_inference_s ens_inference_t;

ens_err_t ens_inference_new(ens_inference_t **out);
void ens_inference_free(ens_inference_t *inf);

/**
 * @brief Load every member of plan from the model store and make it the plan in force.
 *        On failure the previous plan stays in force.
 */
ens_err_t ens_inference_load_plan(ens_inference_t *inf, ens_redis_t *r,
                                  const ens_placement_plan_t *plan, char *errstr,
                                  size_t errstr_size);

/** @brief Version of the plan in force, or -1 when none is loaded. */
int64_t ens_inference_plan_version(const ens_inference_t *inf);

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
