/* test_nn_layers.c - layer engine: gradient checks of every layer and a ResNet block,
 * hand-computed forwards, JSON architectures, CNN model files, optimisers, a tiny CNN. */
#include "check.h"
#include "ensflow/nn.h"
#include "nn/mlp_internal.h"
#include "nn/nn_internal.h"

#include <stdint.h>
#include <zlib.h>

double nn_lr_at(const ens_train_opts_t *o, double e0, double e1);

static void fill_random(float *a, int64_t n, uint64_t seed, double scale) {
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++)
        a[i] = (float)(scale * ens_rng_normal(&rng));
}

/* A model from node specs; the last node must give n_classes values. */
static ens_model_t *graph(nn_shape_t in, int32_t k, const nn_spec_t *specs, int n) {
    ens_model_t *m;
    char es[256] = "";
    CHECK_OK(nn_model_begin(in, k, &m));
    for (int i = 0; i < n; i++)
        if (nn_graph_add(m, &specs[i], es, sizeof es) < 0)
            fprintf(stderr, "graph: %s\n", es);
    CHECK_OK(nn_model_finish(m, 5, 1, es, sizeof es));
    return m;
}

/* Loss with the dropout stream reset, so every evaluation draws the same masks. */
static double loss_at(ens_model_t *m, const float *x, const int32_t *y, int b) {
    ens_rng_seed(&m->rng, 99);
    double l = 0;
    CHECK_OK(ens_mlp_loss_grad(m, x, y, b, &l));
    return l;
}

/* Central differences against backprop over every parameter; the first node's parameter
 * gradients also check the input gradient of the node under test. */
static void grad_check(const char *name, ens_model_t *m, int b) {
    int64_t np = ens_model_n_params(m), din = nn_in_size(m);
    float *p = ens_mlp_params(m);
    for (int64_t i = 0; i < np; i++) /* no parameter exactly on a kink */
        p[i] += 0.02f * ((float)((i * 37) % 11) - 5.3f) / 5.0f;
    float *x = malloc((size_t)(b * din) * sizeof *x);
    fill_random(x, b * din, 3, 1.0);
    int32_t y[16];
    for (int i = 0; i < b; i++)
        y[i] = i % m->n_classes;
    loss_at(m, x, y, b);
    float *g = malloc((size_t)np * sizeof *g);
    memcpy(g, ens_mlp_grads(m), (size_t)np * sizeof *g);
    const float eps = 1e-3f;
    double dot = 0, na = 0, nn = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < np; i++) {
        float keep = p[i];
        p[i] = keep + eps;
        double lp = loss_at(m, x, y, b);
        p[i] = keep - eps;
        double lm = loss_at(m, x, y, b);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * eps), an = g[i];
        double rel = fabs(num - an) / fmax(fmax(fabs(num), fabs(an)), 2e-3);
        if (rel >= 2e-2) { /* a kink (ReLU, max) within eps? try a step 4x smaller */
            p[i] = keep + eps / 4;
            double lp2 = loss_at(m, x, y, b);
            p[i] = keep - eps / 4;
            double lm2 = loss_at(m, x, y, b);
            p[i] = keep;
            double num2 = (lp2 - lm2) / (eps / 2);
            double rel2 = fabs(num2 - an) / fmax(fmax(fabs(num2), fabs(an)), 2e-3);
            if (rel2 < 3e-2)
                rel = rel2, num = num2;
        }
        if (rel >= 2e-2) {
            bad++;
            if (bad < 4)
                fprintf(stderr, "%s grad[%lld]: backprop %.6g numeric %.6g\n", name,
                        (long long)i, an, num);
        }
        dot += num * an, na += an * an, nn += num * num;
    }
    double cosv = dot / sqrt(na * nn + 1e-30);
    if (bad > np / 50 || cosv < 0.9995)
        fprintf(stderr, "%s: %lld of %lld gradients off, cosine %.6f\n", name, (long long)bad,
                (long long)np, cosv);
    CHECK(bad <= np / 50); /* a kink crossed by both finite differences, at most 2% */
    CHECK(cosv > 0.9995);
    free(g);
    free(x);
    ens_model_free(m);
}

#define DENSE(i, u) {.kind = NN_DENSE, .in = {i, -1}, .units = u}
#define CONV(i_, f_, k_, s_, p_) {.kind = NN_CONV2D, .in = {i_, -1}, .units = f_, .k = k_, .stride = s_, .pad = p_}
#define ONE(kd, i) {.kind = kd, .in = {i, -1}}

