/* nn_bench.c - one side of the tests/bench/nn benchmark: ensflow training and inference
 * speed and peak RSS of one model on Fashion-MNIST, as one JSON line on stdout. */
/*
 * nn_bench mlp|cnn N_TRAIN INFER_SECONDS   reads the first N_TRAIN training images only (so
 *                                          RSS is the engine's plus N_TRAIN samples, as on the
 *                                          PyTorch side), trains one pass at batch 128, then
 *                                          predicts at batch 1, 32 and 256
 *                                          (res: the default search space's CNN); the JSON
 *                                          also gives the model's FLOPs per sample
 * nn_bench sgemm-peak THREADS SECONDS      OpenBLAS sgemm 1024^3 on THREADS threads, best
 *                                          GFLOP/s over SECONDS: the peak figures compare to
 * nn_bench cnn-accuracy EPOCHS             the reference CNN with plain Adam 1e-3 on all
 *                                          60,000 training images, test accuracy per epoch
 * nn_bench cnn-accept [EPOCHS [LR]]        the acceptance run (issue 3): the reference CNN, 5
 *                                          epochs [EPOCHS] of Adam with peak lr 2e-3 [LR],
 *                                          0.3 epochs of linear warm-up then cosine decay to 0
 *                                          at the last epoch, label smoothing 0.1, random
 *                                          horizontal flips, batch 128, seed 1; PASS when the
 *                                          last epoch's test accuracy is >= 0.91
 */
#include "ensflow/nn.h"
#include "nn/nn_internal.h"

#include <cblas.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static const char *CNN_ARCH = "{\"blocks\":[{\"filters\":32},{\"filters\":64}],\"dense\":[128]}";
/* the default search space's CNN (space.c, cnn_config): 3 blocks of conv_width * 2^i filters,
 * kernel 3, batch norm, residual, max pool, a 128-unit dense layer */
static const char *RES_ARCH = "{\"n_blocks\":3,\"width\":32,\"kernel\":3,\"batch_norm\":true,"
                              "\"residual\":true,\"dense\":[128]}";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long vm_hwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* the first n images and labels of the training files */
static int read_first(int32_t n, float **x, int32_t **y) {
    gzFile fi = gzopen(FMNIST "train-images-idx3-ubyte.gz", "rb");
    gzFile fl = gzopen(FMNIST "train-labels-idx1-ubyte.gz", "rb");
    unsigned char hdr[16], *pix = malloc((size_t)n * 784), *lab = malloc((size_t)n);
    int ok = fi && fl && pix && lab && gzread(fi, hdr, 16) == 16 &&
             gzread(fi, pix, (unsigned)n * 784) == n * 784 && gzread(fl, hdr, 8) == 8 &&
             gzread(fl, lab, (unsigned)n) == n;
    *x = malloc((size_t)n * 784 * sizeof **x);
    *y = malloc((size_t)n * sizeof **y);
    if (ok && *x && *y)
        for (int64_t i = 0; i < (int64_t)n * 784; i++)
            (*x)[i] = pix[i] / 255.0f;
    for (int32_t i = 0; ok && i < n; i++)
        (*y)[i] = lab[i];
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    free(pix);
    free(lab);
    return ok ? 0 : -1;
}

static ens_model_t *make(const char *which) {
    ens_model_t *m = NULL;
    char es[256];
    if (!strcmp(which, "mlp")) {
        int32_t hidden[] = {256, 128};
        if (ens_model_new_mlp(784, hidden, 2, 10, 1, &m))
            return NULL;
    } else if (ens_model_new_from_json(strcmp(which, "res") ? CNN_ARCH : RES_ARCH, 1, 28, 28, 10,
                                       1, &m, es, sizeof es)) {
        fprintf(stderr, "nn_bench: %s\n", es);
        return NULL;
    }
    ens_model_set_normalisation(m, 0.286f, 0.353f);
    return m;
}

