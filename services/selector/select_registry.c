/* select_registry.c - the four selection algorithms behind one interface, by name; above the
 * algorithms (caruana.c, mogreedy.c) and the helpers they share (select.c). */
#include <stdlib.h>
#include <string.h>

#include "select.h"

static ens_err_t one(ens_ensemble_t **out, int *n_out) {
    *out = calloc(1, sizeof **out);
    *n_out = 0;
    return *out ? ENS_OK : ENS_ERR_NOMEM;
}

static ens_err_t run_single(const ens_library_member_t *lib, int n_lib,
                            const ens_selection_data_t *d, const ens_select_opts_t *o,
                            ens_ensemble_t **out, int *n_out) {
    (void)o;
    ens_err_t err = one(out, n_out);
    if (!err && !(err = ens_select_single(lib, n_lib, d, *out)))
        *n_out = 1;
    return err;
}

static ens_err_t run_topk(const ens_library_member_t *lib, int n_lib,
                          const ens_selection_data_t *d, const ens_select_opts_t *o,
                          ens_ensemble_t **out, int *n_out) {
    ens_err_t err = one(out, n_out);
    if (!err && !(err = ens_select_topk(lib, n_lib, d, o && o->top_k > 0 ? o->top_k : 5, *out)))
        *n_out = 1;
    return err;
}

static ens_err_t run_caruana(const ens_library_member_t *lib, int n_lib,
                             const ens_selection_data_t *d, const ens_select_opts_t *o,
                             ens_ensemble_t **out, int *n_out) {
    ens_err_t err = one(out, n_out);
    if (!err && !(err = ens_select_caruana(lib, n_lib, d, o, *out)))
        *n_out = 1;
    return err;
}

static const ens_select_algo_t algos[] = {
    {/* .name = */ "mogreedy", /* .run = */ ens_select_mogreedy},
    {"caruana", run_caruana},
    {"topk", run_topk},
    {"single", run_single},
};

const ens_select_algo_t *ens_select_algos(int *n) {
    *n = (int)(sizeof algos / sizeof algos[0]);
    return algos;
}

const ens_select_algo_t *ens_select_algo(const char *name) {
    for (size_t i = 0; name && i < sizeof algos / sizeof algos[0]; i++)
        if (!strcmp(algos[i].name, name))
            return &algos[i];
    return NULL;
}

ens_err_t ens_select_run(const char *method, const ens_library_member_t *lib, int n_lib,
                         const ens_selection_data_t *d, const ens_select_opts_t *o,
                         ens_ensemble_t **out, int *n_out) {
    const ens_select_algo_t *a = ens_select_algo(method);
    *out = NULL;
    *n_out = 0;
    if (!a || n_lib < 1 || !d || d->n_sel < 1)
        return ENS_ERR_INVALID;
    ens_err_t err = a->run(lib, n_lib, d, o, out, n_out);
    if (err) {
        ens_select_ensembles_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
        return err;
    }
    for (int i = 0; i < *n_out; i++)
        ens_select_assign_id(&(*out)[i], n_lib);
    return ENS_OK;
}

