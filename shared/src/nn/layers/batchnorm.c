/* batchnorm.c - batch normalisation per channel over N*H*W: batch statistics when training
 * (running mean/var updated with momentum, default 0.1, unbiased variance as in PyTorch),
 * running statistics for inference; eps 1e-5. */
#include "../nn_internal.h"

#include <math.h>

#define BN_EPS 1e-5f

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    if (n->s.alpha == 0.0f)
        n->s.alpha = 0.1f;
    if (!(n->s.alpha > 0.0f && n->s.alpha <= 1.0f))
        return "momentum outside (0, 1]";
    n->out = *in;
    n->p_n = 2 * (int64_t)in->c; /* gamma, beta */
    n->b_n = 2 * (int64_t)in->c; /* running mean, running var */
    return NULL;
}

/* xhat [b * size], then mean [C], invstd [C] */
static int64_t aux_floats(const nn_node_t *n, int32_t b) {
    return (int64_t)b * n->size_out + 2 * (int64_t)n->out.c;
}

static void init(const nn_node_t *n, float *p, float *buf, ens_rng_t *rng) {
    (void)rng;
    int32_t C = n->out.c;
    for (int32_t i = 0; i < C; i++) {
        p[i] = 1.0f;
        buf[C + i] = 1.0f;
    }
}

/*
 * Per-plane sums run in float over 8 independent lanes (so the compiler vectorises them) and
 * the planes are added in double: the same accuracy as a double sum for the plane sizes met
 * here (a plane is at most NN_MAX_SAMPLE floats, the lanes' partials are ~hw/8 terms each).
 */
static double plane_sum(const float *p, int64_t n) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++)
            a[l] += p[k + l];
    double s = 0.0;
    for (; k < n; k++)
        s += p[k];
    return s + (double)(((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
}

static double plane_sqdev(const float *p, int64_t n, float mu) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) {
            float d = p[k + l] - mu;
            a[l] += d * d;
        }
    double s = 0.0;
    for (; k < n; k++)
        s += ((double)p[k] - mu) * ((double)p[k] - mu);
    return s + (double)(((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
}

/* sum dy and sum dy * xhat */
static void plane_dots(const float *dy, const float *xh, int64_t n, double *sb, double *sg) {
    float a[8] = {0}, g[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) {
            a[l] += dy[k + l];
            g[l] += dy[k + l] * xh[k + l];
        }
    double b = 0.0, d = 0.0;
    for (; k < n; k++) {
        b += dy[k];
        d += dy[k] * xh[k];
    }
    *sb += b + (double)(((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
    *sg += d + (double)(((g[0] + g[4]) + (g[1] + g[5])) + ((g[2] + g[6]) + (g[3] + g[7])));
}

typedef struct {
    nn_ctx_t *c;
    nn_node_t *n;
    int32_t b;
    const float *x;
    float *dx;
    int acc;
} job_t;

static void fwd_chunk(void *arg, int32_t c0, int32_t c1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    nn_node_t *n = j->n;
    int32_t C = n->out.c;
    int64_t hw = (int64_t)n->out.h * n->out.w, cnt = hw * j->b;
    const float *gamma = j->c->params + n->p_off, *beta = gamma + C;
    float *rm = j->c->bufs + n->b_off, *rv = rm + C;
    int train = j->c->train && n->aux;
    float *xhat = train ? n->aux : NULL, *mean_s = train ? n->aux + (size_t)j->b * n->size_out : NULL;
    for (int32_t ch = c0; ch < c1; ch++) {
        float mean, invstd;
        if (train) {
            double s = 0.0, ss = 0.0;
            for (int32_t i = 0; i < j->b; i++)
                s += plane_sum(j->x + (size_t)i * n->size_out + (size_t)ch * hw, hw);
            double mu = s / (double)cnt;
            for (int32_t i = 0; i < j->b; i++)
                ss += plane_sqdev(j->x + (size_t)i * n->size_out + (size_t)ch * hw, hw,
                                  (float)mu);
            double var = ss / (double)cnt;
            mean = (float)mu;
            invstd = (float)(1.0 / sqrt(var + BN_EPS));
            float mom = n->s.alpha;
            double unbiased = cnt > 1 ? ss / (double)(cnt - 1) : var;
            rm[ch] = (1.0f - mom) * rm[ch] + mom * mean;
            rv[ch] = (1.0f - mom) * rv[ch] + mom * (float)unbiased;
            mean_s[ch] = mean;
            mean_s[C + ch] = invstd;
        } else {
            mean = rm[ch];
            invstd = 1.0f / sqrtf((rv[ch] > 0.0f ? rv[ch] : 0.0f) + BN_EPS);
        }
        float g = gamma[ch], bt = beta[ch];
        for (int32_t i = 0; i < j->b; i++) {
            size_t off = (size_t)i * n->size_out + (size_t)ch * hw;
            const float *p = j->x + off;
            float *y = n->y + off;
            if (xhat) {
                float *xo = xhat + off;
                for (int64_t k = 0; k < hw; k++) {
                    float xh = (p[k] - mean) * invstd;
                    xo[k] = xh;
                    y[k] = g * xh + bt;
                }
            } else {
                float a = g * invstd, c = bt - g * invstd * mean;
                for (int64_t k = 0; k < hw; k++)
                    y[k] = a * p[k] + c;
            }
        }
    }
}

/* channel chunks: the per-channel sums do not depend on the split */
static void run_channels(nn_ctx_t *c, int32_t C,
                         void (*fn)(void *, int32_t, int32_t, int32_t, int32_t), job_t *j) {
    nn_par_samples(c, C, fn, j);
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    job_t j = {c, n, b, x, NULL, 0};
    run_channels(c, n->out.c, fwd_chunk, &j);
}

static void bwd_chunk(void *arg, int32_t c0, int32_t c1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    nn_node_t *n = j->n;
    int32_t C = n->out.c;
    int64_t hw = (int64_t)n->out.h * n->out.w;
    float cnt = (float)(hw * j->b);
    const float *gamma = j->c->params + n->p_off;
    float *gg = j->c->grads + n->p_off, *gbt = gg + C;
    const float *xhat = n->aux, *stats = n->aux + (size_t)j->b * n->size_out;
    for (int32_t ch = c0; ch < c1; ch++) {
        double sg = 0.0, sb = 0.0;
        for (int32_t i = 0; i < j->b; i++) {
            size_t off = (size_t)i * n->size_out + (size_t)ch * hw;
            plane_dots(n->dy + off, xhat + off, hw, &sb, &sg);
        }
        gg[ch] = (float)sg;
        gbt[ch] = (float)sb;
        if (!j->dx)
            continue;
        float scale = gamma[ch] * stats[C + ch] / cnt, fsg = (float)sg, fsb = (float)sb;
        for (int32_t i = 0; i < j->b; i++) {
            size_t off = (size_t)i * n->size_out + (size_t)ch * hw;
            const float *dy = n->dy + off, *xh = xhat + off;
            float *dx = j->dx + off;
            if (j->acc)
                for (int64_t k = 0; k < hw; k++)
                    dx[k] += scale * (cnt * dy[k] - fsb - xh[k] * fsg);
            else
                for (int64_t k = 0; k < hw; k++)
                    dx[k] = scale * (cnt * dy[k] - fsb - xh[k] * fsg);
        }
    }
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)x, (void)dx1, (void)acc1;
    job_t j = {c, n, b, NULL, dx, acc};
    run_channels(c, n->out.c, bwd_chunk, &j);
}

const nn_layer_ops_t nn_batchnorm_ops = {"batchnorm", setup, aux_floats, init, forward,
                                         backward};
