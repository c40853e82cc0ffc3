/* test_nn_kernels.c - the fast CPU kernels (2x2 max pool, Winograd convolutions, batch-norm
 * sums, the small products) against the reference paths: forward, input gradients and weight
 * gradients. */
#include "check.h"
#include "ensflow/nn.h"
#include "nn/mlp_internal.h"
#include "nn/small_gemm.h"
#include "nn/nn_internal.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Each case builds a small graph around the node under test: a 1x1 convolution in front (so
 * the node's input gradient reaches a parameter gradient, and is checked through it), the node,
 * then a dense layer to the classes. One training step's loss, every node's output and every
 * parameter gradient are taken once with nn_reference_kernels set and once without; they must
 * agree within TOL relative to the largest magnitude of the reference (exactly for pooling,
 * which only moves values).
 */
#define TOL 2e-5

static ens_model_t *graph(nn_shape_t in, const nn_spec_t *specs, int n, uint64_t seed) {
    ens_model_t *m = NULL;
    char es[256] = "";
    CHECK_OK(nn_model_begin(in, 5, &m));
    for (int i = 0; i < n; i++)
        if (nn_graph_add(m, &specs[i], es, sizeof es) < 0)
            fprintf(stderr, "graph: %s\n", es);
    CHECK_OK(nn_model_finish(m, seed, 1, es, sizeof es));
    return m;
}

/* outputs of every node, then the gradients, after one loss/gradient step */
static float *one_step(ens_model_t *m, const float *x, const int32_t *y, int32_t b,
                       int64_t *len, double *loss) {
    int64_t n = ens_model_n_params(m);
    for (int32_t i = 0; i < m->n_nodes; i++)
        n += (int64_t)b * m->nodes[i].size_out * (m->nodes[i].s.kind == NN_MAXPOOL ? 2 : 1);
    float *out = malloc((size_t)n * sizeof *out);
    CHECK_OK(ens_mlp_loss_grad(m, x, y, b, loss));
    int64_t o = 0;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        memcpy(out + o, m->nodes[i].y, (size_t)(b * m->nodes[i].size_out) * sizeof *out);
        o += (int64_t)b * m->nodes[i].size_out;
        if (m->nodes[i].s.kind == NN_MAXPOOL) { /* the argmax, as float, must match exactly */
            const int32_t *am = (const int32_t *)m->nodes[i].aux;
            for (int64_t k = 0; k < (int64_t)b * m->nodes[i].size_out; k++)
                out[o + k] = (float)am[k];
            o += (int64_t)b * m->nodes[i].size_out;
        }
    }
    memcpy(out + o, ens_mlp_grads(m), (size_t)ens_model_n_params(m) * sizeof *out);
    *len = n;
    return out;
}

/* returns the largest difference relative to the reference's largest magnitude */
static double compare(const char *name, nn_shape_t in, const nn_spec_t *specs, int n,
                      int32_t b, uint64_t seed, double tol, int quantise) {
    ens_model_t *m = graph(in, specs, n, seed);
    if (!m)
        return 1e9;
    int64_t din = nn_in_size(m);
    float *x = malloc((size_t)(b * din) * sizeof *x);
    int32_t *y = malloc((size_t)b * sizeof *y);
    ens_rng_t rng;
    ens_rng_seed(&rng, seed + 1);
    for (int64_t i = 0; i < b * din; i++)
        x[i] = quantise ? (float)(ens_rng_next(&rng) % 3) : (float)ens_rng_normal(&rng);
    for (int32_t i = 0; i < b; i++)
        y[i] = i % 5;
    int64_t la = 0, lb = 0;
    double loss_ref = 0, loss_fast = 0;
    nn_reference_kernels = 1;
    float *ref = one_step(m, x, y, b, &la, &loss_ref);
    nn_reference_kernels = 0;
    float *fast = one_step(m, x, y, b, &lb, &loss_fast);
    CHECK_EQ_INT(la, lb);
    double big = 1e-30, worst = 0.0;
    for (int64_t i = 0; i < la; i++)
        big = fmax(big, fabs(ref[i]));
    for (int64_t i = 0; i < la; i++)
        worst = fmax(worst, fabs((double)ref[i] - fast[i]) / big);
    if (!(worst <= tol))
        fprintf(stderr, "%s: fast kernels differ from the reference by %.3g (tol %.3g)\n", name,
                worst, tol);
    CHECK(worst <= tol);
    CHECK_NEAR(loss_fast, loss_ref, tol * fmax(1.0, fabs(loss_ref)));
    free(ref);
    free(fast);
    free(x);
    free(y);
    ens_model_free(m);
    return worst;
}

