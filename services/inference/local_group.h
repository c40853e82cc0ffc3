/* local_group.h - an inference group over several devices of one process: one thread per
 * device beyond the first runs the plan rows of its device; the calling thread runs device
 * 0's rows and adds the other devices' shares (what MPI_Reduce does for an MPI group). */
#ifndef ENSFLOW_LOCAL_GROUP_H
#define ENSFLOW_LOCAL_GROUP_H

#include "ensflow/events.h"
#include "ensflow/store.h"
#include "ensflow/inference.h"

typedef struct ens_local_group_s ens_local_group_t;

/**
 * @brief A group of `devices` devices named <instance>-r<d> (as the serving loop registers
 *        them); starts devices - 1 threads. Set inf's partition with ens_local_group_hooks
 *        (rank 0 of `devices`) and its instance before loading plans.
 */
ens_err_t ens_local_group_new(int devices, const char *instance, ens_local_group_t **out,
                              char *errstr, size_t errstr_size);

/** @brief Stop the threads and free their engines (NULL is a no-op). */
void ens_local_group_free(ens_local_group_t *lg);

/** @brief Hooks for ens_inference_set_partition(inf, 0, devices, &hooks) (ctx = the group). */
ens_inference_hooks_t ens_local_group_hooks(ens_local_group_t *lg);

/**
 * @brief Load plan on every device: device 0 into inf, the others into their threads'
 *        engines. All or nothing: on failure the previous plan stays on every device.
 *        Call between batches (from the thread that runs inf).
 */
ens_err_t ens_local_group_load_plan(ens_local_group_t *lg, ens_inference_t *inf,
                                    ens_redis_t *r, const ens_placement_plan_t *plan,
                                    char *errstr, size_t errstr_size);

#endif
