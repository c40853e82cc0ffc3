/* front_test.c - every ensemble of a study's front scored on the test set, offline: which one
 * each pick rule takes and what it would have served.
 *
 * usage: front_test --redis-url URL --models DIR --study S [--dataset D] [--json FILE]
 *
 * Loads the study's front from Redis and each member model from the model store (DIR, the
 * stack's model store), predicts the test part of D (default fashion-mnist) once per model,
 * and combines each ensemble's predictions with its weights, as the inference service does.
 * Prints one row per ensemble (holdout accuracy and log-loss, the figures the pick sees; test
 * accuracy, which it does not) and the ensemble each rule of ens_ensemble_choose takes.
 * tests/bench/quality runs it on its study before taking the stack down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "ensflow/models.h"
#include "ensflow/nn.h"
#include "ensflow/redis.h"
#include "ensflow/state.h"
#include "ensflow/state_studies.h"

typedef struct {
    char id[128];
    float *probs; /* test rows x classes; NULL when the model did not load */
} scored_t;

static int usage(const char *why) {
    fprintf(stderr, "front_test: %s\nusage: front_test --redis-url URL --models DIR --study S "
                    "[--dataset D] [--json FILE]\n", why);
    return 2;
}

/* Test predictions of model id, loaded from the store once (cache of n entries). */
static const float *model_probs(scored_t *cache, int *n, const char *id, ens_state_t *st,
                                ens_models_t *ms, const char *study, const ens_dataset_t *test) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(cache[i].id, id))
            return cache[i].probs;
    scored_t *s = &cache[(*n)++];
    snprintf(s->id, sizeof s->id, "%s", id);
    char name[256], errstr[512] = "";
    snprintf(name, sizeof name, "model:%s", id);
    void *blob = NULL;
    size_t len = 0;
    ens_model_t *m = NULL;
    s->probs = malloc((size_t)test->n * (size_t)test->n_classes * sizeof *s->probs);
    if (!s->probs || ens_state_model_file_get(st, ms, study, name, &blob, &len, errstr,
                                              sizeof errstr) ||
        ens_model_load(blob, len, &m, errstr, sizeof errstr) ||
        ens_model_n_classes(m) != test->n_classes ||
        ens_model_predict(m, test->x, test->n, s->probs)) {
        fprintf(stderr, "front_test: model %s: %s\n", id, errstr[0] ? errstr : "not scored");
        free(s->probs);
        s->probs = NULL;
    }
    ens_model_free(m);
    free(blob);
    return s->probs;
}