static void opts_for(const char *which, ens_train_opts_t *o) {
    ens_train_opts_default(o);
    o->batch_size = 128;
    if (!strcmp(which, "mlp")) {
        o->optimizer = ENS_OPT_SGD, o->lr = 0.05, o->momentum = 0.9;
    } else {
        o->optimizer = ENS_OPT_ADAM, o->lr = 1e-3;
    }
}

#define ACCEPT_GOAL 0.91

/* accept: the acceptance options (see the header comment); else plain Adam 1e-3 */
static int accuracy_run(int epochs, int accept, double lr) {
    char es[512];
    ens_dataset_t *train, *test;
    if (ens_dataset_load("fashion-mnist", ENS_DATA_TRAIN, &train, es, sizeof es) ||
        ens_dataset_load("fashion-mnist", ENS_DATA_TEST, &test, es, sizeof es)) {
        fprintf(stderr, "nn_bench: %s\n", es);
        return 1;
    }
    ens_model_t *m = make("cnn");
    ens_train_opts_t o;
    opts_for("cnn", &o);
    if (accept) {
        o.lr = lr;
        o.schedule = ENS_LR_COSINE;
        o.total_epochs = epochs;
        o.warmup_epochs = 0.3;
        o.label_smoothing = 0.1;
        o.aug_hflip = 1;
        fprintf(stderr, "accept: reference CNN, Adam lr %g, warm-up 0.3 epochs, cosine over %d "
                "epochs, label smoothing 0.1, hflip, batch %d, seed 1\n", o.lr, epochs,
                o.batch_size);
    }
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    double acc = 0, loss = 0, t0 = now();
    char per_epoch[512] = "";
    size_t used = 0;
    for (int e = 1; e <= epochs; e++) {
        if (!m || ens_model_train_epoch_opts(m, train, &o, &rng, &loss) ||
            ens_model_evaluate(m, test, &acc, NULL, NULL))
            return 1;
        fprintf(stderr, "epoch %d: train loss %.4f test accuracy %.4f (%.0f s)\n", e, loss, acc,
                now() - t0);
        if (used < sizeof per_epoch)
            used += (size_t)snprintf(per_epoch + used, sizeof per_epoch - used, "%s%.4f",
                                     e > 1 ? ", " : "", acc);
    }
    if (accept) {
        fprintf(stderr, "%s: test accuracy %.4f after %d epochs (goal >= %.2f)\n",
                acc >= ACCEPT_GOAL ? "PASS" : "FAIL", acc, epochs, ACCEPT_GOAL);
        printf("{\"accept_test_acc\": %.4f, \"accept_pass\": %s, \"per_epoch\": [%s], "
               "\"epochs\": %d, \"lr\": %g, \"seconds\": %.1f}\n",
               acc, acc >= ACCEPT_GOAL ? "true" : "false", per_epoch, epochs, lr, now() - t0);
    } else {
        printf("{\"cnn_test_accuracy\": %.4f, \"per_epoch\": [%s], \"epochs\": %d, "
               "\"seconds\": %.1f}\n", acc, per_epoch, epochs, now() - t0);
    }
    ens_model_free(m);
    ens_dataset_free(train);
    ens_dataset_free(test);
    return 0;
}

/*
 * FLOPs per sample of the convolutions and dense layers counted as direct products (2 per
 * multiply-add, whatever algorithm runs them): forward; training adds the weight gradient and
 * the input gradient of every node that has a producer (the first layer's is not computed).
 */
static void model_flops(const ens_model_t *m, double *fwd, double *train) {
    *fwd = *train = 0.0;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        const nn_node_t *n = &m->nodes[i];
        double f = 0.0;
        if (n->s.kind == NN_CONV2D)
            f = 2.0 * n->out.c * n->out.h * n->out.w * n->in_shape.c * n->s.k * n->s.k;
        else if (n->s.kind == NN_DENSE)
            f = 2.0 * (double)n->size_in * n->size_out;
        *fwd += f;
        *train += f * (n->s.in[0] >= 0 ? 3.0 : 2.0);
    }
}

