/* select.c - what the selection algorithms share: the validation halves, scoring, single-best
 * and top-K, ensemble ids, freeing, and the stored probabilities decoded. */
#include "select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/ensemble.h"
#include "ensflow/state.h"

ens_err_t ens_select_halves(int32_t n, int32_t **sel, int32_t *n_sel, int32_t **hold,
                            int32_t *n_hold) {
    *n_sel = (n + 1) / 2;
    *n_hold = n / 2;
    *sel = malloc(((size_t)*n_sel + 1) * sizeof **sel);
    *hold = malloc(((size_t)*n_hold + 1) * sizeof **hold);
    if (!*sel || !*hold) {
        free(*sel);
        free(*hold);
        return ENS_ERR_NOMEM;
    }
    for (int32_t i = 0; i < n; i++)
        (i % 2 ? *hold : *sel)[i / 2] = i;
    return ENS_OK;
}

ens_err_t ens_select_score(const ens_library_member_t *lib, const int *idx, const double *weights,
                           int m, const ens_selection_data_t *d, const char *method,
                           ens_ensemble_t *out) {
    memset(out, 0, sizeof *out);
    const float **probs = malloc((size_t)m * sizeof *probs);
    float *avg = malloc((size_t)d->n * (size_t)d->k * sizeof *avg);
    out->members = calloc((size_t)m, sizeof *out->members);
    out->weights = calloc((size_t)m, sizeof *out->weights);
    if (!probs || !avg || !out->members || !out->weights) {
        free(probs);
        free(avg);
        free(out->members);
        free(out->weights);
        out->members = NULL;
        out->weights = NULL;
        return ENS_ERR_NOMEM;
    }
    double wsum = 0;
    for (int j = 0; j < m; j++)
        wsum += weights ? weights[j] : 1.0;
    for (int j = 0; j < m; j++) {
        const ens_library_member_t *x = &lib[idx[j]];
        probs[j] = x->probs;
        snprintf(out->members[j], ENS_ID_MAX, "%s", x->model_id);
        out->weights[j] = (weights ? weights[j] : 1.0) / wsum;
        out->cost_ms_per_sample += x->ms_per_sample;
        out->memory_bytes += x->memory_bytes;
    }
    out->n_members = m;
    snprintf(out->method, sizeof out->method, "%s", method);
    ens_ensemble_combine(probs, out->weights, m, d->n, d->k, avg);
    out->val_accuracy = ens_accuracy(avg, d->labels, d->sel_idx, d->n_sel, d->k);
    out->holdout_accuracy = ens_accuracy(avg, d->labels, d->hold_idx, d->n_hold, d->k);
    out->val_logloss = ens_logloss(avg, d->labels, d->sel_idx, d->n_sel, d->k);
    out->holdout_logloss = ens_logloss(avg, d->labels, d->hold_idx, d->n_hold, d->k);
    free(probs);
    free(avg);
    return ENS_OK;
}

typedef struct {
    int index;
    double acc;
    const ens_library_member_t *m;
} ranked_t;

static int by_accuracy(const void *a, const void *b) {
    const ranked_t *x = a, *y = b;
    if (x->acc != y->acc)
        return x->acc > y->acc ? -1 : 1;
    if (x->m->ms_per_sample != y->m->ms_per_sample)
        return x->m->ms_per_sample < y->m->ms_per_sample ? -1 : 1;
    return strcmp(x->m->model_id, y->m->model_id);
}

/* Library indices sorted by selection accuracy, best first. */
static int *rank(const ens_library_member_t *lib, int n_lib, const ens_selection_data_t *d) {
    ranked_t *r = malloc((size_t)n_lib * sizeof *r);
    int *order = malloc((size_t)n_lib * sizeof *order);
    if (!r || !order) {
        free(r);
        free(order);
        return NULL;
    }
    for (int i = 0; i < n_lib; i++)
        r[i] = (ranked_t){i, ens_accuracy(lib[i].probs, d->labels, d->sel_idx, d->n_sel, d->k),
                          &lib[i]};
    qsort(r, (size_t)n_lib, sizeof *r, by_accuracy);
    for (int i = 0; i < n_lib; i++)
        order[i] = r[i].index;
    free(r);
    return order;
}

ens_err_t ens_select_topk(const ens_library_member_t *lib, int n_lib,
                          const ens_selection_data_t *d, int top_k, ens_ensemble_t *out) {
    if (n_lib < 1 || top_k < 1)
        return ENS_ERR_INVALID;
    int *order = rank(lib, n_lib, d);
    if (!order)
        return ENS_ERR_NOMEM;
    int m = top_k < n_lib ? top_k : n_lib;
    ens_err_t err = ens_select_score(lib, order, NULL, m, d, m == 1 ? "single" : "topk", out);
    free(order);
    return err;
}

ens_err_t ens_select_single(const ens_library_member_t *lib, int n_lib,
                            const ens_selection_data_t *d, ens_ensemble_t *out) {
    return ens_select_topk(lib, n_lib, d, 1, out);
}

ens_select_criterion_t ens_select_criterion(const ens_select_opts_t *o) {
    return o && o->criterion == ENS_SELECT_ACCURACY ? ENS_SELECT_ACCURACY : ENS_SELECT_LOGLOSS;
}

void ens_select_ensembles_free(ens_ensemble_t *e, int n) {
    if (!e)
        return;
    for (int i = 0; i < n; i++) {
        free(e[i].members);
        free(e[i].weights);
    }
    free(e);
}

void ens_select_assign_id(ens_ensemble_t *e, int n_lib) {
    if (!strcmp(e->method, "single") || !strcmp(e->method, "topk")) {
        snprintf(e->ensemble_id, ENS_ID_MAX, "%s%d-n%d", e->method, (int)e->n_members, n_lib);
        return;
    }
    /* FNV-1a over "id:weight;" (weights printed to 6 digits, stable across platforms) */
    uint32_t h = 2166136261u;
    char buf[ENS_ID_MAX + 32];
    for (int i = 0; i < e->n_members; i++) {
        int len = snprintf(buf, sizeof buf, "%s:%.6f;", e->members[i], e->weights[i]);
        for (int j = 0; j < len && j < (int)sizeof buf; j++)
            h = (h ^ (uint8_t)buf[j]) * 16777619u;
    }
    snprintf(e->ensemble_id, ENS_ID_MAX, "%.31s%d-%08x", e->method, (int)e->n_members, h);
}

void ens_select_f16_decode(const uint16_t *in, size_t n, float *out) {
    ens_state_f16_decode(in, n, out);
}
