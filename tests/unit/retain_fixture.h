/* retain_fixture.h - what the two retain tests (on Redis and on the in-memory state) share: a
 * small trained model to store, the check of a stored one, and files aged or written raw. */
#ifndef ENSFLOW_TEST_RETAIN_FIXTURE_H
#define ENSFLOW_TEST_RETAIN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utime.h>

#include "check.h"
#include "ensflow/nn.h"

/* A small MLP trained one epoch (so it has optimiser state), saved into *buf, *len. */
static ens_model_t *fixture_trained_model(uint8_t **buf, size_t *len) {
    int32_t hidden[1] = {16};
    ens_model_t *m = NULL;
    *buf = NULL;
    *len = 0;
    CHECK_OK(ens_model_new_mlp(6, hidden, 1, 3, 7, &m));
    if (!m)
        return NULL;
    float x[32 * 6];
    int32_t y[32];
    for (int i = 0; i < 32; i++) {
        y[i] = i % 3;
        for (int j = 0; j < 6; j++)
            x[i * 6 + j] = (float)((i * 5 + j * 3) % 7) / 7.0f + (float)y[i];
    }
    ens_dataset_t ds = {.n = 32, .dim = 6, .height = 1, .width = 6, .n_classes = 3, .x = x,
                        .y = y};
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.batch_size = 16;
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    double loss;
    CHECK_OK(ens_model_train_epoch_opts(m, &ds, &o, &rng, &loss));
    CHECK_OK(ens_model_save(m, buf, len));
    return m;
}

/* A stored model's bytes (freed here): 1 when it has optimiser state, 0 when not, -1 when it
 * does not load; when same is given, its predictions must equal same's. */
static int fixture_has_state(void *blob, size_t len, ens_model_t *same) {
    char es[256];
    ens_model_t *m = NULL;
    ens_err_t err = ens_model_load(blob, len, &m, es, sizeof es);
    free(blob);
    if (err)
        return -1;
    if (same) { /* the weights are the same: the same predictions */
        float x[6] = {0.1f, 0.5f, 0.2f, 0.9f, 0.3f, 0.7f}, p[3], q[3];
        CHECK_OK(ens_model_predict(m, x, 1, p));
        CHECK_OK(ens_model_predict(same, x, 1, q));
        CHECK(!memcmp(p, q, sizeof p));
    }
    int had = ens_model_drop_optimiser(m);
    ens_model_free(m);
    return had;
}

static void fixture_write_raw(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Set path's times this many seconds back. */
static void fixture_age(const char *path, int seconds) {
    struct utimbuf t = {.actime = time(NULL) - seconds, .modtime = time(NULL) - seconds};
    CHECK_EQ_INT(utime(path, &t), 0);
}

#endif