static int32_t pick(ens_rng_t *rng, int32_t lo, int32_t hi) {
    return lo + (int32_t)(ens_rng_next(rng) % (uint64_t)(hi - lo + 1));
}

/* 2x2 stride-2 pooling on odd and even sizes, after a fused ReLU or not; one input channel
 * of values 0, 1, 2 gives ties, where the argmax must be the first maximum as in the general
 * loop (compared directly: through the gradients a tie does not show) */
static void test_maxpool(void) {
    ens_rng_t rng;
    ens_rng_seed(&rng, 11);
    for (int t = 0; t < 12; t++) {
        int32_t c = t < 6 ? 1 : pick(&rng, 1, 4), h = pick(&rng, 2, 13), w = pick(&rng, 2, 13);
        int32_t f = pick(&rng, 1, 6), b = pick(&rng, 1, 9), relu = t % 2;
        nn_spec_t s[] = {
            {.kind = NN_CONV2D, .in = {-1, -1}, .units = f, .k = 1, .stride = 1, .relu = relu},
            {.kind = NN_MAXPOOL, .in = {0, -1}, .k = 2, .stride = 2},
            {.kind = NN_DENSE, .in = {1, -1}, .units = 5},
        };
        char name[96];
        snprintf(name, sizeof name, "maxpool %dx%dx%d f%d b%d relu%d", c, h, w, f, b, relu);
        compare(name, (nn_shape_t){c, h, w}, s, 3, b, 100 + (uint64_t)t, 0.0, t < 6);
    }
}

/* convolutions of random shapes: kernel 1, 3 or 5, stride 1 or 2, padding, fused ReLU or not,
 * batches around the thread split; whichever path the layer picks must match im2col + sgemm */
static void test_conv(void) {
    ens_rng_t rng;
    ens_rng_seed(&rng, 12);
    for (int t = 0; t < 40; t++) {
        int32_t k = (int32_t[]){1, 3, 3, 5}[t % 4];
        int32_t c = pick(&rng, 1, 12), h = pick(&rng, k, 15), w = pick(&rng, k, 15);
        int32_t f = pick(&rng, 1, 24), b = pick(&rng, 1, 20), st = t % 5 == 4 ? 2 : 1;
        int32_t pad = pick(&rng, 0, k / 2), relu = (t / 2) % 2;
        nn_spec_t s[] = {
            {.kind = NN_CONV2D, .in = {-1, -1}, .units = c, .k = 1, .stride = 1},
            {.kind = NN_CONV2D, .in = {0, -1}, .units = f, .k = k, .stride = st, .pad = pad,
             .relu = relu},
            {.kind = NN_DENSE, .in = {1, -1}, .units = 5},
        };
        char name[128];
        snprintf(name, sizeof name, "conv c%d %dx%d f%d k%d s%d p%d relu%d b%d", c, h, w, f, k,
                 st, pad, relu, b);
        compare(name, (nn_shape_t){c, h, w}, s, 3, b, 200 + (uint64_t)t, TOL, 0);
    }
}

/* a first layer (no input gradient) of few channels, the direct path where AVX-512 runs:
 * kernel 3, 5 or 7, rows shorter and longer than 32 outputs, padding 0 to k/2 */
static void test_conv_first(void) {
    ens_rng_t rng;
    ens_rng_seed(&rng, 14);
    for (int t = 0; t < 12; t++) {
        int32_t k = (int32_t[]){3, 5, 3, 7}[t % 4], c = pick(&rng, 1, 4);
        int32_t h = pick(&rng, k, 20), w = pick(&rng, k, 40), f = pick(&rng, 1, 11);
        int32_t b = pick(&rng, 1, 9), pad = pick(&rng, 0, k / 2), relu = t % 2;
        nn_spec_t s[] = {
            {.kind = NN_CONV2D, .in = {-1, -1}, .units = f, .k = k, .stride = 1, .pad = pad,
             .relu = relu},
            {.kind = NN_DENSE, .in = {0, -1}, .units = 5},
        };
        char name[128];
        snprintf(name, sizeof name, "first conv c%d %dx%d f%d k%d p%d relu%d b%d", c, h, w, f,
                 k, pad, relu, b);
        compare(name, (nn_shape_t){c, h, w}, s, 2, b, 400 + (uint64_t)t, TOL, 0);
    }
}

