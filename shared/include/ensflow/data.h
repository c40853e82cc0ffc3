/* data.h - labelled data sets: IDX (gzip or not), CSV, fixed-seed train/validation split. */
#ifndef ENSFLOW_DATA_H
#define ENSFLOW_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"

/** A dense data set in memory: n samples of dim float features (row-major) and int labels. */
typedef struct {
    int32_t n;
    int32_t dim;        /**< features per sample (784 for 28x28 images) */
    int32_t height;     /**< image height, or 1 for tabular data */
    int32_t width;      /**< image width, or dim for tabular data */
    int32_t n_classes;  /**< max label + 1 */
    float *x;           /**< n*dim values; IDX pixels are scaled to [0,1] */
    int32_t *y;         /**< n labels in [0, n_classes) */
} ens_dataset_t;

/** Which file of a data set spec to read. */
typedef enum { ENS_DATA_TRAIN = 0, ENS_DATA_TEST = 1 } ens_data_part_t;

/**
 * @brief Load one part of a data set. spec is "fashion-mnist" (Debian's
 *        dataset-fashion-mnist files), a directory holding MNIST-style IDX files
 *        (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
 *        t10k-labels-idx1-ubyte, each optionally .gz), or a CSV file with the label in the
 *        first column (for CSV, ENS_DATA_TEST reads <file minus .csv>.test.csv when it exists,
 *        else fails with ENS_ERR_NOTFOUND).
 * @remark *out is malloc'd; free with ens_dataset_free.
 */
ens_err_t ens_dataset_load(const char *spec, ens_data_part_t part, ens_dataset_t **out,
                           char *errstr, size_t errstr_size);

/** @brief Read an IDX images file and its labels file (gzip or not). */
ens_err_t ens_dataset_load_idx(const char *images_path, const char *labels_path,
                               ens_dataset_t **out, char *errstr, size_t errstr_size);

/** @brief Read a CSV file: label first, then features; an optional non-numeric header row. */
ens_err_t ens_dataset_load_csv(const char *path, ens_dataset_t **out, char *errstr,
                               size_t errstr_size);

/**
 * @brief Split with a fixed seed: a seeded permutation, the first round(n*val_fraction)
 *        samples go to validation. Same inputs and seed give the same split everywhere.
 */
ens_err_t ens_dataset_split(const ens_dataset_t *all, double val_fraction, uint64_t seed,
                            ens_dataset_t **train, ens_dataset_t **val, char *errstr,
                            size_t errstr_size);

/** @brief A new data set of the rows idx[0..n) of src (copies). */
ens_err_t ens_dataset_subset(const ens_dataset_t *src, const int32_t *idx, int32_t n,
                             ens_dataset_t **out);

/** @brief Free. NULL is a no-op. */
void ens_dataset_free(ens_dataset_t *ds);

/** A small, fast, seedable generator (splitmix64 / xoshiro256**) used everywhere. */
typedef struct { uint64_t s[4]; } ens_rng_t;
void ens_rng_seed(ens_rng_t *rng, uint64_t seed);
uint64_t ens_rng_next(ens_rng_t *rng);
double ens_rng_uniform(ens_rng_t *rng);        /**< [0, 1) */
double ens_rng_normal(ens_rng_t *rng);         /**< N(0, 1) */
void ens_rng_shuffle(ens_rng_t *rng, int32_t *a, int32_t n);

#endif
