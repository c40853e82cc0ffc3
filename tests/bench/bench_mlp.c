/* bench_mlp.c - epoch time and validation accuracy of a 784-256-128-10 MLP on Fashion-MNIST. */
/* Not built by CMake; build by hand (NN_SRC = shared/src/nn/ *.c, without the space):
 *   gcc -std=gnu11 -O2 -Ishared/include -Ishared/src
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread shared/src/err.c shared/src/data.c
 *       $NN_SRC tests/bench/bench_mlp.c -lopenblas -lz -lm -o bench_mlp
 *   OPENBLAS_NUM_THREADS=1 ./bench_mlp [epochs] [batch] */
#include "ensflow/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3, batch = argc > 2 ? atoi(argv[2]) : 128;
    char es[512];
    ens_dataset_t *all, *train, *val;
    double t0 = now();
    if (ens_dataset_load("fashion-mnist", ENS_DATA_TRAIN, &all, es, sizeof es) ||
        ens_dataset_split(all, 0.1, 1, &train, &val, es, sizeof es)) {
        fprintf(stderr, "bench_mlp: %s\n", es);
        return 1;
    }
    printf("load+split %.2f s: train %d val %d\n", now() - t0, train->n, val->n);
    int32_t hidden[] = {256, 128};
    ens_model_t *m;
    if (ens_model_new_mlp(784, hidden, 2, 10, 1, &m))
        return 1;
    ens_model_set_normalisation(m, 0.286f, 0.353f); /* Fashion-MNIST pixel mean / std */
    ens_sgd_t sgd = {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .batch_size = batch};
    ens_rng_t rng;
    ens_rng_seed(&rng, 2);
    for (int e = 1; e <= epochs; e++) {
        double loss, acc, vloss, t = now();
        if (ens_model_train_epoch(m, train, &sgd, &rng, &loss))
            return 1;
        double dt = now() - t;
        t = now();
        ens_model_evaluate(m, val, &acc, &vloss, NULL);
        printf("epoch %d: %.3f s train loss %.4f | val acc %.4f loss %.4f (eval %.3f s)\n", e, dt,
               loss, acc, vloss, now() - t);
    }
    ens_model_free(m);
    ens_dataset_free(all), ens_dataset_free(train), ens_dataset_free(val);
    return 0;
}
