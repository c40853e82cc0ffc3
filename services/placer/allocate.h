/* allocate.h - the allocation optimiser: which device runs how many instances of which model
 * at which batch size (worst-fit decreasing by memory, then greedy bottleneck improvement;
 * after Pochelu et al., arXiv 2208.14049). */
#ifndef ENSFLOW_ALLOCATE_H
#define ENSFLOW_ALLOCATE_H

#include <stdint.h>

#include "ensflow/err.h"

#define ENS_ALLOC_BATCHES 4 /* the batch sizes of a cost profile: 1, 8, 32, 128 */
extern const int32_t ens_alloc_batch_sizes[ENS_ALLOC_BATCHES];

/** One ensemble member: measured time per sample at each profiled batch size, and memory. */
typedef struct {
    const char *model_id;
    double ms_per_sample[ENS_ALLOC_BATCHES]; /**< <= 0 where not measured */
    int64_t weights_bytes;                   /**< per instance, batch independent */
    int64_t activation_bytes_per_sample;     /**< per instance, grows with the batch */
} ens_alloc_model_t;

/** One device (a GPU, or a CPU slot: a set of cores) from the registry. */
typedef struct {
    const char *device_id;
    int64_t memory_bytes;
    double speed; /**< relative to the device kind the costs were measured on (1 = same) */
    double overhead_ms; /**< serving CPU per ensemble sample on this device outside the
                             members' work (its group's measured share; 0 = none) */
    int speed_measured; /**< speed is what the device's group measured while serving: it
                             then holds the overhead too, which is not added again */
} ens_alloc_device_t;

/** The allocation matrix: cell (d, m) holds instances and their batch size. */
typedef struct {
    int n_devices, n_models;
    int32_t *instances;  /**< n_devices x n_models */
    int32_t *batch_idx;  /**< index into ens_alloc_batch_sizes, per cell */
    double throughput;   /**< predicted ensemble samples per second */
    int bottleneck;      /**< the device that limits it */
} ens_alloc_t;

/**
 * @brief Predicted throughput of an allocation: every sample visits every model; a model's
 *        samples are shared by its instances in proportion to their speed; a device is busy
 *        for the sum of its instances' work plus its share of the group's serving overhead
 *        (overhead_ms: every sample passes its group once; not where speed_measured), so
 *        throughput = 1 / max device load.
 *        Also sets a->bottleneck. Returns 0 when some model has no instance.
 */
double ens_alloc_predict(ens_alloc_t *a, const ens_alloc_model_t *models,
                         const ens_alloc_device_t *devices);

/**
 * @brief Each device's compute load (seconds per ensemble sample on its members' work, no
 *        serving overhead) into compute_s[n_devices]. Returns 0 when some model has no
 *        instance (compute_s then unset).
 */
int ens_alloc_loads(const ens_alloc_t *a, const ens_alloc_model_t *models,
                    const ens_alloc_device_t *devices, double *compute_s);

/**
 * @brief Place the models: worst-fit decreasing by memory for a feasible start (one instance
 *        each), then, while predicted throughput rises, the best of: add an instance of a
 *        bottleneck model elsewhere, move an instance off the bottleneck device, change a
 *        batch size on it. Deterministic. Memory is never exceeded.
 * @return ENS_OK; ENS_ERR_INVALID with errstr naming the model that fits nowhere.
 * @remark a's arrays are malloc'd; free with ens_alloc_free.
 */
ens_err_t ens_alloc_optimise(const ens_alloc_model_t *models, int n_models,
                             const ens_alloc_device_t *devices, int n_devices, int max_steps,
                             ens_alloc_t *a, char *errstr, size_t errstr_size);

/** @brief The naive baseline of the paper: every model once, on the first device, one after
 *         another, each at its best batch size. */
ens_err_t ens_alloc_baseline(const ens_alloc_model_t *models, int n_models,
                             const ens_alloc_device_t *devices, int n_devices, ens_alloc_t *a);

/** @brief Memory used on device d. */
int64_t ens_alloc_memory_used(const ens_alloc_t *a, const ens_alloc_model_t *models, int d);

void ens_alloc_free(ens_alloc_t *a);

#endif