static void test_gradients(void) {
    nn_shape_t img = {2, 6, 5};
    int32_t K = 3;
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 1), CONV(0, 4, 3, 2, 1), DENSE(1, K)};
      grad_check("conv2d stride 2 pad 1", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {CONV(-1, 3, 1, 1, 0), CONV(0, 2, 1, 1, 0), DENSE(1, K)};
      grad_check("conv2d 1x1", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 0), {.kind = NN_CONV2D, .in = {0, -1}, .units = 2, .k = 2, .stride = 1, .relu = 1}, DENSE(1, K)};
      grad_check("conv2d fused relu", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 1), {.kind = NN_MAXPOOL, .in = {0, -1}, .k = 2}, DENSE(1, K)};
      grad_check("maxpool", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 1), {.kind = NN_MAXPOOL, .in = {0, -1}, .k = 3, .stride = 2, .pad = 1}, DENSE(1, K)};
      grad_check("maxpool 3/2 pad 1", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 1), {.kind = NN_AVGPOOL, .in = {0, -1}, .k = 3, .stride = 2, .pad = 1}, DENSE(1, K)};
      grad_check("avgpool", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {CONV(-1, 4, 3, 1, 1), ONE(NN_GAP, 0), DENSE(1, K)};
      grad_check("gap", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {CONV(-1, 3, 3, 1, 1), ONE(NN_BATCHNORM, 0), DENSE(1, K)};
      grad_check("batchnorm", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {DENSE(-1, 8), {.kind = NN_DROPOUT, .in = {0, -1}, .alpha = 0.3f}, DENSE(1, K)};
      grad_check("dropout", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {DENSE(-1, 8), ONE(NN_RELU, 0), DENSE(1, K)};
      grad_check("relu", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {DENSE(-1, 8), {.kind = NN_LEAKY_RELU, .in = {0, -1}, .alpha = 0.1f}, DENSE(1, K)};
      grad_check("leaky relu", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {DENSE(-1, 8), ONE(NN_GELU, 0), DENSE(1, K)};
      grad_check("gelu", graph(img, K, s, 3), 4); }
    { nn_spec_t s[] = {CONV(-1, 2, 3, 1, 1), ONE(NN_FLATTEN, 0), DENSE(1, K)};
      grad_check("flatten", graph(img, K, s, 3), 3); }
    { nn_spec_t s[] = {DENSE(-1, 6), DENSE(0, 6), {.kind = NN_ADD, .in = {0, 1}}, DENSE(2, K)};
      grad_check("add", graph(img, K, s, 4), 3); }
    { nn_spec_t s[] = {DENSE(-1, 6), {.kind = NN_ADD, .in = {0, 0}}, DENSE(1, K)};
      grad_check("add x + x", graph(img, K, s, 3), 3); }
    /* the composite ResNet block: conv-BN-relu-conv-BN + projected skip, add, relu */
    ens_model_t *m;
    char es[256];
    CHECK_OK(ens_model_new_from_json(
        "{\"blocks\":[{\"filters\":3,\"residual\":true,\"batch_norm\":true,\"pool\":\"none\"},"
        "{\"filters\":3,\"residual\":true,\"stride\":2,\"pool\":\"avg\"}],\"dense\":[]}",
        2, 6, 6, 3, 7, &m, es, sizeof es));
    if (m) {
        int adds = 0;
        for (int i = 0; i < m->n_nodes; i++)
            adds += m->nodes[i].s.kind == NN_ADD;
        CHECK_EQ_INT(adds, 2);
        grad_check("resnet blocks", m, 4);
    }
    CHECK_OK(ens_model_new_from_json("{\"n_blocks\":1,\"width\":3,\"act\":\"gelu\",\"head\":\"gap\","
                                     "\"batch_norm\":true,\"residual\":true,\"dense\":[5]}",
                                     1, 5, 5, 2, 3, &m, es, sizeof es));
    if (m)
        grad_check("gelu resnet gap", m, 3);
}

static void test_forward_by_hand(void) {
    /* conv 1 -> 1, 3x3 input, 2x2 kernel, stride 1, no pad: a 2x2 output */
    nn_spec_t s[] = {CONV(-1, 1, 2, 1, 0), ONE(NN_FLATTEN, 0)};
    ens_model_t *m = graph((nn_shape_t){1, 3, 3}, 4, s, 2);
    float *p = ens_mlp_params(m);
    p[0] = 1, p[1] = 2, p[2] = 3, p[3] = 4, p[4] = 0.5f; /* W, bias */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK_OK(nn_ensure_batch(m, 1, 0));
    memcpy(m->x0, x, sizeof x);
    nn_forward(m, 1, 0);
    const float *y = m->nodes[0].y;
    /* [1 2;4 5].[1 2;3 4] = 1+4+12+20 = 37, then 47, 67, 77; + 0.5 */
    CHECK_NEAR(y[0], 37.5, 1e-5);
    CHECK_NEAR(y[1], 47.5, 1e-5);
    CHECK_NEAR(y[2], 67.5, 1e-5);
    CHECK_NEAR(y[3], 77.5, 1e-5);
    ens_model_free(m);
    /* padding 1, stride 2 on the same input: corners see 1 value of the kernel's far corner */
    nn_spec_t s2[] = {CONV(-1, 1, 3, 2, 1), ONE(NN_FLATTEN, 0)};
    m = graph((nn_shape_t){1, 3, 3}, 4, s2, 2);
    p = ens_mlp_params(m);
    for (int i = 0; i < 9; i++)
        p[i] = 1.0f;
    p[9] = 0.0f;
    CHECK_OK(nn_ensure_batch(m, 1, 0));
    memcpy(m->x0, x, sizeof x);
    nn_forward(m, 1, 0);
    y = m->nodes[0].y; /* window sums: top-left 1+2+4+5, top-right 2+3+5+6, ... */
    CHECK_NEAR(y[0], 12, 1e-5);
    CHECK_NEAR(y[1], 16, 1e-5);
    CHECK_NEAR(y[2], 24, 1e-5);
    CHECK_NEAR(y[3], 28, 1e-5);
    ens_model_free(m);
    /* pools on a 4x4 ramp, and BN with running statistics in inference */
    nn_spec_t s3[] = {{.kind = NN_MAXPOOL, .in = {-1, -1}, .k = 2}, {.kind = NN_AVGPOOL, .in = {-1, -1}, .k = 2},
                      {.kind = NN_ADD, .in = {0, 1}}, ONE(NN_BATCHNORM, 2), ONE(NN_GAP, 3), ONE(NN_FLATTEN, 4)};
    m = graph((nn_shape_t){1, 4, 4}, 1, s3, 6);
    float r[16];
    for (int i = 0; i < 16; i++)
        r[i] = (float)i;
    float *bn = m->bufs; /* running mean 1, running var 4; gamma 2, beta 3 */
    bn[0] = 1.0f, bn[1] = 4.0f;
    p = ens_mlp_params(m);
    p[0] = 2.0f, p[1] = 3.0f;
    CHECK_OK(nn_ensure_batch(m, 1, 0));
    memcpy(m->x0, r, sizeof r);
    nn_forward(m, 1, 0);
    const float *mx = m->nodes[0].y, *av = m->nodes[1].y;
    CHECK_NEAR(mx[0], 5, 0); CHECK_NEAR(mx[1], 7, 0); CHECK_NEAR(mx[2], 13, 0); CHECK_NEAR(mx[3], 15, 0);
    CHECK_NEAR(av[0], 2.5, 1e-6); CHECK_NEAR(av[3], 12.5, 1e-6);
    /* add = [7.5 11.5 23.5 27.5]; BN = 2 (v - 1) / sqrt(4 + 1e-5) + 3; GAP = mean */
    double mean_add = (7.5 + 11.5 + 23.5 + 27.5) / 4;
    CHECK_NEAR(m->nodes[4].y[0], 2.0 * (mean_add - 1.0) / sqrt(4.0 + 1e-5) + 3.0, 1e-4);
    ens_model_free(m);
    /* leaky relu, gelu values */
    nn_spec_t s4[] = {{.kind = NN_LEAKY_RELU, .in = {-1, -1}, .alpha = 0.1f}, ONE(NN_GELU, -1),
                      {.kind = NN_ADD, .in = {0, 1}}};
    m = graph((nn_shape_t){2, 1, 1}, 2, s4, 3);
    CHECK_OK(nn_ensure_batch(m, 1, 0));
    m->x0[0] = -2.0f, m->x0[1] = 1.0f;
    nn_forward(m, 1, 0);
    CHECK_NEAR(m->nodes[0].y[0], -0.2, 1e-7);
    CHECK_NEAR(m->nodes[1].y[0], -2.0 * 0.5 * (1.0 + erf(-2.0 / sqrt(2.0))), 1e-6);
    CHECK_NEAR(m->nodes[1].y[1], 0.5 * (1.0 + erf(1.0 / sqrt(2.0))), 1e-6);
    /* label smoothing: logits [-2.2+g(-2), 1+g(1)], eps 0.2 -> 0.9 on the label, 0.1 other */
    float l0 = m->nodes[2].y[0], l1 = m->nodes[2].y[1];
    int32_t y1 = 1;
    double lse = log(exp(l0) + exp(l1));
    double want = 0.9 * (lse - l1) + 0.1 * (lse - l0);
    CHECK_NEAR(nn_softmax_ce(m, 1, &y1, 0.2), want, 1e-5);
    ens_model_free(m);
}

static void test_json(void) {
    ens_model_t *m = NULL;
    char es[256];
    CHECK_OK(ens_model_new_from_json("{\"blocks\":[{\"filters\":32},{\"filters\":64}],\"dense\":[128]}",
                                     1, 28, 28, 10, 1, &m, es, sizeof es));
    if (m) {
        CHECK_EQ_INT(ens_model_n_params(m), 320 + 18496 + 3136 * 128 + 128 + 1290);
        CHECK_EQ_INT(ens_model_in_dim(m), 784);
        CHECK_EQ_INT(m->n_nodes, 6); /* conv+relu, pool, conv+relu, pool, dense+relu, dense */
        int32_t c, h, w;
        ens_model_input_shape(m, &c, &h, &w);
        CHECK(c == 1 && h == 28 && w == 28);
        ens_model_free(m);
    }
    const char *bad[] = {"[1]", "{\"blocks\":3}", "{\"kernel\":0}", "{\"pool\":\"median\"}",
                         "{\"act\":\"tanh\"}", "{\"dense\":[0]}", "{\"dropout\":1.5}",
                         "{\"widht\":3}", "{\"blocks\":[{\"filters\":8,\"colour\":1}]}",
                         "{\"n_blocks\":9}", "not json", "{\"head\":\"avg\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        es[0] = '\0';
        m = NULL;
        CHECK_EQ_INT(ens_model_new_from_json(bad[i], 1, 28, 28, 10, 1, &m, es, sizeof es),
                     ENS_ERR_INVALID);
        CHECK(m == NULL && es[0]);
    }
    CHECK_OK(ens_model_new_from_json("{\"blocks\":[{\"filters\":8,\"kernel\":5}]}", 1, 28, 28, 10, 1, &m, es, sizeof es));
    if (m) {
        CHECK_EQ_INT(m->nodes[0].s.pad, 2);
        ens_model_free(m);
    }
    /* 9 blocks of 2x2 pooling do not fit 28x28 */
    CHECK_EQ_INT(ens_model_new_from_json("{\"n_blocks\":6,\"width\":4,\"width_mult\":1}", 1, 28, 28, 10, 1, &m, es, sizeof es),
                 ENS_ERR_INVALID);
    CHECK(strstr(es, "pool") != NULL);
}

/* Bars: a vertical or horizontal bar at a random place in a 1x8x8 image, with noise. */
static ens_dataset_t *bars(int32_t n, uint64_t seed) {
    ens_dataset_t *ds = calloc(1, sizeof *ds);
    ds->n = n, ds->dim = 64, ds->height = 8, ds->width = 8, ds->n_classes = 2;
    ds->x = calloc((size_t)n * 64, sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int32_t i = 0; i < n; i++) {
        float *x = ds->x + (size_t)i * 64;
        int v = i & 1, at = 1 + (int)(ens_rng_next(&rng) % 6);
        for (int j = 0; j < 64; j++)
            x[j] = (float)(0.1 * ens_rng_uniform(&rng));
        for (int k = 1; k < 7; k++)
            x[v ? k * 8 + at : at * 8 + k] = 1.0f;
        ds->y[i] = v;
    }
    return ds;
}

static const char *SMALL_CNN =
    "{\"blocks\":[{\"filters\":4,\"batch_norm\":true},{\"filters\":6,\"residual\":true,"
    "\"dropout\":0.1}],\"dense\":[8],\"dense_dropout\":0.1}";

static void test_tiny_cnn_and_optimisers(void) {
    ens_dataset_t *ds = bars(128, 1);
    ens_optimizer_t opts[] = {ENS_OPT_SGD, ENS_OPT_NESTEROV, ENS_OPT_ADAM, ENS_OPT_ADAMW};
    for (int k = 0; k < 4; k++) {
        ens_model_t *m = NULL;
        char es[256];
        CHECK_OK(ens_model_new_from_json(SMALL_CNN, 1, 8, 8, 2, 11, &m, es, sizeof es));
        if (!m)
            continue;
        ens_train_opts_t o;
        ens_train_opts_default(&o);
        o.optimizer = opts[k];
        o.lr = k >= 2 ? 0.01 : 0.05;
        o.weight_decay = 1e-4;
        o.batch_size = 16;
        o.schedule = ENS_LR_COSINE;
        o.total_epochs = 30;
        o.warmup_epochs = 1;
        o.clip_norm = 5.0;
        o.label_smoothing = k == 3 ? 0.05 : 0.0;
        ens_rng_t rng;
        ens_rng_seed(&rng, 4);
        double loss = 0, acc = 0, first = 0;
        for (int e = 0; e < 30; e++) {
            CHECK_OK(ens_model_train_epoch_opts(m, ds, &o, &rng, &loss));
            if (e == 0)
                first = loss;
        }
        CHECK_OK(ens_model_evaluate(m, ds, &acc, NULL, NULL));
        if (acc < 1.0 || loss > (k == 3 ? 0.25 : 0.05))
            fprintf(stderr, "optimiser %d: loss %.4f -> %.4f, accuracy %.3f\n", k, first, loss, acc);
        CHECK_NEAR(acc, 1.0, 0);
        CHECK(loss < (k == 3 ? 0.25 : 0.05)); /* smoothing puts a floor under the loss */
        ens_model_free(m);
    }
    /* augmentation runs and stays deterministic */
    ens_model_t *a, *b;
    char es[256];
    CHECK_OK(ens_model_new_from_json(SMALL_CNN, 1, 8, 8, 2, 3, &a, es, sizeof es));
    CHECK_OK(ens_model_new_from_json(SMALL_CNN, 1, 8, 8, 2, 3, &b, es, sizeof es));
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAM, o.lr = 0.01, o.aug_crop_pad = 2, o.aug_hflip = 1, o.batch_size = 32;
    ens_rng_t r1, r2;
    ens_rng_seed(&r1, 8);
    ens_rng_seed(&r2, 8);
    double l1, l2;
    for (int e = 0; e < 3; e++) {
        CHECK_OK(ens_model_train_epoch_opts(a, ds, &o, &r1, &l1));
        CHECK_OK(ens_model_train_epoch_opts(b, ds, &o, &r2, &l2));
    }
    CHECK(l1 == l2 && isfinite(l1));
    CHECK(memcmp(a->params, b->params, (size_t)a->n_params * sizeof(float)) == 0);
    o.aug_crop_pad = 9; /* more than the image */
    CHECK_EQ_INT(ens_model_train_epoch_opts(a, ds, &o, &r1, NULL), ENS_ERR_INVALID);
    o.aug_crop_pad = 0, o.optimizer = 7;
    CHECK_EQ_INT(ens_model_train_epoch_opts(a, ds, &o, &r1, NULL), ENS_ERR_INVALID);
    ens_model_free(a);
    ens_model_free(b);
    /* schedules */
    ens_train_opts_default(&o);
    o.lr = 1.0, o.schedule = ENS_LR_STEP, o.step_epochs = 2, o.step_gamma = 0.5;
    CHECK_NEAR(nn_lr_at(&o, 1.5, 1.6), 1.0, 1e-12);
    CHECK_NEAR(nn_lr_at(&o, 4.0, 4.1), 0.25, 1e-12);
    o.schedule = ENS_LR_COSINE, o.total_epochs = 10;
    CHECK_NEAR(nn_lr_at(&o, 5.0, 5.1), 0.5, 1e-12);
    CHECK_NEAR(nn_lr_at(&o, 10.0, 10.1), 0.0, 1e-12);
    o.cycle_start_epochs = 2, o.total_epochs = 6; /* a warm restart at epoch 2 */
    CHECK_NEAR(nn_lr_at(&o, 2.0, 2.1), 1.0, 1e-12);
    CHECK_NEAR(nn_lr_at(&o, 4.0, 4.1), 0.5, 1e-12);
    CHECK_NEAR(nn_lr_at(&o, 6.0, 6.1), 0.0, 1e-12);
    CHECK_NEAR(nn_lr_at(&o, 1.0, 1.1), 1.0, 1e-12); /* before the cycle: its start */
    o.cycle_start_epochs = 0, o.total_epochs = 10;
    o.warmup_epochs = 2.0;
    CHECK_NEAR(nn_lr_at(&o, 0.0, 0.5), 0.25 * 0.5 * (1 + cos(0.0)), 1e-12);
    ens_dataset_free(ds);
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_cnn_file(void) {
    ens_dataset_t *ds = bars(40, 2);
    ens_model_t *m = NULL, *l = NULL;
    char es[256];
    CHECK_OK(ens_model_new_from_json(SMALL_CNN, 1, 8, 8, 2, 5, &m, es, sizeof es));
    if (!m)
        return;
    ens_model_set_normalisation(m, 0.1f, 0.3f);
    const char *names[] = {"horizontal", "vertical"};
    CHECK_OK(ens_model_set_class_names(m, names, 2));
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAMW, o.lr = 0.01, o.weight_decay = 0.01, o.batch_size = 8;
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    CHECK_OK(ens_model_train_epoch_opts(m, ds, &o, &rng, NULL));
    uint8_t *buf;
    size_t len;
    CHECK_OK(ens_model_save(m, &buf, &len));
    CHECK_OK(ens_model_load(buf, len, &l, es, sizeof es));
    if (!l)
        return;
    CHECK_STR(ens_model_class_name(l, 1), "vertical");
    CHECK(ens_model_class_name(l, 2) == NULL);
    float pm[80], pl[80];
    CHECK_OK(ens_model_predict(m, ds->x, 40, pm));
    CHECK_OK(ens_model_predict(l, ds->x, 40, pl));
    CHECK(memcmp(pm, pl, sizeof pm) == 0);
    /* optimiser state, BN statistics and the dropout stream travel: identical next epoch */
    ens_rng_t r1, r2;
    ens_rng_seed(&r1, 5);
    ens_rng_seed(&r2, 5);
    CHECK_OK(ens_model_train_epoch_opts(m, ds, &o, &r1, NULL));
    CHECK_OK(ens_model_train_epoch_opts(l, ds, &o, &r2, NULL));
    CHECK(memcmp(m->params, l->params, (size_t)m->n_params * sizeof(float)) == 0);
    CHECK(memcmp(m->bufs, l->bufs, (size_t)m->n_bufs * sizeof(float)) == 0);
    ens_model_free(l);
    /* every truncation and a flipped bit in every byte */
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        l = NULL;
        if (ens_model_load(buf, n, &l, es, sizeof es) != ENS_ERR_CORRUPT || l)
            bad++;
        ens_model_free(l);
    }
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        l = NULL;
        if (ens_model_load(copy, len, &l, es, sizeof es) != ENS_ERR_CORRUPT || l)
            bad++;
        ens_model_free(l);
    }
    CHECK_EQ_INT(bad, 0);
    /* random bytes with a valid magic and CRC, at every small size: refused, no crash */
    ens_rng_t fz;
    ens_rng_seed(&fz, 17);
    for (int t = 0; t < 3000; t++) {
        size_t n = 17 + (size_t)(ens_rng_next(&fz) % 400);
        n = n < len ? n : len;
        memcpy(copy, buf, n);
        for (int k = 0; k < 1 + t % 6; k++)
            copy[12 + ens_rng_next(&fz) % (n - 16)] = (uint8_t)ens_rng_next(&fz);
        put_le32(copy + n - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), copy, (uInt)(n - 4)));
        l = NULL;
        ens_err_t e = ens_model_load(copy, n, &l, es, sizeof es);
        CHECK(e == ENS_OK || e == ENS_ERR_CORRUPT);
        ens_model_free(l);
    }
    free(copy);
    free(buf);
    ens_model_free(m);
    ens_dataset_free(ds);
}

int main(void) {
    test_forward_by_hand();
    test_gradients();
    test_json();
    test_tiny_cnn_and_optimisers();
    test_cnn_file();
    return check_done("test_nn_layers");
}
