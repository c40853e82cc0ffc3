/* test_trainer_resume.c - a trial interrupted at a fractional epoch resumes exactly: training
 * 0.5 epoch, saving, loading and training 0.5 epoch more gives the same model as the two
 * halves without the save and load (MLP and a small CNN, ens_model_train_steps), and the
 * options path (Adam, cosine, warm-up, augmentation, label smoothing; the CNN trainer's) keeps
 * its optimiser state across a save and load. Single thread, same seed: bit-identical. An
 * epoch trained as step ranges (ens_model_train_steps_opts) is the one-call epoch; on the
 * harness, the trainer's 1/3-epoch rung plus its promotion store the 1-epoch job's model. Also
 * the heartbeat's partition record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ensflow/nn.h"
#include "trainer.h"

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

/* ens_model_train_steps_opts: an epoch trained as ranges [0, 3) + save/load + [3, 9) +
 * [9, steps), each range given the epoch's generator afresh, is bit for bit one
 * ens_model_train_epoch_opts call with every option on (AdamW state, cosine with warm-up,
 * clipping, augmentation, label smoothing, dropout); the next epoch goes on alike. (The
 * trainer's former pieces, each an epoch over a window with the rate held, are not.) */
static void test_steps_opts(const ens_dataset_t *ds) {
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAMW;
    o.lr = 3e-3;
    o.weight_decay = 1e-3;
    o.batch_size = 24; /* 256 / 24: 11 steps, the last of 16 samples */
    o.schedule = ENS_LR_COSINE;
    o.total_epochs = 3;
    o.warmup_epochs = 0.5;
    o.clip_norm = 1.0;
    o.aug_crop_pad = 2;
    o.aug_hflip = 1;
    o.label_smoothing = 0.1;
    int32_t steps = (ds->n + o.batch_size - 1) / o.batch_size;
    ens_model_t *a = NULL, *b = NULL;
    CHECK_OK(new_cnn(ds, &a));
    CHECK_OK(new_cnn(ds, &b));
    if (!a || !b)
        return;
    ens_rng_t ra, rb;
    double la = 0, lb = 0, lsum = 0;
    ens_rng_seed(&ra, 11);
    CHECK_OK(ens_model_train_epoch_opts(a, ds, &o, &ra, &la));
    const int32_t cut[] = {0, 3, 9, steps};
    for (int i = 0; i < 3; i++) {
        ens_rng_seed(&rb, 11); /* the epoch's generator, at the epoch's start */
        CHECK_OK(ens_model_train_steps_opts(b, ds, &o, &rb, cut[i], cut[i + 1], &lb));
        CHECK(isfinite(lb));
        int32_t end_samples = cut[i + 1] * o.batch_size < ds->n ? cut[i + 1] * o.batch_size
                                                                  : ds->n;
        lsum += lb * (end_samples - cut[i] * o.batch_size);
        if (i < 2)
            CHECK_NEAR(ens_model_epochs_done(b), (double)cut[i + 1] / steps, 1e-12);
        if (i == 0)
            b = reload(b);
    }
    CHECK(ens_model_epochs_done(b) == 1.0);
    CHECK_NEAR(lsum / ds->n, la, 1e-9);
    check_same(a, b, ds);
    /* the generators stand at the same place: the next epoch is the same too */
    CHECK_OK(ens_model_train_epoch_opts(a, ds, &o, &ra, &la));
    CHECK_OK(ens_model_train_steps_opts(b, ds, &o, &rb, 0, steps, &lb));
    CHECK(la == lb);
    CHECK(ens_model_epochs_done(b) == 2.0);
    check_same(a, b, ds);
    /* ranges out of the epoch */
    CHECK_EQ_INT(ens_model_train_steps_opts(b, ds, &o, &rb, 2, 1, NULL), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_train_steps_opts(b, ds, &o, &rb, 0, steps + 1, NULL), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_train_steps_opts(b, ds, &o, &rb, -1, 1, NULL), ENS_ERR_INVALID);
    ens_model_free(a);
    ens_model_free(b);
}

/* The heartbeat's partition record; test_proposer_dispatch parses these same strings. */
static void test_parts_record(void) {
    char buf[64];
    const int32_t parts[] = {0, 2, 13};
    CHECK_OK(ens_trainer_parts_record(buf, sizeof buf, 1234, parts, 3));
    CHECK_STR(buf, "1234 0,2,13");
    CHECK_OK(ens_trainer_parts_record(buf, sizeof buf, 99, NULL, 0));
    CHECK_STR(buf, "99 -");
    CHECK_EQ_INT(ens_trainer_parts_record(buf, 8, 1234, parts, 3), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_trainer_parts_record(buf, sizeof buf, 1, parts, -1), ENS_ERR_INVALID);
}

