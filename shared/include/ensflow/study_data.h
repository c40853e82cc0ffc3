/* study_data.h - a study's train/validation split, loaded once per process and cached. */
#ifndef ENSFLOW_STUDY_DATA_H
#define ENSFLOW_STUDY_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/data.h"
#include "ensflow/err.h"

typedef struct ens_study_data_s ens_study_data_t;

/**
 * @brief The split of the training file of spec (fixed seed, val_fraction held out), loading
 *        it unless the cache already holds the same (spec, val_fraction, seed).
 * @remark *cache is created on first use; the data sets stay owned by the cache.
 */
ens_err_t ens_study_data_get(ens_study_data_t **cache, const char *spec, double val_fraction,
                             uint64_t seed, const ens_dataset_t **train,
                             const ens_dataset_t **val, char *errstr, size_t errstr_size);

/** @brief Free. NULL is a no-op. */
void ens_study_data_free(ens_study_data_t *cache);

#endif
