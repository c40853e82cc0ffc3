/* allocate.c - worst-fit decreasing placement, then greedy improvement of the bottleneck. */
#include "allocate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int32_t ens_alloc_batch_sizes[ENS_ALLOC_BATCHES] = {1, 8, 32, 128};

#define CELL(a, d, m) ((size_t)(d) * (size_t)(a)->n_models + (size_t)(m))

static int64_t instance_bytes(const ens_alloc_model_t *m, int b) {
    return m->weights_bytes + m->activation_bytes_per_sample * ens_alloc_batch_sizes[b];
}

/* samples per second of one instance running alone, or 0 when b was not measured */
static double rate(const ens_alloc_model_t *m, const ens_alloc_device_t *d, int b) {
    double ms = m->ms_per_sample[b];
    return ms > 0 ? 1000.0 * (d->speed > 0 ? d->speed : 1.0) / ms : 0;
}

int64_t ens_alloc_memory_used(const ens_alloc_t *a, const ens_alloc_model_t *models, int d) {
    int64_t used = 0;
    for (int m = 0; m < a->n_models; m++)
        used += a->instances[CELL(a, d, m)] * instance_bytes(&models[m], a->batch_idx[CELL(a, d, m)]);
    return used;
}

/* A device's serving overhead as the prediction counts it: none where its group measured
 * its speed, since the measured speed already holds the time the group's I/O took from the
 * device's cores. */
static double overhead_s(const ens_alloc_device_t *d) {
    return d->speed_measured || d->overhead_ms <= 0 ? 0 : d->overhead_ms / 1e3;
}

int ens_alloc_loads(const ens_alloc_t *a, const ens_alloc_model_t *models,
                    const ens_alloc_device_t *devices, double *compute_s) {
    /* S_m: the samples per second all instances of m manage together. A device spends
     * n/S_m seconds per ensemble sample on the n instances of m it holds (each handles the
     * share n*rate/S_m at 1/rate seconds a sample), so its load is the sum of n/S_m. */
    double *s = calloc((size_t)a->n_models, sizeof *s);
    if (!s)
        return 0;
    for (int d = 0; d < a->n_devices; d++)
        for (int m = 0; m < a->n_models; m++)
            s[m] += a->instances[CELL(a, d, m)] *
                    rate(&models[m], &devices[d], a->batch_idx[CELL(a, d, m)]);
    int ok = 1;
    for (int m = 0; m < a->n_models; m++)
        ok &= s[m] > 0;
    for (int d = 0; ok && d < a->n_devices; d++) {
        compute_s[d] = 0;
        for (int m = 0; m < a->n_models; m++)
            compute_s[d] += a->instances[CELL(a, d, m)] / s[m];
    }
    free(s);
    return ok;
}

double ens_alloc_predict(ens_alloc_t *a, const ens_alloc_model_t *models,
                         const ens_alloc_device_t *devices) {
    double *load = calloc((size_t)a->n_devices, sizeof *load), worst = 0;
    a->bottleneck = 0;
    a->throughput = 0;
    if (!load || !ens_alloc_loads(a, models, devices, load)) {
        free(load);
        return 0;
    }
    for (int d = 0; d < a->n_devices; d++) {
        load[d] += overhead_s(&devices[d]);
        if (load[d] > worst) {
            worst = load[d];
            a->bottleneck = d;
        }
    }
    free(load);
    a->throughput = worst > 0 ? 1.0 / worst : 0;
    return a->throughput;
}

static ens_err_t alloc_new(ens_alloc_t *a, int n_devices, int n_models) {
    memset(a, 0, sizeof *a);
    a->n_devices = n_devices;
    a->n_models = n_models;
    a->instances = calloc((size_t)n_devices * (size_t)n_models, sizeof *a->instances);
    a->batch_idx = calloc((size_t)n_devices * (size_t)n_models, sizeof *a->batch_idx);
    if (!a->instances || !a->batch_idx) {
        ens_alloc_free(a);
        return ENS_ERR_NOMEM;
    }
    return ENS_OK;
}