/* ds as MNIST-style IDX files (train part only) in dir: the trainer's data set. */
static int write_idx(const char *dir, const ens_dataset_t *ds) {
    char path[1100];
    unsigned char hdr[16];
    snprintf(path, sizeof path, "%.1000s/train-images-idx3-ubyte", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const uint32_t im[4] = {0x803, (uint32_t)ds->n, 8, 8};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++)
            hdr[4 * i + k] = (unsigned char)(im[i] >> (24 - 8 * k));
    int ok = fwrite(hdr, 1, 16, f) == 16;
    for (size_t i = 0; ok && i < (size_t)ds->n * 64; i++)
        ok = fputc((int)(ds->x[i] * 255.0f), f) != EOF;
    ok = (fclose(f) == 0) && ok;
    snprintf(path, sizeof path, "%.1000s/train-labels-idx1-ubyte", dir);
    if (!ok || !(f = fopen(path, "wb")))
        return -1;
    const uint32_t lb[2] = {0x801, (uint32_t)ds->n};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++)
            hdr[4 * i + k] = (unsigned char)(lb[i] >> (24 - 8 * k));
    ok = fwrite(hdr, 1, 8, f) == 8;
    for (int32_t i = 0; ok && i < ds->n; i++)
        ok = fputc(ds->y[i], f) != EOF;
    return (fclose(f) == 0) && ok ? 0 : -1;
}

static void run_job(ens_trainer_t *t, const char *study, const char *config, const char *data,
                    double from, double to) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    ens_trial_job_t *j = &ev.u.trial_job;
    snprintf(j->study_id, sizeof j->study_id, "%s", study);
    snprintf(j->trial_id, sizeof j->trial_id, "t-00001");
    j->config_json = strdup(config);
    j->dataset = strdup(data);
    j->val_fraction = 0.2;
    j->seed = 5;
    j->from_epoch = from;
    j->epochs = to;
    j->attempt = 1;
    CHECK_OK(ens_trainer_handle(t, &ev, errstr, sizeof errstr));
    ens_event_free(&ev);
}

/* The trainer: a rung of 1/3 epoch and its promotion to 1 epoch (two jobs, a checkpoint in
 * Redis between) store the same model, byte for byte, as one job of 1 epoch: for an MLP
 * (SGD with momentum) and for a CNN with AdamW, cosine, warm-up, augmentation, label smoothing
 * and dropout. Formerly each job drew its own shuffle, and a CNN's fraction of an epoch was
 * trained as pieces with the rate held, so the two differed. */
