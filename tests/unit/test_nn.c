/* test_nn.c - MLP API: hand-computed forward, gradient check, training, model file, determinism. */
#include "check.h"
#include "ensflow/nn.h"
#include "nn/mlp_internal.h"

#include <stdint.h>
#include <zlib.h>

/* 2-2-2 net with known weights: forward values worked out by hand. */
static void test_forward_by_hand(void) {
    ens_model_t *m;
    int32_t hidden[] = {2};
    CHECK_OK(ens_model_new_mlp(2, hidden, 1, 2, 1, &m));
    CHECK_EQ_INT(ens_model_n_params(m), 2 * 2 + 2 + 2 * 2 + 2);
    /* W0 [in x out], b0, W1, b1 */
    const float p[] = {1, -1, 2, 0.5f, 0.5f, -1, 1, 0, -1, 1, 0, 0.25f};
    memcpy(ens_mlp_params(m), p, sizeof p);
    float x[] = {1, 2}, probs[2];
    /* hidden = relu([1 + 4 + 0.5, -1 + 1 - 1]) = [5.5, 0]; logits = [5.5, 0.25] */
    CHECK_OK(ens_model_predict(m, x, 1, probs));
    CHECK_NEAR(probs[0], 1.0 / (1.0 + exp(-5.25)), 1e-6);
    CHECK_NEAR(probs[0] + probs[1], 1.0, 1e-6);
    /* normalised input (x - 1) / 2 = [0, 0.5]: hidden = [1.5, 0]; logits = [1.5, 0.25] */
    ens_model_set_normalisation(m, 1.0f, 2.0f);
    CHECK_OK(ens_model_predict(m, x, 1, probs));
    CHECK_NEAR(probs[0], 1.0 / (1.0 + exp(-1.25)), 1e-6);
    /* huge logits stay finite (max-shifted softmax) */
    for (int i = 0; i < 12; i++)
        ens_mlp_params(m)[i] *= 1e4f;
    ens_model_set_normalisation(m, 0.0f, 1.0f);
    CHECK_OK(ens_model_predict(m, x, 1, probs));
    CHECK(isfinite(probs[0]) && isfinite(probs[1]));
    CHECK_NEAR(probs[0], 1.0, 1e-6);
    ens_dataset_t ds = {.n = 1, .dim = 2, .height = 1, .width = 2, .n_classes = 2, .x = x,
                        .y = (int32_t[]){1}};
    double acc, loss;
    CHECK_OK(ens_model_evaluate(m, &ds, &acc, &loss, NULL));
    CHECK(isfinite(loss) && loss > 1e4); /* -log p1, computed from logits, not log(0) */
    CHECK_NEAR(acc, 0.0, 0);
    ens_model_free(m);
}

static void fill_random(float *a, int n, uint64_t seed, double scale) {
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++)
        a[i] = (float)(scale * ens_rng_normal(&rng));
}

/* Central differences against backprop, every parameter of a 5-4-3-3 net. */
static void test_gradient_check(void) {
    enum { B = 6, D = 5, C = 3 };
    int32_t hidden[] = {4, 3};
    ens_model_t *m;
    CHECK_OK(ens_model_new_mlp(D, hidden, 2, C, 7, &m));
    ens_model_set_normalisation(m, 0.1f, 0.9f);
    int64_t np = ens_model_n_params(m);
    float *p = ens_mlp_params(m);
    /* non-zero biases too, never exactly 0: a dead unit with bias 0 sits on the ReLU kink */
    for (int l = 0; l < np; l++)
        p[l] += 0.05f * ((float)((l * 37) % 11) - 5.5f);
    float x[B * D];
    fill_random(x, B * D, 3, 1.0);
    int32_t y[B] = {0, 1, 2, 2, 1, 0};
    double loss;
    CHECK_OK(ens_mlp_loss_grad(m, x, y, B, &loss));
    float *g = malloc((size_t)np * sizeof *g);
    memcpy(g, ens_mlp_grads(m), (size_t)np * sizeof *g);
    const float eps = 1e-3f;
    double worst = 0.0, dot = 0.0, na = 0.0, nn = 0.0;
    for (int64_t i = 0; i < np; i++) {
        float keep = p[i];
        double lp, lm;
        p[i] = keep + eps;
        CHECK_OK(ens_mlp_loss_grad(m, x, y, B, &lp));
        p[i] = keep - eps;
        CHECK_OK(ens_mlp_loss_grad(m, x, y, B, &lm));
        p[i] = keep;
        double num = (lp - lm) / (2.0 * eps), an = g[i];
        double rel = fabs(num - an) / fmax(fmax(fabs(num), fabs(an)), 1e-3);
        worst = fmax(worst, rel);
        if (rel >= 1e-2)
            fprintf(stderr, "grad[%lld]: backprop %.6g numeric %.6g\n", (long long)i, an, num);
        dot += num * an, na += an * an, nn += num * num;
    }
    CHECK(worst < 1e-2);
    CHECK(dot / sqrt(na * nn) > 0.9999);
    free(g);
    ens_model_free(m);
}

