/* onnx_fixture.c - trains the small models the ONNX export test checks and writes what ensflow
 * predicts for them (tests/integration/onnx_export.sh runs it). */
/*
 * onnx_fixture OUTDIR   writes, for generated 3x12x12 images of 4 classes:
 *   x.f32                 the test rows, N_TEST x 432 float32 (host order: little endian here)
 *   NAME.ensm             each model as ens_model_save writes it
 *   NAME.probs.f32        its probabilities from ens_model_predict, N_TEST x 4
 *   ensemble.onnx         mlp, cnn_bn_res and cnn_gelu weighted 3:2:1, from ens_onnx_export
 *   ensemble.probs.f32    ens_ensemble_combine of their probabilities with those weights
 *   models.txt            the model names, one a line
 * onnx_fixture --store REDIS_URL STORE_DIR STUDY OUTDIR   then stores OUTDIR's models in
 *   STUDY as the trainer does (model:<name> in the model store at STORE_DIR) and a front with
 *   one ensemble, e-onnx, of the same three members and weights (normalised, as the selector
 *   writes them)
 * Models: an MLP; a CNN with batch norm and residual blocks (one through a 1x1 conv, stride 2),
 * average pooling, leaky ReLU, dropout and a global-average-pool head; a CNN with GELU, batch
 * norm, max and 3x3 average pooling and a flatten head; and one built node by node with what
 * the architecture builder does not make: padded pools, a residual add on the model input
 * itself, flatten, add on flat values and an add of a flat value and an image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/ensemble.h"
#include "ensflow/events.h"
#include "ensflow/models.h"
#include "ensflow/nn.h"
#include "ensflow/onnx.h"
#include "ensflow/store.h"
#include "nn/nn_internal.h"

#define C 3
#define H 12
#define W 12
#define D (C * H * W)
#define K 4
#define N_TRAIN 256
#define N_TEST 64

/* Class c brightens a quarter of the image in channel c % 3; noise everywhere. */
static void make_data(ens_rng_t *rng, int32_t n, float *x, int32_t *y) {
    for (int32_t i = 0; i < n; i++) {
        int32_t c = i % K;
        y[i] = c;
        for (int32_t ch = 0; ch < C; ch++)
            for (int32_t r = 0; r < H; r++)
                for (int32_t q = 0; q < W; q++) {
                    float v = 0.4f * (float)ens_rng_uniform(rng);
                    int in_quarter = (r < H / 2) == (c < 2) && (q < W / 2) == (c % 2 == 0);
                    if (ch == c % C && in_quarter)
                        v += 0.15f;
                    x[(size_t)i * D + ((size_t)ch * H + r) * W + q] = v;
                }
    }
}