/* the Winograd path (3x3, stride 1, at least 8 channels and filters): odd and even sizes
 * (partial 2x2 tiles), padding 0 to 2, inputs smaller than a tile, wide rows, single samples,
 * and batches whose tiles span several blocks of NN_WINO_BLOCK, so blocks start mid-sample */
static void test_conv_winograd(void) {
    ens_rng_t rng;
    ens_rng_seed(&rng, 13);
    for (int t = 0; t < 16; t++) {
        int32_t c = pick(&rng, 8, 40), f = pick(&rng, 8, 40), h = pick(&rng, 3, 17);
        int32_t w = pick(&rng, 3, 17), b = t == 1 ? 1 : pick(&rng, 2, 13), pad = t % 3;
        int32_t relu = t % 2;
        if (t == 0)
            h = w = 3, pad = 0; /* one output pixel: a tile three quarters outside */
        if (t == 2 || t == 4)
            w = 31 + 8 * t; /* rows of more than 15 tiles: the AVX-512 transforms' pieces */
        nn_spec_t s[] = {
            {.kind = NN_CONV2D, .in = {-1, -1}, .units = c, .k = 1, .stride = 1},
            {.kind = NN_CONV2D, .in = {0, -1}, .units = f, .k = 3, .stride = 1, .pad = pad,
             .relu = relu},
            {.kind = NN_DENSE, .in = {1, -1}, .units = 5},
        };
        char name[128];
        snprintf(name, sizeof name, "winograd c%d %dx%d f%d p%d relu%d b%d", c, h, w, f, pad,
                 relu, b);
        compare(name, (nn_shape_t){c, h, w}, s, 3, b, 300 + (uint64_t)t, TOL, 0);
    }
}

/* The small-product kernels against double-precision sums, on shapes that leave every tail
 * (rows past a block of 8, columns past 32, inner dimensions past 16 and past the 128 rows
 * nt transposes at a time), A in both orders, and beta 0 and 1. */
static void test_small_gemm(void) {
    ens_rng_t rng;
    ens_rng_seed(&rng, 29);
    for (int t = 0; t < 24; t++) {
        int32_t m = pick(&rng, 1, 40), n = pick(&rng, 1, 70), k = pick(&rng, 1, 300);
        int nt = t % 2, col_major = (t / 2) % 2;
        float beta = (t / 4) % 2 ? 1.0f : 0.0f;
        int64_t lda = k + 3, ldb = nt ? k + 5 : n + 5, ldc = n + 7;
        float *a = malloc((size_t)(col_major ? m + 3 : m) * (size_t)lda * sizeof *a);
        float *b = malloc((size_t)(nt ? n : k) * (size_t)ldb * sizeof *b);
        float *c = malloc((size_t)m * (size_t)ldc * sizeof *c);
        for (int64_t i = 0; i < (col_major ? m + 3 : m) * lda; i++)
            a[i] = (float)ens_rng_normal(&rng);
        for (int64_t i = 0; i < (nt ? n : k) * ldb; i++)
            b[i] = (float)ens_rng_normal(&rng);
        for (int64_t i = 0; i < m * ldc; i++)
            c[i] = (float)ens_rng_normal(&rng);
        double *want = malloc((size_t)m * (size_t)ldc * sizeof *want);
        /* A(i, p): row-major with row stride lda, or column-major with column stride m + 3 */
        int64_t ars = col_major ? 1 : lda, acs = col_major ? m + 3 : 1;
        double scale = 0.0;
        for (int32_t i = 0; i < m; i++)
            for (int32_t j = 0; j < ldc; j++) {
                double v = c[i * ldc + j];
                if (j < n) {
                    v *= beta;
                    for (int32_t p = 0; p < k; p++)
                        v += (double)(nt ? a[i * lda + p] : a[i * ars + p * acs]) *
                             (nt ? b[j * ldb + p] : b[p * ldb + j]);
                }
                want[i * ldc + j] = v;
                scale = fmax(scale, fabs(v));
            }
        if (nt)
            nn_small_gemm_nt(m, n, k, a, lda, b, ldb, beta, c, ldc);
        else
            nn_small_gemm_nn(m, n, k, a, ars, acs, b, ldb, beta, c, ldc);
        double worst = 0.0; /* columns n..ldc must be untouched */
        for (int64_t i = 0; i < m * ldc; i++)
            worst = fmax(worst, fabs(c[i] - want[i]));
        if (!(worst <= 1e-5 * sqrt((double)k) * (scale + 1.0)))
            fprintf(stderr, "small gemm %s%s m%d n%d k%d beta%g (%s): worst %g\n",
                    nt ? "nt" : "nn", !nt && col_major ? " (A column-major)" : "", m, n, k, beta,
                    nn_small_gemm_ok() ? "AVX-512" : "plain loops", worst);
        CHECK(worst <= 1e-5 * sqrt((double)k) * (scale + 1.0));
        free(a), free(b), free(c), free(want);
    }
}