/* Four Gaussian blobs in an XOR pattern: needs the hidden layer. */
static ens_dataset_t *xor_blobs(int32_t n, uint64_t seed) {
    ens_dataset_t *ds = calloc(1, sizeof *ds);
    ds->n = n, ds->dim = 2, ds->height = 1, ds->width = 2, ds->n_classes = 2;
    ds->x = malloc((size_t)n * 2 * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int32_t i = 0; i < n; i++) {
        int sx = i & 1 ? 1 : -1, sy = i & 2 ? 1 : -1;
        ds->x[2 * i] = (float)(sx + 0.15 * ens_rng_normal(&rng));
        ds->x[2 * i + 1] = (float)(sy + 0.15 * ens_rng_normal(&rng));
        ds->y[i] = sx * sy > 0;
    }
    return ds;
}

static void train(ens_model_t *m, const ens_dataset_t *ds, int epochs, uint64_t seed,
                  double *loss) {
    ens_sgd_t sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .batch_size = 16};
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int e = 0; e < epochs; e++)
        CHECK_OK(ens_model_train_epoch(m, ds, &sgd, &rng, loss));
}

static void test_training(void) {
    ens_dataset_t *ds = xor_blobs(200, 11);
    int32_t hidden[] = {16};
    ens_model_t *m;
    CHECK_OK(ens_model_new_mlp(2, hidden, 1, 2, 5, &m));
    double loss, acc, eval_loss;
    train(m, ds, 100, 9, &loss);
    CHECK(loss < 0.05);
    CHECK_OK(ens_model_evaluate(m, ds, &acc, &eval_loss, NULL));
    CHECK_NEAR(acc, 1.0, 0);
    CHECK(eval_loss < 0.05);
    CHECK_NEAR(ens_model_epochs_done(m), 100.0, 0);
    /* bad arguments */
    ens_sgd_t sgd = {.lr = 0.1, .momentum = 0.9, .batch_size = 0};
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    CHECK_EQ_INT(ens_model_train_epoch(m, ds, &sgd, &rng, NULL), ENS_ERR_INVALID);
    sgd.batch_size = 8;
    ds->y[3] = 2; /* label outside the model's classes */
    CHECK_EQ_INT(ens_model_train_epoch(m, ds, &sgd, &rng, NULL), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_evaluate(m, ds, &acc, NULL, NULL), ENS_ERR_INVALID);
    ds->y[3] = 1;
    ds->dim = 3;
    CHECK_EQ_INT(ens_model_train_epoch(m, ds, &sgd, &rng, NULL), ENS_ERR_INVALID);
    ds->dim = 2;
    ens_model_free(m);
    int32_t too_many[ENS_MODEL_MAX_LAYERS + 1] = {4, 4, 4, 4, 4, 4, 4, 4, 4};
    CHECK_EQ_INT(ens_model_new_mlp(2, too_many, ENS_MODEL_MAX_LAYERS + 1, 2, 1, &m),
                 ENS_ERR_INVALID);
    CHECK_OK(ens_model_new_mlp(2, too_many, ENS_MODEL_MAX_LAYERS, 2, 1, &m));
    ens_model_free(m);
    CHECK_EQ_INT(ens_model_new_mlp(0, hidden, 1, 2, 1, &m), ENS_ERR_INVALID);
    ens_dataset_free(ds);
}