int main(int argc, char **argv) {
    const char *url = NULL, *dir = NULL, *study = NULL, *dataset = "fashion-mnist", *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char **opt = !strcmp(argv[i], "--redis-url") ? &url
                           : !strcmp(argv[i], "--models")  ? &dir
                           : !strcmp(argv[i], "--study")   ? &study
                           : !strcmp(argv[i], "--dataset") ? &dataset
                           : !strcmp(argv[i], "--json")    ? &json
                                                           : NULL;
        if (!opt)
            return usage("unknown argument");
        if (i + 1 >= argc)
            return usage("an option lacks its value");
        *opt = argv[++i];
    }
    if (!url || !dir || !study)
        return usage("--redis-url, --models and --study are required");

    char errstr[512] = "";
    ens_redis_t *r = NULL;
    ens_models_t *ms = NULL;
    ens_state_t *st = NULL;
    ens_dataset_t *test = NULL;
    ens_event_t front;
    int have_front = 0, rc = 1;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr) ||
        ens_models_open(dir, &ms, errstr, sizeof errstr) || ens_state_redis_new(r, ms, &st) ||
        ens_dataset_load(dataset, ENS_DATA_TEST, &test, errstr, sizeof errstr) ||
        ens_state_front_get(st, study, &front, errstr, sizeof errstr)) {
        fprintf(stderr, "front_test: %s\n", errstr[0] ? errstr : "cannot open the study");
        goto out;
    }
    have_front = 1;
    const ens_ensemble_front_t *f = &front.u.ensemble_front;
    int n_members = 0;
    for (int i = 0; i < f->n_ensembles; i++)
        n_members += f->ensembles[i].n_members;
    scored_t *cache = calloc((size_t)n_members + 1, sizeof *cache);
    double *test_acc = calloc((size_t)f->n_ensembles + 1, sizeof *test_acc);
    float *avg = malloc((size_t)test->n * (size_t)test->n_classes * sizeof *avg);
    const float **p = calloc((size_t)n_members + 1, sizeof *p);
    int n_cache = 0, best = -1;
    if (!cache || !test_acc || !avg || !p) {
        fprintf(stderr, "front_test: out of memory\n");
        goto done;
    }
    printf("%-26s %-8s %7s %9s %9s %10s %9s\n", "ensemble", "method", "members", "hold_acc",
           "hold_ll", "ms/sample", "test_acc");
    for (int i = 0; i < f->n_ensembles; i++) {
        const ens_ensemble_t *e = &f->ensembles[i];
        int ok = 1;
        for (int m = 0; m < e->n_members && ok; m++)
            ok = (p[m] = model_probs(cache, &n_cache, e->members[m], st, ms, study, test)) != NULL;
        test_acc[i] = -1;
        if (ok && e->n_members > 0) {
            ens_ensemble_combine(p, e->weights, (int)e->n_members, test->n, test->n_classes, avg);
            test_acc[i] = ens_accuracy(avg, test->y, NULL, test->n, test->n_classes);
        }
        if (test_acc[i] >= 0 && (best < 0 || test_acc[i] > test_acc[best]))
            best = i;
        printf("%-26s %-8s %7d %9.4f %9.4f %10.4f %9.4f\n", e->ensemble_id, e->method,
               (int)e->n_members, e->holdout_accuracy, e->holdout_logloss,
               e->cost_ms_per_sample, test_acc[i]);
    }
    ens_choose_t by_acc = {.rule = ENS_CHOOSE_ACCURACY}, by_ll = {.rule = ENS_CHOOSE_LOGLOSS};
    int ia = ens_ensemble_choose(f->ensembles, f->n_ensembles, &by_acc);
    int il = ens_ensemble_choose(f->ensembles, f->n_ensembles, &by_ll);
    if (ia < 0 || il < 0 || best < 0) {
        fprintf(stderr, "front_test: the front of %s has no scored ensemble\n", study);
        goto done;
    }
    printf("\npick by holdout accuracy (deploy's default): %s, test %.4f\n"
           "pick by holdout log-loss:                    %s, test %.4f\n"
           "best of the front on test (no rule sees it): %s, test %.4f\n",
           f->ensembles[ia].ensemble_id, test_acc[ia], f->ensembles[il].ensemble_id,
           test_acc[il], f->ensembles[best].ensemble_id, test_acc[best]);
    FILE *out = json ? fopen(json, "w") : NULL;
    if (json && (!out ||
                 fprintf(out,
                         "{\"study\": \"%s\", \"front_size\": %d, \"test_accuracy_pick_accuracy\":"
                         " %.4f, \"members_pick_accuracy\": %d, \"test_accuracy_pick_logloss\": "
                         "%.4f, \"members_pick_logloss\": %d, \"test_accuracy_front_best\": "
                         "%.4f}\n",
                         study, (int)f->n_ensembles, test_acc[ia],
                         (int)f->ensembles[ia].n_members, test_acc[il],
                         (int)f->ensembles[il].n_members, test_acc[best]) < 0)) {
        fprintf(stderr, "front_test: cannot write %s\n", json);
        if (out)
            fclose(out);
        goto done;
    }
    if (out && fclose(out)) {
        fprintf(stderr, "front_test: cannot write %s\n", json);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; cache && i < n_cache; i++)
        free(cache[i].probs);
    free(cache);
    free(test_acc);
    free(avg);
    free(p);
out:
    if (have_front)
        ens_event_free(&front);
    ens_dataset_free(test);
    ens_state_free(st);
    ens_models_close(ms);
    ens_redis_free(r);
    return rc;
}