void ens_alloc_free(ens_alloc_t *a) {
    if (!a)
        return;
    free(a->instances);
    free(a->batch_idx);
    a->instances = a->batch_idx = NULL;
}

/* The fastest measured batch whose instance fits in `free_bytes`, or -1. */
static int best_batch(const ens_alloc_model_t *m, const ens_alloc_device_t *d, int64_t free_bytes) {
    int best = -1;
    for (int b = 0; b < ENS_ALLOC_BATCHES; b++)
        if (rate(m, d, b) > 0 && instance_bytes(m, b) <= free_bytes &&
            (best < 0 || rate(m, d, b) > rate(m, d, best)))
            best = b;
    return best;
}

ens_err_t ens_alloc_baseline(const ens_alloc_model_t *models, int n_models,
                             const ens_alloc_device_t *devices, int n_devices, ens_alloc_t *a) {
    if (n_models < 1 || n_devices < 1)
        return ENS_ERR_INVALID;
    ens_err_t err = alloc_new(a, n_devices, n_models);
    if (err)
        return err;
    for (int m = 0; m < n_models; m++) {
        int b = best_batch(&models[m], &devices[0], INT64_MAX);
        a->instances[CELL(a, 0, m)] = 1;
        a->batch_idx[CELL(a, 0, m)] = b < 0 ? 0 : b;
    }
    ens_alloc_predict(a, models, devices);
    return ENS_OK;
}

typedef struct {
    int index;
    int64_t bytes;
} by_mem_t;

static int cmp_mem(const void *x, const void *y) {
    const by_mem_t *p = x, *q = y;
    if (p->bytes != q->bytes)
        return p->bytes > q->bytes ? -1 : 1;
    return p->index - q->index;
}

/* Worst-fit decreasing: largest model first, onto the device with the most free memory. */
static ens_err_t worst_fit(const ens_alloc_model_t *models, const ens_alloc_device_t *devices,
                           ens_alloc_t *a, char *errstr, size_t errstr_size) {
    by_mem_t *order = malloc((size_t)a->n_models * sizeof *order);
    if (!order)
        return ENS_ERR_NOMEM;
    for (int m = 0; m < a->n_models; m++)
        order[m] = (by_mem_t){m, instance_bytes(&models[m], 0)};
    qsort(order, (size_t)a->n_models, sizeof *order, cmp_mem);
    ens_err_t err = ENS_OK;
    for (int i = 0; i < a->n_models && !err; i++) {
        int m = order[i].index, best_d = -1;
        int64_t best_free = -1;
        for (int d = 0; d < a->n_devices; d++) {
            int64_t free_bytes = devices[d].memory_bytes - ens_alloc_memory_used(a, models, d);
            if (free_bytes > best_free) {
                best_free = free_bytes;
                best_d = d;
            }
        }
        int b = best_batch(&models[m], &devices[best_d], best_free);
        if (b < 0) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "model %s does not fit: it needs %.1f MB at batch 1 and the most "
                              "free memory is %.1f MB on %s",
                              models[m].model_id, (double)instance_bytes(&models[m], 0) / 1e6,
                              (double)best_free / 1e6, devices[best_d].device_id);
            break;
        }
        a->instances[CELL(a, best_d, m)] = 1;
        a->batch_idx[CELL(a, best_d, m)] = b;
    }
    free(order);
    return err;
}

static void reset(ens_alloc_t *trial, const ens_alloc_t *cur) {
    size_t cells = (size_t)cur->n_devices * (size_t)cur->n_models;
    memcpy(trial->instances, cur->instances, cells * sizeof *trial->instances);
    memcpy(trial->batch_idx, cur->batch_idx, cells * sizeof *trial->batch_idx);
}

/* Try the change made on trial; keep it in `best` when it predicts more than best does; then
 * set trial back to cur. */