static void test_sizes(void) {
    int32_t hidden[] = {256, 128};
    ens_model_t *m;
    CHECK_OK(ens_model_new_mlp(784, hidden, 2, 10, 1, &m));
    CHECK_EQ_INT(ens_model_n_params(m), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    CHECK_EQ_INT(ens_model_in_dim(m), 784);
    CHECK_EQ_INT(ens_model_n_classes(m), 10);
    CHECK_EQ_INT(ens_model_memory_bytes(m, 1), 4 * (235146 + 784 + 256 + 128 + 10 + 10));
    /* He init: weights of the first layer have variance about 2/784 */
    const float *p = ens_mlp_params(m);
    double ss = 0;
    for (int i = 0; i < 784 * 256; i++)
        ss += (double)p[i] * p[i];
    CHECK_NEAR(ss / (784 * 256), 2.0 / 784, 0.05 * 2.0 / 784);
    ens_model_free(m);
}

static void test_determinism(void) {
    ens_dataset_t *ds = xor_blobs(100, 3);
    int32_t hidden[] = {8, 8};
    ens_model_t *a, *b, *c;
    CHECK_OK(ens_model_new_mlp(2, hidden, 2, 2, 42, &a));
    CHECK_OK(ens_model_new_mlp(2, hidden, 2, 2, 42, &b));
    CHECK_OK(ens_model_new_mlp(2, hidden, 2, 2, 43, &c));
    size_t bytes = (size_t)ens_model_n_params(a) * sizeof(float);
    CHECK(memcmp(ens_mlp_params(a), ens_mlp_params(b), bytes) == 0);
    CHECK(memcmp(ens_mlp_params(a), ens_mlp_params(c), bytes) != 0);
    double la, lb;
    train(a, ds, 3, 8, &la);
    train(b, ds, 3, 8, &lb);
    CHECK(la == lb);
    CHECK(memcmp(ens_mlp_params(a), ens_mlp_params(b), bytes) == 0);
    ens_model_free(a);
    ens_model_free(b);
    ens_model_free(c);
    ens_dataset_free(ds);
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrite the trailing CRC so a crafted header gets past the checksum. */
static void fix_crc(uint8_t *buf, size_t len) {
    put_le32(buf + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(len - 4)));
}

static void test_save_load(void) {
    ens_dataset_t *ds = xor_blobs(64, 5);
    int32_t hidden[] = {6};
    ens_model_t *m, *l = NULL;
    CHECK_OK(ens_model_new_mlp(2, hidden, 1, 2, 3, &m));
    ens_model_set_normalisation(m, 0.25f, 1.5f);
    train(m, ds, 2, 1, NULL);
    ens_model_set_epochs_done(m, 2.5);
    uint8_t *buf;
    size_t len;
    CHECK_OK(ens_model_save(m, &buf, &len));
    CHECK(len > 16 && memcmp(buf, "ENSM", 4) == 0);
    char es[256];
    CHECK_OK(ens_model_load(buf, len, &l, es, sizeof es));
    if (!l)
        return;
    CHECK_NEAR(ens_model_epochs_done(l), 2.5, 0);
    float pm[64 * 2], pl[64 * 2];
    CHECK_OK(ens_model_predict(m, ds->x, 64, pm));
    CHECK_OK(ens_model_predict(l, ds->x, 64, pl));
    CHECK(memcmp(pm, pl, sizeof pm) == 0);
    /* momentum travels too: one more epoch gives identical weights */
    train(m, ds, 1, 77, NULL);
    train(l, ds, 1, 77, NULL);
    CHECK(memcmp(ens_mlp_params(m), ens_mlp_params(l),
                 (size_t)ens_model_n_params(m) * sizeof(float)) == 0);
    ens_model_free(l);

    /* every truncation, every flipped byte, a foreign buffer */
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        l = NULL;
        es[0] = '\0';
        if (ens_model_load(buf, n, &l, es, sizeof es) != ENS_ERR_CORRUPT || l || !es[0])
            bad++;
        ens_model_free(l);
    }
    CHECK_EQ_INT(bad, 0);
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, buf, len);
            copy[i] ^= (uint8_t)(1u << bit);
            l = NULL;
            if (ens_model_load(copy, len, &l, es, sizeof es) != ENS_ERR_CORRUPT || l)
                bad++;
            ens_model_free(l);
        }
    }
    CHECK_EQ_INT(bad, 0);
    const char foreign[] = "PK\x03\x04 this is a zip file, not a model, honestly";
    CHECK_EQ_INT(ens_model_load((const uint8_t *)foreign, sizeof foreign, &l, es, sizeof es),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(es, "magic") != NULL);
    /* crafted headers with a valid CRC (format 2, see model_io.c): section count, node count,
     * a huge layer, the ARCH length, the last layer's units, an unknown kind, a forward input */
    struct { size_t off; uint32_t v; } crafted[] = {
        {8, 200}, {40, 200}, {56, 1u << 20}, {16, 0xffffffff}, {92, 3}, {44, 99}, {48, 5}};
    for (size_t k = 0; k < sizeof crafted / sizeof crafted[0]; k++) {
        memcpy(copy, buf, len);
        put_le32(copy + crafted[k].off, crafted[k].v);
        fix_crc(copy, len);
        l = NULL;
        CHECK_EQ_INT(ens_model_load(copy, len, &l, es, sizeof es), ENS_ERR_CORRUPT);
        CHECK(l == NULL);
    }
    memcpy(copy, buf, len); /* std = 0 (NORM follows ARCH: 12 + 12 + 20 + 2 nodes * 36 + 12 + 4) */
    put_le32(copy + 12 + 12 + 20 + 72 + 12 + 4, 0);
    fix_crc(copy, len);
    CHECK_EQ_INT(ens_model_load(copy, len, &l, es, sizeof es), ENS_ERR_CORRUPT);
    CHECK(strstr(es, "std") != NULL);
    memcpy(copy, buf, len); /* a newer format version */
    put_le32(copy + 4, 1); /* the MLP-only format */
    fix_crc(copy, len);
    CHECK_EQ_INT(ens_model_load(copy, len, &l, es, sizeof es), ENS_ERR_UNSUPPORTED);
    CHECK_EQ_INT(ens_model_load(buf, len - 8, &l, es, sizeof es), ENS_ERR_CORRUPT);
    free(copy);
    free(buf);
    ens_model_free(m);
    ens_model_free(NULL);
    ens_dataset_free(ds);
}

