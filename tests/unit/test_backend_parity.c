/* test_backend_parity.c - every op and the reference CNN give the same outputs and gradients
 * on the CPU and cuDNN backends (1e-3 relative); prints a training step's speed on each.
 * Exits 77 (skipped) where the build has no cudnn backend or the machine has no GPU. */
#include "check.h"
#include "ensflow/nn.h"
#include "nn/nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ENSFLOW_HAVE_CUDNN
int main(void) {
    printf("test_backend_parity: skipped: this build has no cudnn backend (CMake did not find "
           "CUDA with cuDNN)\n");
    return 77;
}
#else

#define REL_TOL 1e-3

/* max |a - b| over max |a|: relative to the tensor's scale, so near-zero entries do not
 * decide */
static double rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0.0, s = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]), v = fabs((double)a[i]);
        d = e > d ? e : d;
        s = v > s ? v : s;
    }
    return d / s;
}

static void fill(float *x, int64_t n, uint64_t seed) {
    ens_rng_t r;
    ens_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(ens_rng_uniform(&r) * 2.0 - 1.0);
}

/* a copy of m with the same weights, optimiser state and rng, on the cudnn backend */
static ens_model_t *twin(const ens_model_t *m) {
    uint8_t *buf;
    size_t len;
    ens_model_t *g = NULL;
    char es[256];
    if (ens_model_save(m, &buf, &len))
        return NULL;
    if (ens_model_load(buf, len, &g, es, sizeof es) == ENS_OK &&
        ens_model_set_backend(g, "cudnn", es, sizeof es) != ENS_OK) {
        fprintf(stderr, "set_backend: %s\n", es);
        ens_model_free(g);
        g = NULL;
    }
    free(buf);
    return g;
}

/* forward (inference and training) and backward on both backends, node by node */
static void parity(const char *what, ens_model_t *cpu, int32_t b) {
    ens_model_t *gpu = twin(cpu);
    CHECK(gpu != NULL);
    if (!gpu)
        return;
    int64_t d = nn_in_size(cpu);
    int32_t *y = malloc((size_t)b * sizeof *y);
    for (int32_t i = 0; i < b; i++)
        y[i] = i % cpu->n_classes;
    double worst = 0.0;
    for (int train = 0; train <= 1; train++) {
        CHECK_OK(nn_ensure_batch(cpu, b, train));
        CHECK_OK(nn_ensure_batch(gpu, b, train));
        fill(cpu->x0, b * d, 7);
        memcpy(gpu->x0, cpu->x0, (size_t)(b * d) * sizeof(float));
        nn_forward(cpu, b, train);
        nn_forward(gpu, b, train);
        CHECK_OK(nn_backend_error(gpu));
        for (int32_t i = 0; i < cpu->n_nodes; i++) {
            const nn_node_t *nc = &cpu->nodes[i], *ng = &gpu->nodes[i];
            double r = rel_diff(nc->y, ng->y, b * nc->size_out);
            worst = r > worst ? r : worst;
            if (!(r <= REL_TOL)) {
                fprintf(stderr, "%s: node %d (%s) %s forward differs: %.3g relative\n", what, i,
                        nn_ops(nc->s.kind)->name, train ? "training" : "inference", r);
                check_failures++;
            }
        }
        if (!train)
            continue;
        nn_softmax_ce(cpu, b, y, 0.1);
        nn_softmax_ce(gpu, b, y, 0.1);
        nn_backward(cpu, b, y, 0.1);
        nn_backward(gpu, b, y, 0.1);
        CHECK_OK(nn_backend_error(gpu));
        for (int32_t i = 0; i < cpu->n_nodes; i++) {
            const nn_node_t *n = &cpu->nodes[i];
            if (n->p_n == 0)
                continue;
            double r = rel_diff(cpu->grads + n->p_off, gpu->grads + n->p_off, n->p_n);
            worst = r > worst ? r : worst;
            if (!(r <= REL_TOL)) {
                fprintf(stderr, "%s: node %d (%s) parameter gradients differ: %.3g relative\n",
                        what, i, nn_ops(n->s.kind)->name, r);
                check_failures++;
            }
        }
        if (cpu->n_bufs > 0) {
            double r = rel_diff(cpu->bufs, gpu->bufs, cpu->n_bufs);
            if (!(r <= REL_TOL)) {
                fprintf(stderr, "%s: running statistics differ: %.3g relative\n", what, r);
                check_failures++;
            }
        }
    }
    printf("parity %-28s worst relative difference %.2e\n", what, worst);
    free(y);
    ens_model_free(gpu);
}