static void consider(const ens_alloc_t *cur, ens_alloc_t *trial, ens_alloc_t *best,
                     const ens_alloc_model_t *models, const ens_alloc_device_t *devices) {
    for (int d = 0; d < trial->n_devices; d++)
        if (ens_alloc_memory_used(trial, models, d) > devices[d].memory_bytes)
            goto restore;
    if (ens_alloc_predict(trial, models, devices) > best->throughput * (1 + 1e-9)) {
        size_t cells = (size_t)cur->n_devices * (size_t)cur->n_models;
        memcpy(best->instances, trial->instances, cells * sizeof *best->instances);
        memcpy(best->batch_idx, trial->batch_idx, cells * sizeof *best->batch_idx);
        best->throughput = trial->throughput;
        best->bottleneck = trial->bottleneck;
    }
restore:
    reset(trial, cur);
}

/* Give cell (d, m) one more instance; an empty cell takes the fastest batch that fits. */
static int add_instance(ens_alloc_t *t, const ens_alloc_model_t *models,
                        const ens_alloc_device_t *devices, int d, int m) {
    size_t c = CELL(t, d, m);
    if (t->instances[c] == 0) {
        int64_t free_bytes = devices[d].memory_bytes - ens_alloc_memory_used(t, models, d);
        int b = best_batch(&models[m], &devices[d], free_bytes);
        if (b < 0)
            return 0;
        t->batch_idx[c] = b;
    }
    t->instances[c]++;
    return 1;
}

ens_err_t ens_alloc_optimise(const ens_alloc_model_t *models, int n_models,
                             const ens_alloc_device_t *devices, int n_devices, int max_steps,
                             ens_alloc_t *a, char *errstr, size_t errstr_size) {
    if (n_models < 1 || n_devices < 1)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "nothing to place: %d models on %d devices", n_models, n_devices);
    ens_err_t err = alloc_new(a, n_devices, n_models);
    if (!err)
        err = worst_fit(models, devices, a, errstr, errstr_size);
    ens_alloc_t trial = {0}, best = {0};
    if (!err)
        err = alloc_new(&trial, n_devices, n_models);
    if (!err)
        err = alloc_new(&best, n_devices, n_models);
    if (err) {
        ens_alloc_free(a);
        ens_alloc_free(&trial);
        ens_alloc_free(&best);
        return err;
    }
    size_t cells = (size_t)n_devices * (size_t)n_models;
    ens_alloc_predict(a, models, devices);
    for (int step = 0; step < max_steps; step++) {
        memcpy(trial.instances, a->instances, cells * sizeof *trial.instances);
        memcpy(trial.batch_idx, a->batch_idx, cells * sizeof *trial.batch_idx);
        memcpy(best.instances, a->instances, cells * sizeof *best.instances);
        memcpy(best.batch_idx, a->batch_idx, cells * sizeof *best.batch_idx);
        best.throughput = a->throughput;
        int bn = a->bottleneck;
        for (int m = 0; m < n_models; m++) {
            size_t c = CELL(a, bn, m);
            if (a->instances[c] == 0)
                continue;
            for (int d = 0; d < n_devices; d++) {
                if (d == bn)
                    continue;
                if (add_instance(&trial, models, devices, d, m)) /* add one elsewhere */
                    consider(a, &trial, &best, models, devices);
                else
                    reset(&trial, a);
                trial.instances[c]--; /* move one from the bottleneck */
                if (trial.instances[c] == 0)
                    trial.batch_idx[c] = 0;
                if (add_instance(&trial, models, devices, d, m))
                    consider(a, &trial, &best, models, devices);
                else
                    reset(&trial, a);
            }
            for (int b = 0; b < ENS_ALLOC_BATCHES; b++) /* another batch size */
                if (b != a->batch_idx[c] && models[m].ms_per_sample[b] > 0) {
                    trial.batch_idx[c] = b;
                    consider(a, &trial, &best, models, devices);
                }
        }
        if (!(best.throughput > a->throughput * (1 + 1e-9)))
            break;
        memcpy(a->instances, best.instances, cells * sizeof *a->instances);
        memcpy(a->batch_idx, best.batch_idx, cells * sizeof *a->batch_idx);
        ens_alloc_predict(a, models, devices);
    }
    ens_alloc_free(&trial);
    ens_alloc_free(&best);
    return ENS_OK;
}