/* FLOPs per sample counted per layer (conventions in nn.h), against hand arithmetic. */
static void test_flops(void) {
    char err[256] = "";
    ens_model_t *m;
    /* MLP 784-256-10: dense 784->256 with fused ReLU 2*784*256 + 256 + 256 = 401920,
     * dense 256->10 2*256*10 + 10 = 5130, softmax 3*10 = 30: 407080 */
    int32_t hidden[] = {256};
    CHECK_OK(ens_model_new_mlp(784, hidden, 1, 10, 1, &m));
    CHECK_EQ_INT(ens_model_flops_per_sample(m), 407080);
    ens_model_free(m);

    /* CNN on 1x8x8, 10 classes (kernel 3, pad 1, stride 1, max pool 2 by default):
     *   conv 1->4 + fused ReLU, out 4x8x8: 2*9*1*4*64 + 256 + 256  =  5120
     *   max pool 2, out 4x4x4:             2*2*4*4*4               =   256
     *   conv 4->8, out 8x4x4:              2*9*4*8*16 + 128         =  9344
     *   batch norm 8x4x4:                  2*128                    =   256
     *   ReLU 8x4x4:                        128                      =   128
     *   avg pool 2, out 8x2x2:             2*2*8*2*2                =   128
     *   dropout:                                                    =     0
     *   dense 32->16 + fused ReLU:         2*32*16 + 16 + 16        =  1056
     *   dense 16->10:                      2*16*10 + 10             =   330
     *   softmax:                           3*10                     =    30
     *   total                                                       = 16648
     * parameters: 40 + 296 + 16 + 528 + 170 = 1050, so 2*params = 2100 */
    CHECK_OK(ens_model_new_from_json("{\"blocks\":[{\"filters\":4},{\"filters\":8,"
                                     "\"batch_norm\":true,\"pool\":\"avg\",\"dropout\":0.25}],"
                                     "\"dense\":[16]}",
                                     1, 8, 8, 10, 1, &m, err, sizeof err));
    CHECK_EQ_INT(ens_model_n_params(m), 1050);
    CHECK_EQ_INT(ens_model_flops_per_sample(m), 16648);
    /* the reason for counting per layer: a conv reuses each weight at every position */
    CHECK(ens_model_flops_per_sample(m) > 5 * 2 * ens_model_n_params(m));
    ens_model_free(m);

    /* residual block with GELU and a GAP head on 2x4x4, 3 classes:
     *   conv 2->4, out 4x4x4:              2*9*2*4*16 + 64          = 2368
     *   GELU:                              64                       =   64
     *   conv 4->4, out 4x4x4:              2*9*4*4*16 + 64          = 4672
     *   1x1 conv skip 2->4 (channels differ): 2*1*2*4*16 + 64       =  320
     *   add:                               64                       =   64
     *   GELU:                              64                       =   64
     *   global average pool over 4x4x4:    64                       =   64
     *   dense 4->3:                        2*4*3 + 3                =   27
     *   softmax:                           3*3                      =    9
     *   total                                                       = 7652 */
    CHECK_OK(ens_model_new_from_json("{\"blocks\":[{\"filters\":4,\"residual\":true,"
                                     "\"pool\":\"none\"}],\"act\":\"gelu\",\"head\":\"gap\","
                                     "\"dense\":[]}",
                                     2, 4, 4, 3, 1, &m, err, sizeof err));
    CHECK_EQ_INT(ens_model_flops_per_sample(m), 7652);
    ens_model_free(m);
}