static int sgemm_peak(int threads, double secs) {
    enum { N = 1024 };
    float *a = malloc((size_t)N * N * sizeof *a), *b = malloc((size_t)N * N * sizeof *b);
    float *c = malloc((size_t)N * N * sizeof *c);
    if (!a || !b || !c || threads < 1)
        return 1;
    for (size_t i = 0; i < (size_t)N * N; i++)
        a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(threads);
    double best = 0.0, t_end = now() + secs;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
    do {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f,
                    c, N);
        double g = 2.0 * N * N * N / (now() - t0) / 1e9;
        best = g > best ? g : best;
    } while (now() < t_end);
    printf("{\"sgemm_gflops\": %.1f, \"threads\": %d, \"core\": \"%s\"}\n", best, threads,
           openblas_get_corename());
    free(a);
    free(b);
    free(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "sgemm-peak"))
        return sgemm_peak(atoi(argv[2]), atof(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "cnn-accuracy"))
        return accuracy_run(atoi(argv[2]), 0, 1e-3);
    if (argc >= 2 && argc <= 4 && !strcmp(argv[1], "cnn-accept")) {
        int epochs = argc >= 3 ? atoi(argv[2]) : 5;
        double lr = argc >= 4 ? atof(argv[3]) : 2e-3;
        if (epochs < 1 || !(lr > 0)) {
            fprintf(stderr, "usage: nn_bench cnn-accept [EPOCHS [LR]]\n");
            return 2;
        }
        return accuracy_run(epochs, 1, lr);
    }
    if (argc != 4 || (strcmp(argv[1], "mlp") && strcmp(argv[1], "cnn") && strcmp(argv[1], "res"))) {
        fprintf(stderr, "usage: nn_bench mlp|cnn|res N_TRAIN INFER_SECONDS | cnn-accuracy EPOCHS | "
                        "cnn-accept [EPOCHS [LR]]\n");
        return 2;
    }
    int32_t n = atoi(argv[2]);
    double secs = atof(argv[3]);
    float *x;
    int32_t *y;
    if (n < 256 || read_first(n, &x, &y)) {
        fprintf(stderr, "nn_bench: cannot read %d images from " FMNIST "\n", n);
        return 1;
    }
    ens_dataset_t ds = {.n = n, .dim = 784, .height = 28, .width = 28, .n_classes = 10, .x = x,
                        .y = y};
    ens_model_t *m = make(argv[1]);
    if (!m)
        return 1;
    ens_train_opts_t o;
    opts_for(argv[1], &o);
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    ens_dataset_t warm = ds;
    warm.n = 256; /* two steps: arena and optimiser state allocated, pages touched */
    double loss;
    if (ens_model_train_epoch_opts(m, &warm, &o, &rng, &loss))
        return 1;
    double t = now();
    if (ens_model_train_epoch_opts(m, &ds, &o, &rng, &loss))
        return 1;
    double train_sps = n / (now() - t);
    float *probs = malloc(256 * 10 * sizeof *probs);
    double infer[3];
    int32_t bs[3] = {1, 32, 256};
    for (int k = 0; k < 3; k++) {
        int64_t done = 0;
        ens_model_predict(m, x, bs[k], probs); /* warm */
        double t0 = now(), el = 0;
        for (int64_t i = 0; el < secs; i++) {
            int64_t off = (i * bs[k]) % (n - bs[k]);
            ens_model_predict(m, x + off * 784, bs[k], probs);
            done += bs[k];
            if ((i & 7) == 0)
                el = now() - t0;
        }
        infer[k] = done / (now() - t0);
    }
    double ffwd, ftrain;
    model_flops(m, &ffwd, &ftrain);
    printf("{\"train_sps\": %.1f, \"infer_b1\": %.1f, \"infer_b32\": %.1f, \"infer_b256\": %.1f, "
           "\"rss_mb\": %.1f, \"loss\": %.4f, \"flops_fwd\": %.0f, \"flops_train\": %.0f}\n",
           train_sps, infer[0], infer[1], infer[2], vm_hwm_kb() / 1024.0, loss, ffwd, ftrain);
    free(probs);
    ens_model_free(m);
    free(x);
    free(y);
    return 0;
}