static ens_model_t *cnn(const char *arch, int32_t c, int32_t h, int32_t w) {
    ens_model_t *m = NULL;
    char es[256];
    if (ens_model_new_from_json(arch, c, h, w, 10, 3, &m, es, sizeof es) != ENS_OK)
        fprintf(stderr, "%s: %s\n", arch, es);
    CHECK(m != NULL);
    return m;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* samples/s of Adam steps at batch 128 on a synthetic 28x28 set */
static double train_speed(ens_model_t *m, const ens_dataset_t *ds) {
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.optimizer = ENS_OPT_ADAM, o.lr = 1e-3, o.batch_size = 128;
    ens_rng_t r;
    ens_rng_seed(&r, 1);
    ens_dataset_t warm = *ds;
    warm.n = 256;
    if (ens_model_train_epoch_opts(m, &warm, &o, &r, NULL))
        return -1.0;
    double t = now();
    if (ens_model_train_epoch_opts(m, ds, &o, &r, NULL))
        return -1.0;
    return ds->n / (now() - t);
}

int main(void) {
    char why[1024] = "";
    ens_err_t open_err = nn_cudnn_open(why, sizeof why);
    if (open_err == ENS_ERR_CUDA) { /* CUDA's reason: no device or driver */
        printf("test_backend_parity: skipped: no usable GPU: %s\n", why);
        return 77;
    }
    if (open_err != ENS_OK) { /* a module that does not load is a broken build, not a skip */
        printf("test_backend_parity: FAIL: %s\n", why);
        return 1;
    }
    struct {
        const char *what, *arch;
    } cases[] = {
        {"conv2d+relu, maxpool", "{\"blocks\":[{\"filters\":6}],\"dense\":[]}"},
        {"conv2d k5 s2, avgpool", "{\"blocks\":[{\"filters\":5,\"kernel\":5,\"stride\":2,"
                                  "\"pool\":\"avg\"}],\"dense\":[8]}"},
        {"conv2d, no pool, gap head", "{\"blocks\":[{\"filters\":4,\"pool\":\"none\"}],"
                                      "\"head\":\"gap\",\"dense\":[]}"},
        {"batch norm, relu", "{\"blocks\":[{\"filters\":6,\"batch_norm\":true}],\"dense\":[]}"},
        {"residual (add, 1x1 conv, bn)", "{\"blocks\":[{\"filters\":4,\"residual\":true,"
                                         "\"batch_norm\":true},{\"filters\":8,"
                                         "\"residual\":true}],\"dense\":[]}"},
        {"leaky relu", "{\"blocks\":[{\"filters\":4}],\"act\":\"leaky_relu\",\"dense\":[6]}"},
        {"gelu", "{\"blocks\":[{\"filters\":4}],\"act\":\"gelu\",\"dense\":[6]}"},
        {"dropout", "{\"blocks\":[{\"filters\":4,\"dropout\":0.25}],\"dense\":[6],"
                    "\"dense_dropout\":0.5}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ens_model_t *m = cnn(cases[i].arch, 2, 12, 12);
        if (m)
            parity(cases[i].what, m, 5);
        ens_model_free(m);
    }
    ens_model_t *mlp = NULL;
    int32_t hidden[] = {16, 8};
    CHECK_OK(ens_model_new_mlp(20, hidden, 2, 10, 5, &mlp));
    if (mlp)
        parity("dense+relu (MLP, cuBLAS)", mlp, 7);
    ens_model_free(mlp);

    const char *ref = "{\"blocks\":[{\"filters\":32},{\"filters\":64}],\"dense\":[128]}";
    ens_model_t *m = cnn(ref, 1, 28, 28);
    if (m) {
        parity("reference CNN", m, 32);
        enum { N = 1280 };
        ens_dataset_t ds = {.n = N, .dim = 784, .height = 28, .width = 28, .n_classes = 10};
        ds.x = malloc((size_t)N * 784 * sizeof *ds.x);
        ds.y = malloc((size_t)N * sizeof *ds.y);
        fill(ds.x, (int64_t)N * 784, 11);
        for (int32_t i = 0; i < N; i++)
            ds.y[i] = i % 10;
        ens_model_t *g = twin(m);
        double cpu = train_speed(m, &ds), gpu = g ? train_speed(g, &ds) : -1.0;
        CHECK(cpu > 0 && gpu > 0);
        printf("reference CNN training, Adam, batch 128: cpu %.0f samples/s (%.1f ms/step), "
               "cudnn %.0f samples/s (%.1f ms/step)\n", cpu, 128e3 / cpu, gpu, 128e3 / gpu);
        ens_model_free(g);
        free(ds.x);
        free(ds.y);
    }
    ens_model_free(m);
    if (check_failures) {
        fprintf(stderr, "test_backend_parity: %d failures\n", check_failures);
        return 1;
    }
    printf("test_backend_parity: ok\n");
    return 0;
}
#endif