/* Backend names: "cpu" always; "cudnn" in a build with the module loads it on demand (then
 * works, or says there is no device), and is refused with a reason in a build without it. */
static void test_backends(void) {
    ens_model_t *m = NULL;
    int32_t hidden[] = {4};
    CHECK_OK(ens_model_new_mlp(3, hidden, 1, 2, 1, &m));
    if (!m)
        return;
    char err[1024] = "";
    CHECK_OK(ens_model_set_backend(m, "cpu", err, sizeof err));
    CHECK_EQ_INT(ens_model_set_backend(m, "tpu", err, sizeof err), ENS_ERR_INVALID);
    CHECK(strstr(err, "tpu") != NULL);
    err[0] = '\0';
    ens_err_t e = ens_model_set_backend(m, "cudnn", err, sizeof err);
#ifdef ENSFLOW_HAVE_CUDNN
    /* the module loaded: a GPU, or CUDA's own reason for none (not the loader's) */
    CHECK(e == ENS_OK || e == ENS_ERR_CUDA);
    CHECK(strstr(err, "did not load") == NULL);
    if (e == ENS_OK)
        CHECK_STR(ens_model_backend_name(m), "cudnn");
    else
        CHECK(err[0] != '\0');
    printf("test_nn: cudnn backend: %s\n", e == ENS_OK ? "on a GPU" : err);
#else
    CHECK_EQ_INT(e, ENS_ERR_UNSUPPORTED);
    CHECK(strstr(err, "no cudnn backend") != NULL);
#endif
    ens_model_free(m);
}

int main(void) {
    test_backends();
    test_forward_by_hand();
    test_gradient_check();
    test_training();
    test_sizes();
    test_determinism();
    test_save_load();
    test_flops();
    return check_done("test_nn");
}
