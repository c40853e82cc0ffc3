/* front.c - `ensflow front`: the study's ensembles, accuracy against cost. */
#include <stdio.h>

#include "cli.h"

static void print_front(const ens_ensemble_front_t *f) {
    printf("front of %s: %d ensembles from %d models\n", f->study_id, (int)f->n_ensembles,
           (int)f->n_models);
    printf("%-18s %-7s %7s %9s %9s %12s %10s\n", "ensemble", "method", "members", "val_acc",
           "hold_acc", "ms/sample", "memory_MB");
    for (int i = 0; i < f->n_ensembles; i++) {
        const ens_ensemble_t *e = &f->ensembles[i];
        printf("%-18s %-7s %7d %9.4f %9.4f %12.4f %10.2f\n", e->ensemble_id, e->method,
               (int)e->n_members, e->val_accuracy, e->holdout_accuracy, e->cost_ms_per_sample,
               (double)e->memory_bytes / 1e6);
    }
}

int cli_front(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = cli_conf("ensflow front", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "usage: ensflow front STUDY\n");
        ens_conf_free(conf);
        return 2;
    }
    ens_redis_t *r = cli_redis(conf);
    char key[256];
    ens_event_t ev;
    rc = 1;
    ens_key(key, sizeof key, ens_conf_positional(conf, 0), "front");
    if (r && cli_get_event(r, key, &ev, 0) == 0) {
        print_front(&ev.u.ensemble_front);
        ens_event_free(&ev);
        rc = 0;
    }
    ens_redis_free(r);
    ens_conf_free(conf);
    return rc;
}

