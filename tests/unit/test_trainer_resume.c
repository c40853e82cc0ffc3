/* test_trainer_resume.c - a trial interrupted at a fractional epoch resumes exactly: training
 * 0.5 epoch, saving, loading and training 0.5 epoch more gives the same model as the two
 * halves without the save and load (MLP and a small CNN, ens_model_train_steps), and the
 * options path (Adam, cosine, warm-up, augmentation, label smoothing; the CNN trainer's) keeps
 * its optimiser state across a save and load. Single thread, same seed: bit-identical. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ensflow/nn.h"

static char errstr[512];

/* 8x8 images of 3 classes: a bright bar whose position is the class, plus noise. */
static void make_data(ens_dataset_t *ds, int32_t n) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->dim = 64;
    ds->height = 8;
    ds->width = 8;
    ds->n_classes = 3;
    ds->x = malloc((size_t)n * 64 * sizeof *ds->x);
    ds->y = malloc((size_t)n * sizeof *ds->y);
    ens_rng_t rng;
    ens_rng_seed(&rng, 77);
    for (int32_t i = 0; i < n; i++) {
        int32_t c = i % 3;
        ds->y[i] = c;
        for (int32_t p = 0; p < 64; p++) {
            int32_t row = p / 8;
            ds->x[(size_t)i * 64 + p] =
                (float)(0.3 * ens_rng_uniform(&rng) + (row >= 2 * c && row < 2 * c + 3 ? 0.7 : 0));
        }
    }
}

static ens_model_t *reload(ens_model_t *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_model_t *out = NULL;
    CHECK_OK(ens_model_save(m, &buf, &len));
    CHECK_OK(ens_model_load(buf, len, &out, errstr, sizeof errstr));
    free(buf);
    ens_model_free(m);
    return out;
}

/* The same model, as bytes of its file and as predictions. */
static void check_same(ens_model_t *a, ens_model_t *b, const ens_dataset_t *ds) {
    uint8_t *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    CHECK_OK(ens_model_save(a, &ba, &la));
    CHECK_OK(ens_model_save(b, &bb, &lb));
    CHECK(la == lb && memcmp(ba, bb, la) == 0);
    free(ba);
    free(bb);
    float *pa = malloc((size_t)ds->n * 3 * sizeof *pa), *pb = malloc((size_t)ds->n * 3 * sizeof *pb);
    CHECK_OK(ens_model_predict(a, ds->x, ds->n, pa));
    CHECK_OK(ens_model_predict(b, ds->x, ds->n, pb));
    double worst = 0;
    for (int32_t i = 0; i < ds->n * 3; i++)
        worst = fabs((double)pa[i] - pb[i]) > worst ? fabs((double)pa[i] - pb[i]) : worst;
    CHECK(worst <= 1e-6);
    free(pa);
    free(pb);
}

typedef ens_err_t (*new_fn)(const ens_dataset_t *ds, ens_model_t **m);

static ens_err_t new_mlp(const ens_dataset_t *ds, ens_model_t **m) {
    int32_t hidden[] = {16};
    return ens_model_new_mlp(ds->dim, hidden, 1, ds->n_classes, 5, m);
}

static ens_err_t new_cnn(const ens_dataset_t *ds, ens_model_t **m) {
    return ens_model_new_from_json("{\"n_blocks\":2,\"width\":4,\"batch_norm\":true,"
                                   "\"residual\":true,\"dropout\":0.1,\"dense\":[8]}",
                                   1, ds->height, ds->width, ds->n_classes, 5, m, errstr,
                                   sizeof errstr);
}

/* 0.5 + save/load + 0.5 epoch == 0.5 + 0.5 epoch (ens_model_train_steps, SGD momentum). */
static void test_steps(new_fn make, const ens_dataset_t *ds) {
    ens_sgd_t sgd = {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4, .batch_size = 16};
    int32_t per_epoch = (ds->n + sgd.batch_size - 1) / sgd.batch_size, half = per_epoch / 2;
    ens_model_t *a = NULL, *b = NULL;
    CHECK_OK(make(ds, &a));
    CHECK_OK(make(ds, &b));
    ens_rng_t ra, rb;
    ens_rng_seed(&ra, 11);
    ens_rng_seed(&rb, 11);
    double loss;
    CHECK_OK(ens_model_train_steps(a, ds, &sgd, &ra, half, &loss));
    CHECK_OK(ens_model_train_steps(b, ds, &sgd, &rb, half, &loss));
    CHECK_NEAR(ens_model_epochs_done(a), 0.5, 1e-9);
    a = reload(a);
    CHECK_NEAR(ens_model_epochs_done(a), 0.5, 1e-9);
    CHECK_OK(ens_model_train_steps(a, ds, &sgd, &ra, per_epoch - half, &loss));
    CHECK_OK(ens_model_train_steps(b, ds, &sgd, &rb, per_epoch - half, &loss));
    CHECK_NEAR(ens_model_epochs_done(a), 1.0, 1e-9);
    CHECK(isfinite(loss));
    check_same(a, b, ds);
    ens_model_free(a);
    ens_model_free(b);
}

/* The CNN trainer's options: 1 + save/load + 1 epoch == 2 epochs (Adam state in the file). */
static void test_opts(const ens_dataset_t *ds) {
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAMW;
    o.lr = 3e-3;
    o.weight_decay = 1e-3;
    o.batch_size = 16;
    o.schedule = ENS_LR_COSINE;
    o.total_epochs = 3;
    o.warmup_epochs = 0.5;
    o.aug_crop_pad = 2;
    o.aug_hflip = 1;
    o.label_smoothing = 0.1;
    ens_model_t *a = NULL, *b = NULL;
    CHECK_OK(new_cnn(ds, &a));
    CHECK_OK(new_cnn(ds, &b));
    ens_rng_t ra, rb;
    ens_rng_seed(&ra, 3);
    ens_rng_seed(&rb, 3);
    double la, lb;
    CHECK_OK(ens_model_train_epoch_opts(a, ds, &o, &ra, &la));
    CHECK_OK(ens_model_train_epoch_opts(b, ds, &o, &rb, &lb));
    a = reload(a);
    CHECK_OK(ens_model_train_epoch_opts(a, ds, &o, &ra, &la));
    CHECK_OK(ens_model_train_epoch_opts(b, ds, &o, &rb, &lb));
    CHECK(la == lb);
    check_same(a, b, ds);
    ens_model_free(a);
    ens_model_free(b);
}

int main(void) {
    setenv("ENSFLOW_NN_THREADS", "1", 1);
    ens_dataset_t ds;
    make_data(&ds, 256); /* 16 batches of 16: half an epoch is 8 */
    test_steps(new_mlp, &ds);
    test_steps(new_cnn, &ds);
    test_opts(&ds);
    free(ds.x);
    free(ds.y);
    return check_done("test_trainer_resume");
}
