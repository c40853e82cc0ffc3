/* space_probe.c - trains search-space configurations exactly as a trainer would (same recipe,
 * same train/validation split) on one data set, one after another, and prints per epoch the
 * seconds, validation accuracy and, at the end, test accuracy, alone and averaged with the
 * mirror images' predictions (test-time augmentation): the measurements behind the default
 * search spaces (README, "Budget-first studies"). */
/*
 * space_probe DATASET EPOCHS SEED CONFIG_JSON...   each CONFIG_JSON as ens_space_sample makes
 *                                                  them, or "@SPACE_JSON#INDEX" for config
 *                                                  INDEX of that space
 * One JSON line per epoch and one per configuration on stdout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "ensflow/nn.h"
#include "ensflow/space.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double accuracy(ens_model_t *m, const ens_dataset_t *d) {
    float *p = malloc((size_t)d->n * (size_t)d->n_classes * sizeof *p);
    double acc = -1;
    if (p && !ens_model_predict(m, d->x, d->n, p))
        acc = ens_accuracy(p, d->y, NULL, d->n, d->n_classes);
    free(p);
    return acc;
}

/* Test accuracy, and with test-time augmentation (*tta): the mean of the predictions for
 * each image and its mirror image (horizontal flip, as the trainer's augmentation flips);
 * -1 where not computed. The plain predictions serve both. */
static double test_accuracy(ens_model_t *m, const ens_dataset_t *d, double *tta) {
    size_t nc = (size_t)d->n * (size_t)d->n_classes, nx = (size_t)d->n * (size_t)d->dim;
    float *p = malloc(nc * sizeof *p), *q = malloc(nc * sizeof *q), *x = malloc(nx * sizeof *x);
    double acc = -1;
    int32_t h = d->height, w = d->width;
    *tta = -1;
    if (p && !ens_model_predict(m, d->x, d->n, p))
        acc = ens_accuracy(p, d->y, NULL, d->n, d->n_classes);
    if (acc >= 0 && q && x && h > 1 && w > 1 && (int64_t)h * w == d->dim) {
        for (size_t r = 0; r < nx / (size_t)w; r++)
            for (int32_t c = 0; c < w; c++)
                x[r * (size_t)w + (size_t)c] = d->x[r * (size_t)w + (size_t)(w - 1 - c)];
        if (!ens_model_predict(m, x, d->n, q)) {
            for (size_t i = 0; i < nc; i++)
                p[i] = 0.5f * (p[i] + q[i]);
            *tta = ens_accuracy(p, d->y, NULL, d->n, d->n_classes);
        }
    }
    free(p);
    free(q);
    free(x);
    return acc;
}

static int probe(const char *config, double epochs, uint64_t seed, const ens_dataset_t *train,
                 const ens_dataset_t *val, const ens_dataset_t *test) {
    char errstr[512];
    ens_trial_config_t cfg;
    if (ens_trial_config_parse(config, &cfg, errstr, sizeof errstr)) {
        fprintf(stderr, "space_probe: %s: %s\n", config, errstr);
        return 1;
    }
    ens_model_t *m = NULL;
    ens_err_t err = cfg.family == ENS_FAMILY_CNN
                        ? ens_model_new_from_json(cfg.arch, 1, train->height, train->width,
                                                  train->n_classes, seed, &m, errstr,
                                                  sizeof errstr)
                        : ens_model_new_mlp(train->dim, cfg.hidden, cfg.n_hidden,
                                            train->n_classes, seed, &m);
    if (err) {
        fprintf(stderr, "space_probe: model: %s\n", errstr);
        return 1;
    }
    double s = 0, s2 = 0;
    size_t n = (size_t)train->n * (size_t)train->dim;
    for (size_t i = 0; i < n; i++)
        s += train->x[i], s2 += (double)train->x[i] * train->x[i];
    double mean = s / (double)n, var = s2 / (double)n - mean * mean;
    ens_model_set_normalisation(m, (float)mean, (float)sqrt(var > 1e-12 ? var : 1));
    ens_train_opts_t opts;
    ens_trial_train_opts(&cfg, 0, epochs, epochs, &opts);
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    double total = 0;
    int32_t steps = (train->n + opts.batch_size - 1) / opts.batch_size;
    for (int e = 0; e < (int)ceil(epochs - 1e-9); e++) {
        double loss = 0, t0 = now();
        int32_t end = e + 1 > epochs ? (int32_t)ceil((epochs - e) * steps) : steps;
        if ((err = ens_model_train_steps_opts(m, train, &opts, &rng, 0, end, &loss))) {
            fprintf(stderr, "space_probe: training: %s\n", ens_err_str(err));
            ens_model_free(m);
            return 1;
        }
        double dt = now() - t0;
        total += dt;
        printf("{\"epoch\": %d, \"seconds\": %.2f, \"loss\": %.4f, \"val_accuracy\": %.4f}\n",
               e + 1, dt, loss, accuracy(m, val));
        fflush(stdout);
    }
    double tta, test_acc = test_accuracy(m, test, &tta);
    printf("{\"config\": %s, \"epochs\": %g, \"seconds\": %.1f, \"samples_per_s\": %.0f, "
           "\"val_accuracy\": %.4f, \"test_accuracy\": %.4f, \"test_accuracy_flip_tta\": "
           "%.4f}\n",
           config, epochs, total, total > 0 ? epochs * train->n / total : 0, accuracy(m, val),
           test_acc, tta);
    fflush(stdout);
    ens_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: space_probe DATASET EPOCHS SEED CONFIG_JSON|@SPACE#INDEX...\n");
        return 2;
    }
    char errstr[512];
    double epochs = atof(argv[2]);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    ens_dataset_t *all = NULL, *test = NULL, *train = NULL, *val = NULL;
    if (ens_dataset_load(argv[1], ENS_DATA_TRAIN, &all, errstr, sizeof errstr) ||
        ens_dataset_load(argv[1], ENS_DATA_TEST, &test, errstr, sizeof errstr) ||
        ens_dataset_split(all, 0.1, 42, &train, &val, errstr, sizeof errstr)) {
        fprintf(stderr, "space_probe: %s\n", errstr);
        return 1;
    }
    int rc = 0;
    for (int i = 4; i < argc && !rc; i++) {
        char *config = NULL;
        if (argv[i][0] == '@') { /* @SPACE#INDEX */
            char *hash = strrchr(argv[i], '#');
            if (!hash) {
                fprintf(stderr, "space_probe: %s: expected @SPACE_JSON#INDEX\n", argv[i]);
                rc = 2;
                break;
            }
            *hash = '\0';
            if (ens_space_sample(argv[i] + 1, seed, atoi(hash + 1), &config, errstr,
                                 sizeof errstr)) {
                fprintf(stderr, "space_probe: %s\n", errstr);
                rc = 1;
                break;
            }
        }
        rc = probe(config ? config : argv[i], epochs, seed + (uint64_t)i, train, val, test);
        free(config);
    }
    ens_dataset_free(all);
    ens_dataset_free(train);
    ens_dataset_free(val);
    ens_dataset_free(test);
    return rc;
}