static void test_trainer_rungs(const char *redis_url, const char *bootstrap,
                               const ens_dataset_t *ds) {
    const char *dir_env = getenv("ENSFLOW_TEST_DIR");
    char dir[1024], flag[600];
    if (snprintf(dir, sizeof dir, "%s/trainer-resume-%d", dir_env, (int)getpid()) >= 1000)
        return;
    if (mkdir(dir, 0700) != 0 || write_idx(dir, ds) != 0) {
        fprintf(stderr, "test_trainer_resume: cannot write the IDX files in %s\n", dir);
        check_failures++;
        return;
    }
    snprintf(flag, sizeof flag, "--kafka-bootstrap=%s", bootstrap);
    char *argv[] = {"test", flag};
    static const ens_conf_def_t no_defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_trainer_t t = {.max_attempts = 3, .mu = PTHREAD_MUTEX_INITIALIZER};
    CHECK_OK(ens_conf_new("test", no_defs, 2, argv, &conf, errstr, sizeof errstr));
    ens_redis_t *redis = NULL;
    CHECK_OK(ens_redis_connect(redis_url, &redis, errstr, sizeof errstr));
    if (conf)
        CHECK_OK(ens_kafka_producer_new(conf, &t.producer, errstr, sizeof errstr));
    char store_dir[1100];
    snprintf(store_dir, sizeof store_dir, "%s/models", dir);
    CHECK_OK(ens_models_open(store_dir, &t.store, errstr, sizeof errstr));
    if (redis)
        CHECK_OK(ens_state_redis_new(redis, t.store, &t.state));
    static const char *configs[2] = {
        "{\"hidden\":[32],\"lr\":0.05,\"momentum\":0.9,\"batch_size\":16,"
        "\"weight_decay\":0.0001}",
        "{\"family\":\"cnn\",\"arch\":{\"n_blocks\":1,\"width\":4,\"batch_norm\":true,"
        "\"dropout\":0.1,\"dense\":[8]},\"optimizer\":\"adamw\",\"lr\":0.003,"
        "\"momentum\":0.9,\"batch_size\":16,\"weight_decay\":0.001,\"augment\":1,"
        "\"label_smoothing\":0.1}"};
    long long stamp = (long long)ens_now_ms();
    for (int c = 0; redis && t.producer && t.store && c < 2; c++) {
        char split[96], whole[96], top[96], key[256], mid[ENS_ID_MAX], name[80];
        snprintf(split, sizeof split, "resume-%d-%lld-%d-split", (int)getpid(), stamp, c);
        snprintf(whole, sizeof whole, "resume-%d-%lld-%d-whole", (int)getpid(), stamp, c);
        snprintf(top, sizeof top, "resume-%d-%lld-%d-top", (int)getpid(), stamp, c);
        const char *studies[2] = {split, whole};
        for (int i = 0; i < 2; i++) { /* the cosine horizon: the study's top rung */
            ens_key(key, sizeof key, studies[i], "study");
            CHECK_OK(ens_redis_exec(redis, errstr, sizeof errstr, "HSET %s epochs 3", key));
        }
        run_job(&t, split, configs[c], dir, 0, 1.0 / 3);
        run_job(&t, split, configs[c], dir, 1.0 / 3, 1);
        run_job(&t, whole, configs[c], dir, 0, 1);
        ens_key(key, sizeof key, top, "study"); /* a study whose top rung is 1 epoch */
        CHECK_OK(ens_redis_exec(redis, errstr, sizeof errstr, "HSET %s epochs 1", key));
        run_job(&t, top, configs[c], dir, 0, 1);
        void *blob[3] = {NULL, NULL, NULL};
        size_t len[3] = {0, 0, 0};
        const char *all[3] = {split, whole, top};
        ens_model_id("t-00001", 1, mid, sizeof mid);
        snprintf(name, sizeof name, "model:%s", mid);
        for (int i = 0; i < 3; i++)
            CHECK_OK(ens_models_get(t.store, redis, all[i], name, &blob[i], &len[i], errstr,
                                    sizeof errstr));
        /* retention: a trial's resume checkpoint goes once its job is reported; the rung a
         * promotion started from and a top-rung model keep weights only */
        void *b = NULL;
        size_t n = 0;
        CHECK_EQ_INT(ens_models_get(t.store, redis, split, "ckpt:t-00001", &b, &n, errstr,
                                    sizeof errstr),
                     ENS_ERR_NOTFOUND);
        ens_model_id("t-00001", 1.0 / 3, mid, sizeof mid);
        snprintf(name, sizeof name, "model:%s", mid);
        CHECK_OK(ens_models_get(t.store, redis, split, name, &b, &n, errstr, sizeof errstr));
        ens_model_t *rung = NULL;
        if (b && !ens_model_load(b, n, &rung, errstr, sizeof errstr)) {
            CHECK_EQ_INT(ens_model_drop_optimiser(rung), 0);
            CHECK(ens_model_epochs_done(rung) > 0.33 && ens_model_epochs_done(rung) < 0.4);
        }
        CHECK(rung != NULL);
        ens_model_free(rung);
        free(b);
        ens_model_t *mt = NULL, *mw = NULL;
        if (blob[2] && blob[1] && !ens_model_load(blob[2], len[2], &mt, errstr, sizeof errstr) &&
            !ens_model_load(blob[1], len[1], &mw, errstr, sizeof errstr)) {
            CHECK_EQ_INT(ens_model_drop_optimiser(mt), 0); /* saved without it */
            CHECK_EQ_INT(ens_model_drop_optimiser(mw), 1); /* 1 of 3 epochs: can go on */
            CHECK(len[2] < len[1]);
        }
        CHECK(mt && mw);
        ens_model_free(mt);
        ens_model_free(mw);
        free(blob[2]);
        for (int i = 0; i < 3; i++)
            CHECK_OK(ens_models_study_remove(t.store, all[i], errstr, sizeof errstr));
        if (!(blob[0] && blob[1] && len[0] == len[1] && !memcmp(blob[0], blob[1], len[0]))) {
            fprintf(stderr, "test_trainer_resume: %s: 1/3 + 2/3 epoch != 1 epoch\n",
                    c ? "CNN" : "MLP");
            check_failures++;
        }
        ens_model_t *m = NULL;
        if (blob[0] && !ens_model_load(blob[0], len[0], &m, errstr, sizeof errstr))
            CHECK(ens_model_epochs_done(m) == 1.0);
        CHECK(m != NULL);
        ens_model_free(m);
        free(blob[0]);
        free(blob[1]);
    }
    ens_kafka_free(t.producer);
    ens_trainer_close(&t);
    ens_state_free(t.state);
    ens_models_close(t.store);
    rmdir(store_dir);
    ens_redis_free(redis);
    ens_conf_free(conf);
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/train-images-idx3-ubyte", dir);
    unlink(path);
    snprintf(path, sizeof path, "%.1000s/train-labels-idx1-ubyte", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_parts_record();
    setenv("ENSFLOW_NN_THREADS", "1", 1);
    ens_dataset_t ds;
    make_data(&ds, 256); /* 16 batches of 16: half an epoch is 8 */
    test_steps(new_mlp, &ds);
    test_steps(new_cnn, &ds);
    test_opts(&ds);
    test_steps_opts(&ds);
    const char *url = check_env_file("redis.url"), *boot = check_env_file("bootstrap");
    if (url && boot)
        test_trainer_rungs(url, boot, &ds);
    else
        fprintf(stderr, "test_trainer_resume: no harness: the trainer's rung part skipped\n");
    free(ds.x);
    free(ds.y);
    return check_done("test_trainer_resume");
}