/* Under AddressSanitizer the kernels are not instrumented; the operands are checked at entry
 * instead. A product whose A is one float short of its allocation must still be reported:
 * run in a child, which must die (on the checked build) rather than read past the end. */
static void test_small_gemm_bounds(void) {
#if defined(__SANITIZE_ADDRESS__)
    if (!nn_small_gemm_ok())
        return;
    for (int nt = 0; nt < 2; nt++) {
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            FILE *quiet = freopen("/dev/null", "w", stderr); /* the expected report */
            (void)quiet;
            int32_t m = 9, n = 40, k = 20;
            float *a = calloc((size_t)(m * k - 1), sizeof *a); /* one float short */
            float *b = calloc((size_t)(n * k), sizeof *b), *c = calloc((size_t)(m * n), sizeof *c);
            if (nt)
                nn_small_gemm_nt(m, n, k, a, k, b, k, 0.0f, c, n);
            else
                nn_small_gemm_nn(m, n, k, a, k, 1, b, n, 0.0f, c, n);
            _exit(0); /* not reached when the check works */
        }
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    }
#endif
}

/* batch norm in training mode against a double-precision computation, with a large mean (the
 * per-plane float sums must not lose the variance) */
static void test_batchnorm_stats(void) {
    nn_spec_t s[] = {
        {.kind = NN_BATCHNORM, .in = {-1, -1}},
        {.kind = NN_DENSE, .in = {0, -1}, .units = 5},
    };
    nn_shape_t in = {3, 9, 11};
    ens_model_t *m = graph(in, s, 2, 7);
    int32_t b = 6, hw = in.h * in.w;
    int64_t din = nn_in_size(m);
    float *x = malloc((size_t)(b * din) * sizeof *x);
    int32_t y[6] = {0, 1, 2, 3, 4, 0};
    ens_rng_t rng;
    ens_rng_seed(&rng, 3);
    for (int64_t i = 0; i < b * din; i++)
        x[i] = (float)(100.0 + 0.01 * ens_rng_normal(&rng));
    double loss;
    CHECK_OK(ens_mlp_loss_grad(m, x, y, b, &loss));
    /* the model normalises its input: ens_mlp_loss_grad feeds (x - mean) / std, identity here */
    const float *x0 = m->x0, *out = m->nodes[0].y;
    double worst = 0.0;
    for (int32_t c = 0; c < in.c; c++) {
        double s1 = 0, s2 = 0;
        for (int32_t i = 0; i < b; i++)
            for (int32_t k = 0; k < hw; k++)
                s1 += x0[(size_t)i * din + (size_t)c * hw + k];
        double mu = s1 / (b * hw);
        for (int32_t i = 0; i < b; i++)
            for (int32_t k = 0; k < hw; k++) {
                double d = x0[(size_t)i * din + (size_t)c * hw + k] - mu;
                s2 += d * d;
            }
        double inv = 1.0 / sqrt(s2 / (b * hw) + 1e-5);
        for (int32_t i = 0; i < b; i++)
            for (int32_t k = 0; k < hw; k++) {
                size_t o = (size_t)i * din + (size_t)c * hw + k;
                worst = fmax(worst, fabs((x0[o] - mu) * inv - out[o]));
            }
    }
    CHECK(worst < 1e-3); /* |xhat| ~ 3 at most; float inputs near 100 carry ~1e-5 / 0.01 */
    free(x);
    ens_model_free(m);
}

int main(void) {
    test_maxpool();
    test_conv();
    test_conv_first();
    test_conv_winograd();
    test_small_gemm();
    test_small_gemm_bounds();
    test_batchnorm_stats();
    return check_done("test_nn_kernels");
}
