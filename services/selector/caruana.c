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
    int *picks = calloc((size_t)rounds, sizeof *picks);
    int32_t *hits = calloc((size_t)rounds, sizeof *hits);
    ens_acc_t a;
    ens_err_t err =
        order && count && picks && hits ? ens_acc_init(&a, lib, d) : ENS_ERR_NOMEM;
    if (err) {
        free(order);
        free(count);
        free(picks);
        free(hits);
        return err;
    }
    err = ens_acc_caruana_path(&a, n_lib, order, rounds, count, picks, hits);
    /* the best ensemble seen (the first on ties): the first best rounds of the path */
    int best = 0;
    for (int r = 1; r < rounds; r++)
        if (hits[r] > hits[best])
            best = r;
    for (int m = 0; m < n_lib; m++)
        count[m] = 0;
    for (int r = 0; r <= best; r++)
        count[picks[r]]++;
    /* members in id order, weights = counts / total */
    int *idx = malloc((size_t)n_lib * sizeof *idx);
    double *w = malloc((size_t)n_lib * sizeof *w);
    int n = 0;
    if (!err && (!idx || !w))
        err = ENS_ERR_NOMEM;
    for (int s = 0; !err && s < n_lib; s++)
        if (count[order[s]]) {
            idx[n] = order[s];
            w[n++] = count[order[s]];
        }
    if (!err)
        err = ens_select_score(lib, idx, w, n, d, "caruana", out);
    free(idx);
    free(w);
    ens_acc_free(&a);
    free(order);
    free(count);
    free(picks);
    free(hits);
    return err;
}
