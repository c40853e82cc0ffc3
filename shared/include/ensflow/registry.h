/* registry.h - the device registry in Redis: inference workers announce their devices with a
 * heartbeat; the placer reads the live ones. Services go through the state layer
 * (ens_state_device_put, _list, _remove in state.h), whose Redis implementation calls the
 * functions below (shared/src/state/registry.c, where the keys are spelled). */
#ifndef ENSFLOW_REGISTRY_H
#define ENSFLOW_REGISTRY_H

#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/events.h"
#include "ensflow/store.h"

/** A device: a GPU, or a CPU slot (a set of cores). */
typedef struct {
    char device_id[ENS_ID_MAX]; /**< e.g. "cpu-0", "gpu-1" */
    char kind[8];               /**< "cpu" or "gpu" */
    char worker[ENS_ID_MAX];    /**< the inference worker that owns it */
    int64_t memory_bytes;
    int32_t cores;
    /** this device's share of its group's serving CPU per request outside the prediction
     *  (batching, decoding, Kafka I/O), as the group measured it; 0 = not measured yet */
    double overhead_ms;
    /** the device's speed as its group measured it while serving: the compute time the
     *  profiles give for the plan it ran over the time the group took (wall clock, so what
     *  shares the cores, the group's own I/O included, counts); 0 = not measured yet */
    double speed;
} ens_device_t;

/**
 * @brief Announce (or refresh) a device: HSET ens:device:<id> with an expiry of ttl_seconds,
 *        and ZADD ens:devices <now> <id>. A device whose worker stops refreshing disappears.
 */
ens_err_t ens_registry_heartbeat(ens_redis_t *r, const ens_device_t *d, int ttl_seconds,
                                 char *errstr, size_t errstr_size);

/**
 * @brief The live devices, sorted by id (deterministic for the placer). Entries whose hash
 *        has expired are dropped from the index on the way.
 * @remark *devices is malloc'd (NULL when none); the caller frees it.
 */
ens_err_t ens_registry_list(ens_redis_t *r, ens_device_t **devices, int *n, char *errstr,
                            size_t errstr_size);

/** @brief Remove a device at once (a worker shutting down cleanly). */
ens_err_t ens_registry_remove(ens_redis_t *r, const char *device_id, char *errstr,
                              size_t errstr_size);

#endif