static int write_file(const char *dir, const char *name, const void *p, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "onnx_fixture: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* conv 3->3 (pad 1) + the input; conv 3->4 k3 s2 p1 with ReLU; max 3x3 s2 p1; avg 3x3 s1 p1
 * (padding counted); flatten; relu; add of the flat values; dense 4; plus the GAP of the
 * avgpool's 4 channels (an image [N, 4, 1, 1] added to the flat [N, 4] of the dense) */
static ens_err_t handmade(uint64_t seed, ens_model_t **out, char *errstr, size_t size) {
    ens_model_t *m;
    ens_err_t err = nn_model_begin((nn_shape_t){C, H, W}, K, &m);
    if (err)
        return err;
    const nn_spec_t specs[] = {
        {.kind = NN_CONV2D, .in = {-1, -1}, .units = C, .k = 3, .stride = 1, .pad = 1},
        {.kind = NN_ADD, .in = {0, -1}},
        {.kind = NN_CONV2D, .in = {1, -1}, .units = 4, .k = 3, .stride = 2, .pad = 1, .relu = 1},
        {.kind = NN_MAXPOOL, .in = {2, -1}, .k = 3, .stride = 2, .pad = 1},
        {.kind = NN_AVGPOOL, .in = {3, -1}, .k = 3, .stride = 1, .pad = 1},
        {.kind = NN_FLATTEN, .in = {4, -1}},
        {.kind = NN_RELU, .in = {5, -1}},
        {.kind = NN_ADD, .in = {5, 6}},
        {.kind = NN_DENSE, .in = {7, -1}, .units = K},
        {.kind = NN_GAP, .in = {4, -1}},
        {.kind = NN_ADD, .in = {8, 9}},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (nn_graph_add(m, &specs[i], errstr, size) < 0) {
            ens_model_free(m);
            return ENS_ERR_INVALID;
        }
    if ((err = nn_model_finish(m, seed, 1, errstr, size))) {
        ens_model_free(m);
        return err;
    }
    *out = m;
    return ENS_OK;
}

static const char *const ensemble_members[3] = {"mlp", "cnn_bn_res", "cnn_gelu"};
static const double ensemble_weights[3] = {3.0, 2.0, 1.0};

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (*buf = malloc((size_t)n + 1)) && fread(*buf, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        *len = (size_t)n;
        return 0;
    }
    if (f)
        fclose(f);
    fprintf(stderr, "onnx_fixture: cannot read %s\n", path);
    return -1;
}

/* The models as the trainer stores them and a front as the selector writes it. */
static int store(const char *url, const char *store_dir, const char *study, const char *dir) {
    char errstr[512] = "", key[256], path[1024];
    ens_redis_t *r = NULL;
    ens_models_t *ms = NULL;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr) ||
        ens_models_open(store_dir, &ms, errstr, sizeof errstr)) {
        fprintf(stderr, "onnx_fixture: redis or model store: %s\n", errstr);
        ens_redis_free(r);
        return 1;
    }
    int rc = 1;
    for (int i = 0; i < 3; i++) {
        uint8_t *blob = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s.ensm", dir, ensemble_members[i]);
        if (read_file(path, &blob, &len))
            goto out;
        snprintf(key, sizeof key, "model:%s", ensemble_members[i]);
        ens_err_t err = ens_models_put(ms, r, study, key, blob, len, errstr, sizeof errstr);
        free(blob);
        if (err) {
            fprintf(stderr, "onnx_fixture: storing %s: %s\n", key, errstr);
            goto out;
        }
    }
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *f = &ev.u.ensemble_front;
    snprintf(f->study_id, sizeof f->study_id, "%s", study);
    snprintf(f->front_id, sizeof f->front_id, "f-onnx");
    f->n_models = 3;
    f->n_ensembles = 1;
    f->ensembles = calloc(1, sizeof *f->ensembles);
    ens_ensemble_t *e = f->ensembles;
    if (e && (e->members = calloc(3, sizeof *e->members)) &&
        (e->weights = calloc(3, sizeof *e->weights))) {
        snprintf(e->ensemble_id, sizeof e->ensemble_id, "e-onnx");
        snprintf(e->method, sizeof e->method, "topk");
        e->n_members = 3;
        for (int i = 0; i < 3; i++) {
            snprintf(e->members[i], sizeof e->members[i], "%s", ensemble_members[i]);
            e->weights[i] = ensemble_weights[i] / 6.0;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        ens_key(key, sizeof key, study, "front");
        if (ens_event_encode(&ev, &buf, &len, errstr, sizeof errstr) == ENS_OK) {
            ens_redis_reply_t *rep =
                ens_redis_command(r, errstr, sizeof errstr, "SET %s %b", key, buf, len);
            rc = rep ? 0 : 1;
            ens_redis_reply_free(rep);
        }
        free(buf);
    }
    ens_event_free(&ev);
    if (rc)
        fprintf(stderr, "onnx_fixture: storing the front: %s\n", errstr);
out:
    ens_models_close(ms);
    ens_redis_free(r);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "--store"))
        return store(argv[2], argv[3], argv[4], argv[5]);
    if (argc != 2) {
        fprintf(stderr, "usage: onnx_fixture OUTDIR | onnx_fixture --store REDIS_URL STORE_DIR "
                        "STUDY OUTDIR\n");
        return 2;
    }
    const char *dir = argv[1];
    static const char *const names[] = {"mlp", "cnn_bn_res", "cnn_gelu", "handmade"};
    enum { N_MODELS = 4 };
    static const char *const arch_bn_res =
        "{\"blocks\":[{\"filters\":8,\"batch_norm\":true,\"residual\":true,\"pool\":\"avg\"},"
        "{\"filters\":12,\"batch_norm\":true,\"residual\":true,\"stride\":2,\"pool\":\"none\","
        "\"dropout\":0.2}],\"act\":\"leaky_relu\",\"leaky_alpha\":0.1,\"head\":\"gap\","
        "\"dense\":[16],\"dense_dropout\":0.1}";
    static const char *const arch_gelu =
        "{\"blocks\":[{\"filters\":6,\"kernel\":5,\"pad\":2,\"pool\":\"max\"},"
        "{\"filters\":8,\"batch_norm\":true,\"pool\":\"avg\",\"pool_size\":3}],"
        "\"act\":\"gelu\",\"dense\":[20]}";
    static float x_train[(size_t)N_TRAIN * D], x_test[(size_t)N_TEST * D];
    static int32_t y_train[N_TRAIN], y_test[N_TEST];
    static float probs[N_MODELS][(size_t)N_TEST * K], combined[(size_t)N_TEST * K];
    ens_rng_t rng;
    ens_rng_seed(&rng, 7);
    make_data(&rng, N_TRAIN, x_train, y_train);
    make_data(&rng, N_TEST, x_test, y_test);
    ens_dataset_t train = {N_TRAIN, D, H, W, K, x_train, y_train};

    ens_model_t *models[N_MODELS] = {NULL};
    char errstr[512] = "";
    const int32_t hidden[] = {32, 16};
    ens_err_t err = ens_model_new_mlp(D, hidden, 2, K, 11, &models[0]);
    if (!err)
        err =
            ens_model_new_from_json(arch_bn_res, C, H, W, K, 12, &models[1], errstr, sizeof errstr);
    if (!err)
        err = ens_model_new_from_json(arch_gelu, C, H, W, K, 13, &models[2], errstr, sizeof errstr);
    if (!err)
        err = handmade(14, &models[3], errstr, sizeof errstr);
    int rc = 1;
    if (err) {
        fprintf(stderr, "onnx_fixture: building the models: %s %s\n", ens_err_str(err), errstr);
        goto out;
    }
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAM;
    o.lr = 0.003;
    o.batch_size = 32;
    FILE *list = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/models.txt", dir);
    if (!(list = fopen(path, "w"))) {
        fprintf(stderr, "onnx_fixture: cannot write %s\n", path);
        goto out;
    }
    for (int i = 0; i < N_MODELS; i++) {
        ens_model_t *m = models[i];
        /* a normalisation that is not the identity, so that the graph must carry it */
        ens_model_set_normalisation(m, 0.35f, 0.3f);
        double loss = 0.0;
        for (int e = 0; e < 2 && !err; e++) {
            ens_rng_t erng;
            ens_rng_seed(&erng, 100 + (uint64_t)e);
            err = ens_model_train_epoch_opts(m, &train, &o, &erng, &loss);
        }
        uint8_t *blob = NULL;
        size_t len = 0;
        char file[256];
        if (!err)
            err = ens_model_predict(m, x_test, N_TEST, probs[i]);
        if (!err)
            err = ens_model_save(m, &blob, &len);
        if (err) {
            fprintf(stderr, "onnx_fixture: %s: %s\n", names[i], ens_err_str(err));
            free(blob);
            fclose(list);
            goto out;
        }
        double acc = ens_accuracy(probs[i], y_test, NULL, N_TEST, K);
        fprintf(stderr, "onnx_fixture: %s: %lld parameters, loss %.3f, test accuracy %.3f\n",
                names[i], (long long)ens_model_n_params(m), loss, acc);
        snprintf(file, sizeof file, "%s.ensm", names[i]);
        int bad = write_file(dir, file, blob, len);
        free(blob);
        snprintf(file, sizeof file, "%s.probs.f32", names[i]);
        bad = bad || write_file(dir, file, probs[i], sizeof probs[i]);
        if (bad) {
            fclose(list);
            goto out;
        }
        fprintf(list, "%s\n", names[i]);
    }
    if (fclose(list) != 0 || write_file(dir, "x.f32", x_test, sizeof x_test))
        goto out;

    /* the ensemble: three members, weights that do not sum to 1 */
    const float *member_probs[3] = {probs[0], probs[1], probs[2]};
    ens_ensemble_combine(member_probs, ensemble_weights, 3, N_TEST, K, combined);
    uint8_t *onnx = NULL;
    size_t onnx_len = 0;
    err = ens_onnx_export((const ens_model_t *const *)models, ensemble_weights, 3, &onnx, &onnx_len,
                          errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "onnx_fixture: ensemble export: %s %s\n", ens_err_str(err), errstr);
        goto out;
    }
    int bad = write_file(dir, "ensemble.onnx", onnx, onnx_len);
    free(onnx);
    if (bad || write_file(dir, "ensemble.probs.f32", combined, sizeof combined))
        goto out;
    rc = 0;
out:
    for (int i = 0; i < N_MODELS; i++)
        ens_model_free(models[i]);
    return rc;
}
