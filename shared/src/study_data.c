/* study_data.c - cache of one study's train/validation split per process. */
#include "ensflow/study_data.h"

#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"

struct ens_study_data_s {
    char *spec;
    double val_fraction;
    uint64_t seed;
    ens_dataset_t *train, *val;
};

void ens_study_data_free(ens_study_data_t *c) {
    if (!c)
        return;
    free(c->spec);
    ens_dataset_free(c->train);
    ens_dataset_free(c->val);
    free(c);
}

ens_err_t ens_study_data_get(ens_study_data_t **cache, const char *spec, double val_fraction,
                             uint64_t seed, const ens_dataset_t **train,
                             const ens_dataset_t **val, char *errstr, size_t errstr_size) {
    ens_study_data_t *c = *cache;
    if (c && c->spec && strcmp(c->spec, spec) == 0 && c->val_fraction == val_fraction &&
        c->seed == seed) {
        *train = c->train;
        *val = c->val;
        return ENS_OK;
    }
    ens_study_data_free(c);
    *cache = NULL;
    if (!(c = calloc(1, sizeof *c)) || !(c->spec = strdup(spec))) {
        free(c);
        return ENS_ERR_NOMEM;
    }
    c->val_fraction = val_fraction;
    c->seed = seed;
    ens_dataset_t *all = NULL;
    ens_err_t err = ens_dataset_load(spec, ENS_DATA_TRAIN, &all, errstr, errstr_size);
    if (!err)
        err = ens_dataset_split(all, val_fraction, seed, &c->train, &c->val, errstr, errstr_size);
    ens_dataset_free(all);
    if (err) {
        ens_study_data_free(c);
        return err;
    }
    ENS_INFO("msg=\"data loaded\" dataset=%s train=%d val=%d dim=%d classes=%d", spec,
             c->train->n, c->val->n, c->train->dim, c->train->n_classes);
    *cache = c;
    *train = c->train;
    *val = c->val;
    return ENS_OK;
}
