/* caruana.c - Caruana et al. (2004) forward ensemble selection with replacement, best seen. */
#include <stdlib.h>

#include "select.h"
#include "select_acc.h"

ens_err_t ens_select_caruana(const ens_library_member_t *lib, int n_lib,
                             const ens_selection_data_t *d, const ens_select_opts_t *o,
                             ens_ensemble_t *out) {
    if (n_lib < 1 || d->n_sel < 1)
        return ENS_ERR_INVALID;
    int rounds = o && o->max_iter > 0 ? o->max_iter : 50;
    int *order = ens_acc_order_by_id(lib, n_lib);
    int *count = calloc((size_t)n_lib, sizeof *count);
    int *best_count = calloc((size_t)n_lib, sizeof *best_count);
    ens_acc_t a;
    ens_err_t err = order && count && best_count ? ens_acc_init(&a, lib, d) : ENS_ERR_NOMEM;
    if (err) {
        free(order);
        free(count);
        free(best_count);
        return err;
    }
    int32_t best_hits = -1;
    ens_acc_prepare(&a);
    for (int r = 0; r < rounds; r++) {
        int pick = -1;
        int32_t pick_hits = -1;
        double pick_cost = 0;
        for (int s = 0; s < n_lib; s++) { /* in id order: the first of equals wins */
            int m = order[s];
            int32_t h = ens_acc_try(&a, m);
            double added = count[m] ? 0 : lib[m].ms_per_sample;
            if (h > pick_hits || (h == pick_hits && added < pick_cost)) {
                pick = m;
                pick_hits = h;
                pick_cost = added;
            }
        }
        count[pick]++;
        ens_acc_add(&a, pick, 1);
        int32_t hits = ens_acc_prepare(&a);
        if (hits > best_hits) {
            best_hits = hits;
            for (int m = 0; m < n_lib; m++)
                best_count[m] = count[m];
        }
    }
    /* members in id order, weights = counts / total */
    int *idx = malloc((size_t)n_lib * sizeof *idx);
    double *w = malloc((size_t)n_lib * sizeof *w);
    int n = 0;
    if (!idx || !w)
        err = ENS_ERR_NOMEM;
    for (int s = 0; !err && s < n_lib; s++)
        if (best_count[order[s]]) {
            idx[n] = order[s];
            w[n++] = best_count[order[s]];
        }
    if (!err)
        err = ens_select_score(lib, idx, w, n, d, "caruana", out);
    free(idx);
    free(w);
    ens_acc_free(&a);
    free(order);
    free(count);
    free(best_count);
    return err;
}
