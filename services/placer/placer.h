/* placer.h - turns a deploy command into a placement plan (one CPU group for now). */
#ifndef ENSFLOW_PLACER_H
#define ENSFLOW_PLACER_H

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "allocate.h"
#include "ensflow/state.h"

typedef struct {
    ens_state_t *state;    /**< fronts, evaluations, devices, plans (not owned) */
    ens_kafka_t *producer;
    const char *device;    /**< the one device for now, e.g. "cpu-0" */
    int32_t batch_size;    /**< serving batch size */
} ens_placer_t;

/** @brief Fill plan (an initialised PlacementPlan event) for ensemble e: every member on
 *         p->device, one instance, p->batch_size: the plan when no device is registered. */
ens_err_t ens_placer_plan(const ens_placer_t *p, const char *study_id, const ens_ensemble_t *e,
                          int64_t version, ens_event_t *plan);

/**
 * @brief Fill plan for ensemble e from an allocation over devices (ens_alloc_optimise):
 *        one row per (device, model) that runs instances, with their batch size, and the
 *        predicted throughput. models[i] is the cost profile of e->members[i].
 *        compute_ms (n_devices, or NULL): each device's predicted time on its members per
 *        ensemble sample, which its group compares with what it measures (its speed).
 * @return ENS_OK, or ENS_ERR_INVALID naming the model that fits on no device.
 */
ens_err_t ens_placer_plan_allocated(const char *study_id, const ens_ensemble_t *e,
                                    int64_t version, const ens_alloc_model_t *models,
                                    const ens_alloc_device_t *devices, int n_devices,
                                    ens_event_t *plan, double *compute_ms, char *errstr,
                                    size_t errstr_size);

/**
 * @brief On DeployCommand: read the study's front, choose, store the plan (the study's and
 *        the global plan in force, ens_state_plan_put, unless a newer version exists;
 *        versions come from the global counter, ens_state_plan_version_next; each device's
 *        predicted compute ms per sample, ens_state_plan_compute_put) and produce a
 *        PlacementPlan.
 *        A redelivered command produces the same plan again, not a new version.
 */
ens_err_t ens_placer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

#endif
