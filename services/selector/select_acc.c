/* select_acc.c - summed selection-half probabilities and the unsure-row accuracy kernel. */
#include "select_acc.h"

#include <stdlib.h>
#include <string.h>

ens_err_t ens_acc_init(ens_acc_t *a, const ens_library_member_t *lib,
                       const ens_selection_data_t *d) {
    memset(a, 0, sizeof *a);
    a->lib = lib;
    a->d = d;
    a->sum = calloc((size_t)d->n_sel * (size_t)d->k + 1, sizeof *a->sum);
    a->unsure = malloc(((size_t)d->n_sel + 1) * sizeof *a->unsure);
    if (!a->sum || !a->unsure) {
        ens_acc_free(a);
        return ENS_ERR_NOMEM;
    }
    return ENS_OK;
}

void ens_acc_free(ens_acc_t *a) {
    free(a->sum);
    free(a->unsure);
    a->sum = NULL;
    a->unsure = NULL;
}

void ens_acc_reset(ens_acc_t *a) {
    memset(a->sum, 0, (size_t)a->d->n_sel * (size_t)a->d->k * sizeof *a->sum);
    a->total = 0;
}

void ens_acc_add(ens_acc_t *a, int m, int count) {
    const int32_t k = a->d->k;
    const float *p = a->lib[m].probs;
    const float w = (float)count;
    for (int32_t j = 0; j < a->d->n_sel; j++) {
        float *s = a->sum + (size_t)j * (size_t)k;
        const float *q = p + (size_t)a->d->sel_idx[j] * (size_t)k;
        for (int32_t c = 0; c < k; c++)
            s[c] += w * q[c];
    }
    a->total += count;
}

int32_t ens_acc_prepare(ens_acc_t *a) {
    const int32_t k = a->d->k;
    int32_t hits = 0;
    a->n_unsure = 0;
    a->sure_hits = 0;
    for (int32_t j = 0; j < a->d->n_sel; j++) {
        const float *s = a->sum + (size_t)j * (size_t)k;
        int32_t best = 0;
        for (int32_t c = 1; c < k; c++)
            if (s[c] > s[best])
                best = c;
        float second = -1.0f;
        for (int32_t c = 0; c < k; c++)
            if (c != best && s[c] > second)
                second = s[c];
        int hit = best == a->d->labels[a->d->sel_idx[j]];
        hits += hit;
        /* 1.001: a margin for float rounding of the sums */
        if (k > 1 && s[best] - second <= 1.001f)
            a->unsure[a->n_unsure++] = j;
        else
            a->sure_hits += hit;
    }
    return hits;
}

int32_t ens_acc_try(const ens_acc_t *a, int m) {
    const int32_t k = a->d->k;
    const float *p = a->lib[m].probs;
    const int32_t *sel = a->d->sel_idx, *labels = a->d->labels;
    int32_t hits = a->sure_hits;
    for (int32_t u = 0; u < a->n_unsure; u++) {
        int32_t j = a->unsure[u], i = sel[j];
        const float *s = a->sum + (size_t)j * (size_t)k;
        const float *q = p + (size_t)i * (size_t)k;
        int32_t best = 0;
        float bv = s[0] + q[0];
        for (int32_t c = 1; c < k; c++) {
            float v = s[c] + q[c];
            if (v > bv) {
                bv = v;
                best = c;
            }
        }
        hits += best == labels[i];
    }
    return hits;
}

typedef struct {
    const char *id;
    int index;
} keyed_t;

static int by_id(const void *x, const void *y) {
    const keyed_t *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

int *ens_acc_order_by_id(const ens_library_member_t *lib, int n_lib) {
    int *order = malloc(((size_t)n_lib + 1) * sizeof *order);
    keyed_t *keys = malloc(((size_t)n_lib + 1) * sizeof *keys);
    if (!order || !keys) {
        free(order);
        free(keys);
        return NULL;
    }
    for (int i = 0; i < n_lib; i++)
        keys[i] = (keyed_t){lib[i].model_id, i};
    qsort(keys, (size_t)n_lib, sizeof *keys, by_id);
    for (int i = 0; i < n_lib; i++)
        order[i] = keys[i].index;
    free(keys);
    return order;
}
