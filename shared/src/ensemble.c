/* ensemble.c - weighted probability averaging, accuracy and log-loss, choosing an ensemble. */
#include "ensflow/ensemble.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ens_ensemble_combine(const float *const *probs, const double *weights, int n_members,
                          int32_t n, int32_t k, float *out) {
    size_t total = (size_t)n * (size_t)k;
    double wsum = 0;
    for (int m = 0; m < n_members; m++)
        wsum += weights ? weights[m] : 1.0;
    memset(out, 0, total * sizeof *out);
    if (wsum <= 0)
        return;
    for (int m = 0; m < n_members; m++) {
        float w = (float)((weights ? weights[m] : 1.0) / wsum);
        const float *p = probs[m];
        for (size_t i = 0; i < total; i++)
            out[i] += w * p[i];
    }
}

int32_t ens_argmax(const float *p, int32_t k) {
    int32_t best = 0;
    for (int32_t c = 1; c < k; c++)
        if (p[c] > p[best])
            best = c;
    return best;
}

double ens_accuracy(const float *probs, const int32_t *labels, const int32_t *idx, int32_t n,
                    int32_t k) {
    if (n <= 0)
        return 0;
    int32_t hits = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t i = idx ? idx[j] : j;
        hits += ens_argmax(probs + (size_t)i * (size_t)k, k) == labels[i];
    }
    return (double)hits / n;
}

double ens_logloss(const float *probs, const int32_t *labels, const int32_t *idx, int32_t n,
                   int32_t k) {
    if (n <= 0)
        return 0;
    double sum = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t i = idx ? idx[j] : j;
        double p = probs[(size_t)i * (size_t)k + (size_t)labels[i]];
        sum -= log(p > 1e-7 ? p : 1e-7);
    }
    return sum / n;
}

/* Is a better than b under rule? (a total order: the id breaks every tie) ll: every ensemble
 * has its holdout log-loss. */
static int better(const ens_ensemble_t *a, const ens_ensemble_t *b, int rule, int ll) {
    int by_ll = ll && rule == ENS_CHOOSE_LOGLOSS;
    if (by_ll && a->holdout_logloss != b->holdout_logloss)
        return a->holdout_logloss < b->holdout_logloss;
    if (a->holdout_accuracy != b->holdout_accuracy)
        return a->holdout_accuracy > b->holdout_accuracy;
    if (ll && !by_ll && a->holdout_logloss != b->holdout_logloss)
        return a->holdout_logloss < b->holdout_logloss;
    if (by_ll && a->val_logloss != b->val_logloss)
        return a->val_logloss < b->val_logloss;
    if (!by_ll && a->val_accuracy != b->val_accuracy)
        return a->val_accuracy > b->val_accuracy;
    if (a->cost_ms_per_sample != b->cost_ms_per_sample)
        return a->cost_ms_per_sample < b->cost_ms_per_sample;
    return strcmp(a->ensemble_id, b->ensemble_id) < 0;
}

int ens_ensemble_choose(const ens_ensemble_t *e, int n, const ens_choose_t *c) {
    int rule = c && c->rule == ENS_CHOOSE_LOGLOSS ? ENS_CHOOSE_LOGLOSS : ENS_CHOOSE_ACCURACY;
    int ll = 1;
    for (int i = 0; i < n && ll; i++)
        if (!(e[i].holdout_logloss > 0)) /* 0: unknown (and NaN) */
            ll = 0;
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (c && ((c->max_cost_ms > 0 && e[i].cost_ms_per_sample > c->max_cost_ms) ||
                  (c->max_memory_bytes > 0 && e[i].memory_bytes > c->max_memory_bytes) ||
                  (c->min_accuracy > 0 && e[i].holdout_accuracy < c->min_accuracy)))
            continue;
        if (best < 0 || better(&e[i], &e[best], rule, ll))
            best = i;
    }
    return best;
}

ens_err_t ens_ensemble_choose_front(const ens_ensemble_front_t *front,
                                    const ens_deploy_command_t *cmd, int *index, char *errstr, size_t size) {
    if (front->n_ensembles < 1)
        return ens_err_set(errstr, size, ENS_ERR_NOTFOUND, "the front of %s is empty",
                           front->study_id);
    int cheapest = 0;
    for (int i = 1; i < front->n_ensembles; i++)
        if (front->ensembles[i].cost_ms_per_sample <
            front->ensembles[cheapest].cost_ms_per_sample)
            cheapest = i;
    int best = -1;
    if (cmd->ensemble_id[0]) {
        for (int i = 0; i < front->n_ensembles && best < 0; i++)
            if (!strcmp(cmd->ensemble_id, front->ensembles[i].ensemble_id))
                best = i;
    } else {
        ens_choose_t c = {cmd->max_cost_ms, cmd->max_memory_bytes, cmd->min_accuracy,
                          ENS_CHOOSE_ACCURACY};
        best = ens_ensemble_choose(front->ensembles, front->n_ensembles, &c);
    }
    if (best >= 0) {
        *index = best;
        return ENS_OK;
    }
    const ens_ensemble_t *c = &front->ensembles[cheapest];
    if (cmd->ensemble_id[0])
        return ens_err_set(errstr, size, ENS_ERR_NOTFOUND,
                           "no ensemble %s in the front of %s (cheapest: %s)", cmd->ensemble_id,
                           front->study_id, c->ensemble_id);
    return ens_err_set(errstr, size, ENS_ERR_NOTFOUND,
                       "no ensemble meets the constraints; the cheapest is %s at %.4f ms/sample, "
                       "%.1f MB, holdout accuracy %.4f",
                       c->ensemble_id, c->cost_ms_per_sample, (double)c->memory_bytes / 1e6,
                       c->holdout_accuracy);
}
